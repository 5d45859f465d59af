"""The fleet-wide failover budget: at most N automatic failovers in a sliding window.

Once an automatic failover finds the budget spent, automatic failover turns observe-only for every
scenario until an operator re-arms it. The state is rebuilt from the journal at start.
"""

from __future__ import annotations

import time

from ha.config import BudgetConfig
from ha.store import JournalEvent

SPENT, REARMED = "budget_spent", "budget_rearmed"


class Budget:
    def __init__(self, config: BudgetConfig | None) -> None:
        self.config = config
        self.spent_at: list[float] = []  # times of automatic failovers since the last re-arm
        self.armed = True

    def restore(self, events: list[JournalEvent]) -> None:
        """Replay the journal: automatic failovers, spent and re-armed events, oldest first."""
        for event in events:
            if event.kind == REARMED:
                self.rearm()
            elif event.kind == SPENT:
                self.armed = False
            elif _automatic_failover(event):
                self.spent_at.append(event.ts)

    def allows(self, now: float) -> bool:
        """Whether one more automatic failover may happen now."""
        if self.config is None:
            return True
        if not self.armed:
            return False
        window_start = now - self.config.window
        self.spent_at = [t for t in self.spent_at if t > window_start]
        return len(self.spent_at) < self.config.failovers

    def spend(self, now: float) -> None:
        if self.config is not None:
            self.spent_at.append(now)

    def disarm(self) -> None:
        self.armed = False

    def rearm(self) -> None:
        self.armed = True
        self.spent_at.clear()

    def describe(self) -> str:
        if self.config is None:
            return "no budget"
        state = "armed" if self.armed else "spent: automatic failover is observe-only"
        window_start = time.time() - self.config.window
        recent = [t for t in self.spent_at if t > window_start]
        return (
            f"{len(recent)} of {self.config.failovers} automatic failovers"
            f" in {self.config.window:g}s; {state}"
        )


def _automatic_failover(event: JournalEvent) -> bool:
    return (
        event.kind == "transition"
        and event.actor == "detector"
        and event.data.get("trigger") == "failover"
    )
