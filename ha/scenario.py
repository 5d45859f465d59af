"""The runtime of one scenario: its config, durable record and detectors.

A :class:`Scenario` is a model of the state machine in ``ha.machine``: the machine calls
``journal_transition`` before each state change (the store write is the transition's first and
only side effect inside the machine) and ``after_transition`` once the state changed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from checks import CheckConfig, CheckResult
from ha.config import ScenarioConfig
from ha.detector import Detector
from ha.machine import RUNBOOK_STATES
from ha.store import JournalEvent, ScenarioRecord, Side, Store

if TYPE_CHECKING:
    from transitions.extensions.asyncio import AsyncEventData

SIDES: tuple[Side, Side] = ("production", "replica")
ACTIVE_CHECK = "active_check"  # the label of a scenario's split.active_check, on both sides


def check_labels(checks: list[CheckConfig]) -> list[str]:
    """A unique label per check: its name, or its kind (numbered when a kind repeats)."""
    labels = [c.label for c in checks]
    return [
        f"{label}[{i}]" if labels.count(label) > 1 and not checks[i].name else label
        for i, label in enumerate(labels)
    ]


SUPPOSABLE: dict[str, Side | None] = {
    "running": "production",
    "switched": "replica",
    "stopped": None,
}
"""The states a dry run may suppose (those a command leaves a scenario in), with the active side
each means (stopped: as it was)."""


class Scenario:
    state: str  # kept by the state machine
    trigger: Callable[..., Awaitable[bool]]  # added by the state machine

    def __init__(self, config: ScenarioConfig, record: ScenarioRecord, store: Store) -> None:
        self.config = config
        self.record = record
        self.store = store
        self.labels = dict(zip(check_labels(config.checks), config.checks, strict=True))
        now = time.time()
        self.detectors = {
            side: Detector(config.failover, self.side_labels(side), now) for side in SIDES
        }
        self.alerted: str | None = None  # the alert raised for the current episode, if any
        self.acting: dict[Side, CheckResult] = {}  # last active_check result per side
        self.on_transition: Callable[[Scenario, str, str], Awaitable[None]] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def side_labels(self, side: Side) -> list[str]:
        return [label for label, check in self.labels.items() if check.side in ("both", side)]

    def address(self, side: Side) -> str:
        return (
            self.config.production.address if side == "production" else self.config.replica.address
        )

    def split_reason(self) -> str | None:
        """Why both sides act as active now (their latest active_check results), or None.
        Only answers to probes started after the last switch count: what a side said before a
        recovery chose the active side is no evidence against the choice."""
        results = [self.acting.get(side) for side in SIDES]
        check = self.config.split.active_check
        since = self.record.last_switch_at or 0.0
        if check is None or not all(
            r is not None and r.ok and r.at - r.latency >= since for r in results
        ):
            return None
        ats = [r.at for r in results if r is not None]
        if max(ats) - min(ats) > 3 * check.interval:
            return None
        return f"both production and replica answer as active ({check.label})"

    def supposing(self, state: str) -> Scenario:
        """A copy as if in ``state`` (running, switched or stopped) as a command leaves it:
        production active when running, the replica when switched, no runbook. For a dry run
        after commands that would have moved it (a playbook's --check); never acts."""
        assert state in SUPPOSABLE, state
        twin = copy.copy(self)
        twin.state = state
        active = SUPPOSABLE[state] or self.record.active
        twin.record = replace(
            self.record, state=state, active=active, runbook=None, runbook_kind=None, reason=None
        )
        return twin

    @property
    def standby(self) -> Side:
        return "replica" if self.record.active == "production" else "production"

    # Conditions: pure and fast (transitions evaluates them concurrently, without short-circuit).

    def production_active(self, event: AsyncEventData) -> bool:
        return self.record.active == "production"

    def blocked_failover(self, event: AsyncEventData) -> bool:
        return self.record.runbook_kind == "failover"

    def blocked_switchover(self, event: AsyncEventData) -> bool:
        return self.record.runbook_kind == "switchover"

    def blocked_failback(self, event: AsyncEventData) -> bool:
        return self.record.runbook_kind == "failback"

    def recovers_production(self, event: AsyncEventData) -> bool:
        return self.record.runbook_kind == "recover-production"

    # Bookkeeping callbacks.

    async def journal_transition(self, event: AsyncEventData) -> None:
        trigger = event.event.name
        source, dest = event.transition.source, event.transition.dest
        kwargs: dict[str, Any] = event.kwargs
        changes: dict[str, Any] = {"state": dest}
        message = f"{source} -> {dest} ({trigger})"
        if dest in RUNBOOK_STATES:
            kind = kwargs.get("kind") or RUNBOOK_STATES[dest]
            changes.update(runbook=kwargs["runbook"], runbook_kind=kind, reason=None)
        elif trigger == "finish":
            active = "production" if source == "failing_back" else "replica"
            if source == "recovering":
                active = "production" if self.recovers_production(event) else "replica"
            changes.update(
                active=active,
                runbook=None,
                runbook_kind=None,
                reason=None,
                last_switch_at=time.time(),
            )
        elif trigger in ("block", "split"):
            changes.update(reason=kwargs["reason"])
        else:
            if source == "blocked" and self.record.runbook:
                message += f"; runbook {self.record.runbook} abandoned"
            changes.update(runbook=None, runbook_kind=None, reason=None)
        if kwargs.get("reason"):
            message += f": {kwargs['reason']}"
        if kwargs.get("proposal"):
            message += f" [proposal #{kwargs['proposal']}]"
        record = self.record.evolve(**changes)
        await self.store.transition(
            record,
            JournalEvent(
                kind="transition",
                scenario=self.name,
                message=message,
                data={
                    "from": source,
                    "to": dest,
                    "trigger": trigger,
                    "active": record.active,
                    "proposal": kwargs.get("proposal"),
                },
                actor=kwargs.get("actor", "daemon"),
                runbook=record.runbook or self.record.runbook,
            ),
        )
        self.record = record

    async def after_transition(self, event: AsyncEventData) -> None:
        now = time.time()
        for detector in self.detectors.values():
            detector.reset(now)
        self.alerted = None
        if self.on_transition is not None:
            await self.on_transition(self, event.event.name, event.transition.source)

    async def set_paused(self, paused: bool, actor: str, why: str = "") -> None:
        record = self.record.evolve(paused=paused)
        word = "paused" if paused else "resumed"
        await self.store.transition(
            record,
            JournalEvent(
                kind=word,
                scenario=self.name,
                message=f"{word}: automatic actions {'off' if paused else 'on'}"
                + (f" ({why})" if why else ""),
                actor=actor,
            ),
        )
        self.record = record
