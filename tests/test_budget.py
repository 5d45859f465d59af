"""The failover budget's account: what status shows of it."""

from __future__ import annotations

import time

from ha.budget import SPENT, Budget
from ha.config import BudgetConfig
from ha.store import JournalEvent


def failover(at: float, number: int) -> JournalEvent:
    return JournalEvent(
        kind="transition",
        scenario="s1",
        actor="detector",
        message="running -> failing_over (failover)",
        data={"trigger": "failover"},
        ts=at,
        id=number,
    )


def test_it_counts_only_the_failovers_in_its_window_also_where_nothing_asks_it_to_allow() -> None:
    """A follower never asks whether a failover is allowed (only the leader does, which prunes
    the old ones); what it shows must still leave out failovers older than the window."""
    now = time.time()
    budget = Budget(BudgetConfig(failovers=2, window=600))
    budget.restore([failover(now - 700, 1), failover(now - 10, 2)])
    assert budget.describe() == "1 of 2 automatic failovers in 600s; armed"
    budget.restore([JournalEvent(kind=SPENT, message="spent", ts=now, id=3)])
    assert budget.describe() == (
        "1 of 2 automatic failovers in 600s; spent: automatic failover is observe-only"
    )
