"""The store: durable scenario state plus the append-only journal of everything that happened.

SQLite by default (``ha.store.sqlite``); an etcd store slots in behind the same interface.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Side = Literal["production", "replica"]


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One journal entry. ``id`` is assigned by the store, increasing."""

    kind: str  # transition, step_started, step_done, step_failed, check, command, alert, ...
    scenario: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    actor: str = "daemon"
    runbook: str | None = None
    step: str | None = None
    ts: float = field(default_factory=time.time)
    id: int | None = None

    def numbered(self, id: int) -> JournalEvent:
        """The event as the store saved it, with its id (half the cost of ``dataclasses.replace``,
        which was the costliest part of appending on the loop's side)."""
        return JournalEvent(
            kind=self.kind,
            scenario=self.scenario,
            message=self.message,
            data=self.data,
            actor=self.actor,
            runbook=self.runbook,
            step=self.step,
            ts=self.ts,
            id=id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "kind": self.kind,
            "scenario": self.scenario,
            "actor": self.actor,
            "runbook": self.runbook,
            "step": self.step,
            "message": self.message,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class ScenarioRecord:
    """The durable state of one scenario."""

    name: str
    state: str
    active: Side = "production"
    paused: bool = False
    runbook: str | None = None  # id of the runbook in flight, or of the one that blocked
    runbook_kind: str | None = None  # failover, switchover, failback
    reason: str | None = None  # why blocked
    last_switch_at: float | None = None  # end of the last failover/switchover/failback
    updated_at: float = field(default_factory=time.time)

    def evolve(self, **changes: Any) -> ScenarioRecord:
        return replace(self, updated_at=time.time(), **changes)


class Store(ABC):
    """Durable state and journal.

    Every write is durable before it returns (it survives SIGKILL and power loss) and atomic.
    Errors: StoreError. Writes are serialised; reads see every write that returned.
    """

    @abstractmethod
    async def open(self) -> None:
        """Create or open the store. Idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Flush and close. Idempotent."""

    @abstractmethod
    async def append(self, event: JournalEvent) -> JournalEvent:
        """Append one event; return it with its id. Not idempotent: each call adds an entry."""

    @abstractmethod
    def note(self, event: JournalEvent) -> None:
        """Append ``event`` without waiting for it to be written: for events made by the
        thousand whose loss in a crash costs nothing but themselves (a check changed state:
        at a start, every check does). It takes its place in the journal now: before every
        write made after this call. It is written within the next writes, or by ``close``; a
        write of it that fails is logged, not raised."""

    @abstractmethod
    async def transition(self, record: ScenarioRecord, event: JournalEvent) -> JournalEvent:
        """Atomically save ``record`` as the scenario's state and append ``event``."""

    async def transitions(self, changes: list[tuple[ScenarioRecord, JournalEvent]]) -> None:
        """Many ``transition`` calls; a backend may make them one atomic, durable write."""
        for record, event in changes:
            await self.transition(record, event)

    @abstractmethod
    async def scenarios(self) -> dict[str, ScenarioRecord]:
        """Every saved scenario record by name."""

    @abstractmethod
    async def events(
        self,
        *,
        after: int = 0,
        scenario: str | None = None,
        runbook: str | None = None,
        kinds: tuple[str, ...] = (),
        limit: int = 1000,
    ) -> list[JournalEvent]:
        """Events with id > ``after``, oldest first, optionally of one scenario, one runbook or
        some kinds only."""

    @abstractmethod
    async def last_event_id(self) -> int:
        """The id of the newest event, 0 if none."""


class JournalCursor:
    """Reads the journal's entries of some kinds a little at a time: each call returns those
    written since the last, oldest first, and no entry twice, also when two calls overlap (two
    status requests on a follower at once)."""

    def __init__(self, store: Store, kinds: tuple[str, ...]) -> None:
        self.store = store
        self.kinds = kinds
        self.read_up_to = 0  # the last journal id read

    async def new(self) -> list[JournalEvent]:
        last = await self.store.last_event_id()
        found = await self.store.events(after=self.read_up_to, kinds=self.kinds, limit=10**9)
        found = [event for event in found if (event.id or 0) > self.read_up_to]
        self.read_up_to = max(self.read_up_to, last, *(event.id or 0 for event in found))
        return found
