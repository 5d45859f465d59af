"""The autopilot: what the daemon decides on its own for a scenario the cycle evaluates
(``ha.agenda`` says which).

running, production dead: alert (manual mode, hold-down, recovery block, dead replica), or write a
*proposal* (what it would do and why) and then, unless observing (observe mode, global
observe-only, or a spent budget), wait out the grace period and fail over. Production answering
again ends the episode: a pending proposal is cancelled, an observed one records how long
production really stayed down.

switched, failback automatic: fail back once production has been healthy for ``stable_for``;
a member of a ``together`` group, once every switched member of it has (the group fails back).
Observing, the failback is proposed (once while production stays healthy), not taken.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ha.budget import REARMED, SPENT, Budget
from ha.commands import conflict
from ha.config import Config
from ha.coordination_quorum import Verdict
from ha.duration import format_duration
from ha.scenario import SIDES, Scenario
from ha.steps import Parts, build_steps
from ha.store import JournalCursor, JournalEvent, Store

log = structlog.get_logger("ha.autopilot")


def new_runbook_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(slots=True)
class Episode:
    """Production of one scenario declared dead, until it answers again or a runbook starts."""

    since: float
    runbook: str  # the id the runbook will have, named in the proposal
    proposal: int | None = None
    mode: str = ""  # act, observe or budget: what the proposal said
    act_at: float = 0.0  # end of the grace period


def proposal_data(
    scenario: Scenario,
    parts: Parts,
    action: str,
    reason: str,
    mode: str,
    runbook: str,
    observers: tuple[str, ...] = ("local",),
) -> dict[str, Any]:
    now = time.time()
    checks = {
        side: {
            label: {
                "ok": state.last.ok if state.last else None,
                "detail": state.last.detail if state.last else "not probed yet",
                "failures": state.failures,
                "down": scenario.detectors[side].is_down(label, now),
            }
            for label, state in scenario.detectors[side].checks.items()
        }
        for side in SIDES
    }
    return {
        "action": action,
        "mode": mode,
        "reason": reason,
        "runbook": runbook,
        "scenarios": [scenario.name],
        "checks": checks,
        "observers": list(observers),
        "plan": [{"step": s.name, "plan": s.plan} for s in build_steps(action, parts)],
        "data_loss": "unknown: no provider of this scenario reports replication lag",
    }


class Autopilot:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.safety = config.safety
        self.store = store
        self.budget = Budget(config.safety.budget)
        self.episodes: dict[str, Episode] = {}
        self.healthy_since: dict[str, float] = {}
        self.failback_observed: set[str] = set()  # automatic failbacks proposed only (observing)
        self.last_failover: dict[str, float] = {}
        self.journal = JournalCursor(store, ("transition", SPENT, REARMED))

    async def restore(self) -> None:
        """Rebuild the budget and the recovery blocks from the journal: all of it on taking
        charge (a new Autopilot); on a follower asked for its status, what came since the last
        call (the leader's failovers and re-arms: the budget as the leader keeps it). Each entry
        is read once, also by two readers at a time."""
        events = await self.journal.new()
        self.budget.restore(events)
        for event in events:
            if event.actor == "detector" and event.data.get("trigger") == "failover":
                self.last_failover[event.scenario or ""] = event.ts

    async def propose(
        self,
        scenario: Scenario,
        parts: Parts,
        action: str,
        reason: str,
        mode: str,
        runbook: str,
        actor: str = "detector",
        observers: tuple[str, ...] = ("local",),
        *,
        force: bool = False,
        force_promotion: bool = False,
    ) -> JournalEvent:
        """Journal the proposal. ``force`` and ``force_promotion`` (the operator's options) are
        kept in it: a runbook resumed after a restart runs with them again."""
        verb = {"act": "proposes", "operator": "proposes"}.get(mode, "would")
        where = {"observe": " (observing only)", "budget": " (budget spent)"}.get(mode, "")
        data = proposal_data(scenario, parts, action, reason, mode, runbook, observers)
        data.update(force=force, force_promotion=force_promotion)
        group = self.config.group_of(scenario.name)
        if group is not None and group.failover == "together" and actor == "detector":
            data.update(group=group.name, scenarios=group.scenarios)
            where += f" with group {group.name}"
        return await self.store.append(
            JournalEvent(
                kind="proposal",
                scenario=scenario.name,
                message=f"{verb} {action}{where}: {reason}",
                data=data,
                actor=actor,
                runbook=runbook,
            )
        )

    async def alert(self, scenario: Scenario, message: str) -> None:
        if scenario.alerted == message:
            return
        scenario.alerted = message
        log.warning("alert", scenario=scenario.name, message=message)
        await self.store.append(JournalEvent(kind="alert", scenario=scenario.name, message=message))

    def _mode(self, scenario: Scenario, now: float) -> str:
        if self._observing(scenario):
            return "observe"
        return "act" if self.budget.allows(now) else "budget"

    def _observing(self, scenario: Scenario) -> bool:
        """Automatic switches only proposed: observe-only (global, the group's), or the scenario's
        failover mode observe."""
        group = self.config.group_of(scenario.name)
        if scenario.config.failover.mode == "observe" or self.safety.observe_only:
            return True
        return group is not None and group.observe_only

    def _why_not(self, scenario: Scenario, now: float) -> str | None:
        policy = scenario.config.failover
        why_not = conflict(scenario, "failover", force=False, now=now)
        if why_not is None and policy.mode == "manual":
            why_not = f"failover is manual: run `ha failover {scenario.name}`"
        last = scenario.record.last_switch_at
        if why_not is None and last is not None and now - last < policy.hold_down:
            why_not = f"hold-down after the last switch until {time.ctime(last + policy.hold_down)}"
        last = self.last_failover.get(scenario.name)
        if why_not is None and last is not None and now - last < policy.recovery_block:
            until = time.ctime(last + policy.recovery_block)
            why_not = f"recovery block after the last automatic failover until {until}"
        return why_not

    async def on_running(
        self, scenario: Scenario, parts: Parts, now: float, verdict: Verdict | None = None
    ) -> dict[str, Any] | None:
        """The trigger's arguments when production must fail over now, else None. With several
        observers, their ``verdict`` decides whether production is dead, not our detector alone;
        but not while our own latest probes all pass (confirm_failure would cancel the runbook)."""
        production = scenario.detectors["production"]
        episode = self.episodes.get(scenario.name)
        if verdict is None:
            dead = production.is_dead(now)
        else:
            dead = verdict.dead and not production.is_healthy()
        if not dead:
            scenario.alerted = None
            if episode is not None:
                await self._recovered(scenario, self.episodes.pop(scenario.name), now)
            return None
        if episode is None:
            episode = self.episodes[scenario.name] = Episode(since=now, runbook=new_runbook_id())
        reason = f"production dead: {', '.join(production.down(now))} down"
        if verdict is not None:
            reason = verdict.describe()
        why_not = self._why_not(scenario, now)
        if why_not is not None:
            await self.alert(scenario, f"{reason}; not failing over: {why_not}")
            return None
        mode = self._mode(scenario, now)
        if episode.mode != mode:
            if mode == "budget":
                await self._spend_out(scenario)
            observers = ("local",) if verdict is None else verdict.dead_by
            event = await self.propose(
                scenario, parts, "failover", reason, mode, episode.runbook, observers=observers
            )
            episode.proposal, episode.mode = event.id, mode
            episode.act_at = now + scenario.config.failover.grace
        if mode != "act" or now < episode.act_at:
            return None
        del self.episodes[scenario.name]
        self.budget.spend(now)
        self.last_failover[scenario.name] = now
        return {
            "actor": "detector",
            "reason": reason,
            "runbook": episode.runbook,
            "proposal": episode.proposal,
        }

    async def _spend_out(self, scenario: Scenario) -> None:
        self.budget.disarm()
        message = f"failover budget spent ({self.budget.describe()}); `ha rearm` restores it"
        log.warning("budget spent", scenario=scenario.name, budget=self.budget.describe())
        await self.store.append(JournalEvent(kind=SPENT, scenario=scenario.name, message=message))

    async def _recovered(self, scenario: Scenario, episode: Episode, now: float) -> None:
        down_for = round(now - episode.since, 3)
        if episode.mode == "act":
            kind, message = "proposal_cancelled", "production answered within the grace period"
        else:
            kind, message = "production_recovered", "production answers again"
        await self.store.append(
            JournalEvent(
                kind=kind,
                scenario=scenario.name,
                message=f"{message} after {format_duration(down_for)} down",
                data={"proposal": episode.proposal, "down_for": down_for},
            )
        )

    def unsettled(self) -> set[str]:
        """Scenarios whose decision may change by time alone: in an episode (grace period,
        hold-down, recovery block, budget), or waiting for production to stay healthy."""
        return self.episodes.keys() | self.healthy_since.keys()

    def forget(self, scenario: Scenario) -> None:
        """The scenario changed state: its episode (if any) is over."""
        self.episodes.pop(scenario.name, None)
        self.healthy_since.pop(scenario.name, None)
        self.failback_observed.discard(scenario.name)

    async def on_switched(
        self,
        scenario: Scenario,
        parts: Parts,
        now: float,
        verdict: Verdict | None = None,
        members: Sequence[Scenario] = (),
    ) -> dict[str, Any] | None:
        """The trigger's arguments when an automatic failback is due, else None. With several
        observers, never while their ``verdict`` is that production is dead. A together group's
        member fails back with ``members`` (the group's other switched members, not paused):
        only once each of them is due as well (each is looked at in turn: the last one due
        starts it)."""
        if not self._watch_failback(scenario, now, verdict):
            return None
        if not all(self._failback_due(member, now) for member in members):
            return None
        reason = f"production healthy for {format_duration(scenario.config.failback.stable_for)}"
        if members:
            reason += f" at {', '.join(sorted(m.name for m in (scenario, *members)))}"
        if self._observing(scenario):  # proposed once while production stays healthy
            if scenario.name not in self.failback_observed:
                self.failback_observed.add(scenario.name)
                await self.propose(scenario, parts, "failback", reason, "observe", new_runbook_id())
            return None
        for member in (scenario, *members):
            del self.healthy_since[member.name]
        runbook = new_runbook_id()
        event = await self.propose(scenario, parts, "failback", reason, "act", runbook)
        return {"actor": "detector", "reason": reason, "runbook": runbook, "proposal": event.id}

    def _watch_failback(self, scenario: Scenario, now: float, verdict: Verdict | None) -> bool:
        """Start or end the wait for production to stay healthy; whether the automatic failback
        is due (see _failback_due)."""
        policy = scenario.config.failback
        healthy = scenario.detectors["production"].is_healthy()
        if policy.mode != "automatic" or not healthy or (verdict is not None and verdict.dead):
            self.healthy_since.pop(scenario.name, None)
            self.failback_observed.discard(scenario.name)
            return False
        self.healthy_since.setdefault(scenario.name, now)
        return self._failback_due(scenario, now)

    def _failback_due(self, scenario: Scenario, now: float) -> bool:
        """Production has been healthy for ``failback.stable_for``, as last looked at."""
        since = self.healthy_since.get(scenario.name)
        return since is not None and now - since >= scenario.config.failback.stable_for

    async def rearm(self, actor: str) -> str | None:
        """Re-arm a spent budget; the reason it cannot, or None."""
        if self.safety.budget is None:
            return "no failover budget is configured (safety.budget)"
        if self.budget.armed:
            return f"the budget is not spent: {self.budget.describe()}"
        self.budget.rearm()
        await self.store.append(
            JournalEvent(kind=REARMED, message="failover budget re-armed", actor=actor)
        )
        return None
