"""Operator commands: what they are, whether the current state allows them, what they would do.

The API and CLI never act: they validate here, then hand an :class:`Intent` to the daemon's loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from ha.detector import Detector
from ha.machine import COMMANDS, TRANSITIONS, refusal
from ha.scenario import Scenario
from ha.store import Side

ACTIONS = (*COMMANDS, "pause", "resume", "test")
RUNBOOK_COMMANDS: dict[str, Side] = {
    "failover": "replica",
    "switchover": "replica",
    "failback": "production",
}
SIDE_NAMES: tuple[Side, Side] = ("production", "replica")


@dataclass(frozen=True)
class Outcome:
    status: Literal["accepted", "conflict", "unavailable"]  # unavailable: not the leader
    message: str
    runbook: str | None = None
    command: int | None = None  # journal id of the command: its effects come after it


@dataclass
class Intent:
    action: str
    scenario: str
    actor: str
    force: bool = False
    active: Side | None = None  # recover: the side that stays active
    confirmed: bool = False  # the failure is confirmed already (by a group): go on as if forced
    force_promotion: bool = False  # promote a database standby even above its lag bound
    group: str | None = None  # a group command: ``scenario`` is unused
    future: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def permitted(scenario: Scenario, trigger: str) -> bool:
    """Whether the state machine would take ``trigger`` now (same tables, same conditions)."""
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        if t["trigger"] != trigger or scenario.state not in sources:
            continue
        if "conditions" in t and not getattr(scenario, t["conditions"])(None):
            continue
        if "unless" in t and getattr(scenario, t["unless"])(None):
            continue
        return True
    return False


def _target_may_be_down(scenario: Scenario, side: Side) -> bool:
    """A side whose failing checks are expected: a standby replica, or production with a machine
    that the runbook powers on."""
    config = scenario.config
    return config.replica.standby if side == "replica" else config.production.machine is not None


RECOVER_NEEDS_ACTIVE = "recover needs the side to keep active: production or replica"
FORCE_OVERRIDES = "(--force overrides)"


def conflict(
    scenario: Scenario, action: str, *, force: bool, now: float, active: Side | None = None
) -> str | None:
    """Why ``action`` cannot be taken now, or None. Used before acting and for dry runs."""
    if action == "test":
        return None  # the daemon's Assured Recovery runner decides (running tests, the queue)
    if action == "recover" and active not in SIDE_NAMES:
        return RECOVER_NEEDS_ACTIVE
    if action == "pause":
        return "already paused" if scenario.record.paused else None
    if action == "resume":
        return None if scenario.record.paused else "not paused"
    if not permitted(scenario, action):
        return refusal(action, scenario.state)
    side = active if action == "recover" else RUNBOOK_COMMANDS.get(action)
    if side is not None and not force and not _target_may_be_down(scenario, side):
        detector: Detector = scenario.detectors[side]
        if detector.is_dead(now):
            return (
                f"{side} fails its checks ({', '.join(detector.down(now))}); "
                f"{action} to a dead {side} is refused {FORCE_OVERRIDES}"
            )
    return None
