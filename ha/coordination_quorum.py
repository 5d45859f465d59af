"""Observer quorum: production counts as dead only when enough observers see it dead.

Pure logic, no I/O. Every orchestrator publishes a ``View`` per scenario
(``ha.coordination_views``); the leader passes them all to ``decide``. Views older than
``max_age`` are not counted. By default the quorum is a majority of the observers whose view is
fresh, so an instance that lost its own network sees everything dead but is outvoted; the verdict
names the observers that disagree with it, for the journal.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class View:
    """What one observer thinks of one scenario's production side."""

    observer: str
    scenario: str
    dead: bool  # production counts as dead by this observer's detector
    failing: tuple[str, ...] = ()  # labels of production checks failing now
    at: float = field(default_factory=time.time)  # wall clock, when the observer formed the view

    def to_json(self) -> dict[str, Any]:
        return {
            "observer": self.observer,
            "scenario": self.scenario,
            "dead": self.dead,
            "failing": list(self.failing),
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> View:
        return cls(
            observer=str(data["observer"]),
            scenario=str(data["scenario"]),
            dead=bool(data["dead"]),
            failing=tuple(str(label) for label in data.get("failing", ())),
            at=float(data["at"]),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The observers' decision on one scenario."""

    scenario: str
    dead: bool
    needed: int  # dead votes needed for a verdict of dead
    dead_by: tuple[str, ...]  # fresh observers that see production dead
    alive_by: tuple[str, ...]  # fresh observers that see it alive
    stale: tuple[str, ...]  # observers whose view is too old to count

    @property
    def disagree(self) -> tuple[str, ...]:
        """Fresh observers whose view differs from the verdict."""
        return self.alive_by if self.dead else self.dead_by

    def describe(self) -> str:
        votes = len(self.dead_by) + len(self.alive_by)
        text = (
            f"production of {self.scenario} is {'dead' if self.dead else 'alive'} by quorum:"
            f" {len(self.dead_by)} of {votes} observers see it dead, {self.needed} needed"
        )
        if self.disagree:
            verb = "disagree" if len(self.disagree) > 1 else "disagrees"
            text += f"; {', '.join(self.disagree)} {verb}"
        if self.stale:
            text += f"; not counted (stale): {', '.join(self.stale)}"
        return text


def decide(
    scenario: str,
    views: Iterable[View],
    *,
    now: float,
    max_age: float,
    quorum: int | None = None,
) -> Verdict:
    """Whether production of ``scenario`` is dead, from every observer's latest view.

    ``quorum`` is the number of dead votes needed; None means a majority of the fresh views.
    """
    latest: dict[str, View] = {}
    for view in views:
        if view.scenario == scenario and (
            view.observer not in latest or view.at > latest[view.observer].at
        ):
            latest[view.observer] = view
    fresh = [v for v in latest.values() if now - v.at <= max_age]
    stale = sorted(v.observer for v in latest.values() if now - v.at > max_age)
    dead_by = tuple(sorted(v.observer for v in fresh if v.dead))
    alive_by = tuple(sorted(v.observer for v in fresh if not v.dead))
    needed = max(1, quorum if quorum is not None else len(fresh) // 2 + 1)
    return Verdict(
        scenario=scenario,
        dead=len(dead_by) >= needed,
        needed=needed,
        dead_by=dead_by,
        alive_by=alive_by,
        stale=tuple(stale),
    )
