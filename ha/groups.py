"""Group commands: run, stop, failover, switchover, failback and recover a whole group, in waves.

A group command is a background task that never acts itself: it hands each member's command to
the daemon's loop as an intent, waits until every member of the wave reached its goal (active and
healthy on the new side), and only then starts the next wave. A member that fails stops the waves
after it; the group report says, member by member, what happened and what did not. A command
cancelled by an operator starts no other member: the members in flight finish their runbooks
(never half-done), and the report says which ones it did not start. An automatic (together)
failover that fails or is cancelled pauses the members it did not move: an operator decides
what comes next, also after a restart (a dead member would start it again).

A group test asks for every member's Assured Recovery test at once (the daemon runs at most
``recovery_tests.max_concurrent`` at a time; each rehearsal reverts its replica, so there is no
order to keep) and reports each member's result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ha.ar_runner import RecoveryTests
from ha.commands import FORCE_OVERRIDES, RECOVER_NEEDS_ACTIVE, Intent, Outcome
from ha.groups_config import GROUP_ACTIONS, GroupConfig
from ha.groups_pause import held_note, hold_unmoved
from ha.machine import RUNBOOK_STATES
from ha.scenario import Scenario
from ha.store import JournalCursor, JournalEvent, Side, Store
from ha.wave import RedirectGate, set_gate

log = structlog.get_logger("ha.groups")

WAVE_POLL = 0.02  # seconds between two looks at the members of a wave in flight


def goal(action: str, active: Side | None) -> str:
    """The state a member must reach for ``action`` to be done ("": any, for run and test)."""
    if action == "recover":
        return "running" if active == "production" else "switched"
    return {"run": "", "test": "", "stop": "stopped", "failback": "running"}.get(action, "switched")


def command_waves(group: GroupConfig, action: str) -> list[list[str]]:
    """The waves of a group command: stop goes in reverse order; a test asks for every member's
    at once (each rehearsal reverts its replica: no order to keep)."""
    waves = group.waves()
    if action == "stop":
        waves.reverse()
    if action == "test":
        waves = [[name for wave in waves for name in wave]]
    return waves


def skip_reason(scenario: Scenario, action: str, active: Side | None) -> str | None:
    """Why a member needs nothing for ``action`` (it is already there, or it is stopped: an
    operator took it out of protection, so a group command other than run leaves it as it is
    rather than failing for it and holding up the members after it), or None."""
    state = scenario.state
    if action == "run" and state != "stopped":
        return f"already {state}"
    if action == "stop" and state == "stopped":
        return "already stopped"
    if state == "stopped" and action != "run":
        return "stopped (not protected): left as it is"
    if action in ("failover", "switchover") and state == "switched":
        return "already on the replica"
    if action == "failback" and state == "running":
        return "already on production"
    if action == "recover" and state == goal(action, active):
        return f"already {state} with {active} active"
    return None


def operator_has(scenario: Scenario) -> str | None:
    """Why an automatic group command (a together failover) leaves a member alone, or None: it
    is paused for maintenance, or blocked or split, waiting for an operator, or in a runbook
    that leads elsewhere (a failback an operator asked for). The others go on."""
    if scenario.record.paused:
        return "paused (maintenance): no automatic action; left as it is"
    if scenario.state in ("blocked", "split"):
        return f"{scenario.state}: waits for an operator; left as it is"
    if scenario.state in RUNBOOK_STATES:
        return f"in its {scenario.record.runbook_kind} runbook: left as it is"
    return None


def in_flight_to(scenario: Scenario, target: str) -> bool:
    """Whether the member's runbook in flight ends in ``target``: a failover, switchover or
    recover-replica ends switched; a failback or recover-production, running."""
    if scenario.state not in RUNBOOK_STATES or not target:
        return False
    kind = scenario.record.runbook_kind
    ends = "running" if kind in ("failback", "recover-production") else "switched"
    return ends == target


def member_action(scenario: Scenario, action: str, active: Side | None) -> str:
    """The member's own command: recover for a split or blocked member; a member that is only on
    the other side is moved there by a failover (to the replica) or a failback."""
    if action != "recover" or scenario.state in ("split", "blocked"):
        return action
    return "failover" if active == "replica" else "failback"


def member_refusal(member: str, action: str, active: Side | None, why: str) -> str:
    """A member's refusal as a group command reports it: the --force that overrides it is an
    option of the member's own command (a group command has none)."""
    own = f"ha {action} {member}" + (f" --active {active}" if action == "recover" else "")
    return "refused: " + why.replace(FORCE_OVERRIDES, f"(`{own} --force` overrides)")


def group_conflict(daemon: Any, group: str, action: str, active: Side | None) -> str | None:
    """Why a group command cannot start now, or None."""
    if action not in GROUP_ACTIONS:
        return f"no group action {action!r}; actions: {', '.join(GROUP_ACTIONS)}"
    if action == "recover" and active not in ("production", "replica"):
        return RECOVER_NEEDS_ACTIVE
    running = daemon.groups.busy(group, action)
    if running is not None:
        return f"group {group} is busy: {running} in progress"
    return None


@dataclass
class GroupCommand:
    group: GroupConfig
    action: str
    actor: str
    active: Side | None = None
    report: dict[str, str] = field(default_factory=dict)
    cancelled_by: str | None = None  # who cancelled it: no other member starts
    held_back: set[str] = field(default_factory=set)  # members not started for the cancel


class GroupRunner:
    """Runs group commands as tasks: at most one that drives the members per group at a time, and
    at most one test (a test drives nothing: members fail over as usual during a rehearsal)."""

    def __init__(
        self,
        scenarios: Mapping[str, Scenario],
        submit: Callable[[Intent], None],
        store: Store,
        tests: Callable[[], RecoveryTests],
    ) -> None:
        self.scenarios = scenarios
        self.submit = submit
        self.store = store
        self.tests = tests  # the daemon's current RecoveryTests (made again on taking charge)
        self.running: dict[str, tuple[GroupCommand, asyncio.Task[None]]] = {}  # driving members
        self.testing: dict[str, tuple[GroupCommand, asyncio.Task[None]]] = {}  # group tests
        self.reports: dict[str, JournalEvent] = {}  # each group's latest group_report
        # Read from the journal (catch_up): the group commands with no report yet, by group
        # and whether a test; on a follower, the leader's commands in progress.
        self.unfinished: dict[tuple[str, bool], JournalEvent] = {}
        self.cancels: dict[str, JournalEvent] = {}  # of the unfinished command driving a group
        self.journal = JournalCursor(store, ("group_command", "group_cancel", "group_report"))

    def operation(self, group: str) -> str | None:
        """The group command in progress: the one driving the members, else a test (on a
        follower: the leader's, as the journal says)."""
        entry = self.running.get(group) or self.testing.get(group)
        if entry is not None:
            return entry[0].action
        command = self.unfinished.get((group, False)) or self.unfinished.get((group, True))
        return str(command.data.get("action")) if command is not None else None

    async def catch_up(self) -> None:
        """Read the group commands and reports written since the last call: on taking charge
        (to resume what was interrupted), and on a follower asked for its status (the leader's
        commands in progress and reports): each group's latest report, and the commands not
        reported yet."""
        for event in await self.journal.new():
            key = (str(event.data.get("group")), event.data.get("action") == "test")
            if event.kind == "group_command":
                self.unfinished[key] = event
            elif event.kind == "group_cancel":
                self.cancels[key[0]] = event
            else:
                self.unfinished.pop(key, None)
                self.reports[key[0]] = event
                if not key[1]:
                    self.cancels.pop(key[0], None)

    def holds(self, group: str) -> bool:
        """A command drives the members: their automatic actions wait until it ends."""
        return group in self.running

    def busy(self, group: str, action: str) -> str | None:
        """The command in progress that ``action`` would have to wait for, or None. A test waits
        for any; nothing waits for a test (a failover of the group may start during one)."""
        entry = self.running.get(group)
        if action == "test":
            entry = entry or self.testing.get(group)
        return entry[0].action if entry else None

    def cancelled(self, group: str) -> str | None:
        """Who cancelled the command in progress (on a follower: as the journal says), or None."""
        entry = self.running.get(group)
        if entry is not None:
            return entry[0].cancelled_by
        cancel = self.cancels.get(group)
        return cancel.actor if cancel is not None and (group, False) in self.unfinished else None

    def cancellable(self, group: str) -> GroupCommand | str:
        """The command driving the group's members, which ``cancel`` would stop from starting
        any other member; or why there is nothing to cancel."""
        entry = self.running.get(group)
        if entry is None:
            test = (
                " (a group test is: each rehearsal ends by itself)" if group in self.testing else ""
            )
            return f"no group command in progress for {group}{test}"
        command = entry[0]
        if command.cancelled_by is not None:
            return f"group {group}: its {command.action} was cancelled by {command.cancelled_by}"
        return command

    def start(self, command: GroupCommand) -> None:
        name = command.group.name
        table = self.testing if command.action == "test" else self.running
        task = asyncio.create_task(self._run(command))
        table[name] = (command, task)
        task.add_done_callback(lambda _: table.pop(name, None))

    async def close(self) -> None:
        tasks = [task for table in (self.running, self.testing) for _, task in table.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _journal(self, command: GroupCommand, kind: str, message: str, **data: Any) -> None:
        event = await self.store.append(
            JournalEvent(
                kind=kind,
                message=f"group {command.group.name}: {message}",
                actor=command.actor,
                data={"group": command.group.name, "action": command.action, **data},
            )
        )
        if kind == "group_report":
            self.reports[command.group.name] = event

    async def _run(self, command: GroupCommand) -> None:
        waves = command_waves(command.group, command.action)
        failed = False
        for number, wave in enumerate(waves, 1):
            if failed:
                for name in wave:
                    command.report[name] = "not started: an earlier wave failed"
                continue
            if command.cancelled_by is None:
                await self._journal(command, "group_wave", f"wave {number}: {', '.join(wave)}")
            failed = not await self._wave(command, wave)
        word = "failed" if failed else "cancelled" if command.held_back else "done"
        summary = "; ".join(f"{name}: {what}" for name, what in command.report.items())
        ok = not failed and not command.held_back
        extra: dict[str, Any] = (
            {"cancelled_by": command.cancelled_by} if command.cancelled_by else {}
        )
        if failed and command.actor == "detector" and command.action == "failover":
            name = command.group.name
            why = f"the automatic failover of group {name} failed"
            members = [self.scenarios[member] for member in command.group.scenarios]
            extra["paused"] = await hold_unmoved(members, "detector", why)
            summary += held_note(extra["paused"], name)
        await self._journal(
            command,
            "group_report",
            f"{command.action} {word}: {summary}",
            ok=ok,
            ended=word,
            members=command.report,
            **extra,
        )
        log.info("group command ended", group=command.group.name, ok=ok)

    async def _wave(self, command: GroupCommand, wave: list[str]) -> bool:
        """Start every member of the wave, then wait until each reached its goal; False if one
        did not (the report says why). Members redirect together (ha.wave)."""
        if command.action == "test":
            tested = await asyncio.gather(*(self._test_member(command, n) for n in wave))
            return all(tested)
        members = [self.scenarios[name] for name in wave]
        gate = RedirectGate(wave)
        set_gate(members, gate)
        try:
            started = await asyncio.gather(*(self._start_member(command, n) for n in wave))
            ok = all(result is not False for result in started)
            waiting = [name for name, result in zip(wave, started, strict=True) if result is None]
            for name in set(wave) - set(waiting):
                gate.leave(name)
            target = goal(command.action, command.active)
            while waiting:
                still = []
                for name in waiting:
                    reached = self._reached(command, name, target)
                    if reached is None:
                        still.append(name)
                    else:
                        gate.leave(name)
                    ok = ok and reached is not False
                waiting = still
                if waiting:
                    await asyncio.sleep(WAVE_POLL)
            return ok
        finally:
            set_gate(members, None)
            gate.open()

    async def _start_member(self, command: GroupCommand, name: str) -> bool | None:
        """Hand the member's command to the loop: True when it needs nothing, False when it was
        refused, None once accepted (then wait for it)."""
        scenario = self.scenarios[name]
        skip = skip_reason(scenario, command.action, command.active)
        if skip is None and in_flight_to(scenario, goal(command.action, command.active)):
            return None  # its runbook leads there (resumed after a restart, or its own): wait
        if skip is None and command.actor == "detector":
            skip = operator_has(scenario)
        if skip is None and command.cancelled_by is not None:
            skip = f"not started: cancelled by {command.cancelled_by}"
            command.held_back.add(name)
        if skip is not None:
            command.report[name] = skip
            return True
        action = member_action(scenario, command.action, command.active)
        intent = Intent(
            action=action,
            scenario=name,
            actor=f"group:{command.group.name}",
            active=command.active if action == "recover" else None,
            confirmed=action == "failover",
        )
        self.submit(intent)
        outcome: Outcome = await intent.future
        if outcome.status != "accepted":
            command.report[name] = member_refusal(name, action, command.active, outcome.message)
            return False
        return None

    async def _test_member(self, command: GroupCommand, name: str) -> bool:
        """Ask for the member's test and wait for its result; False unless it passed. A member
        whose test runs already (scheduled, or asked for on its own) is not refused: the result
        of that test serves."""
        tests = self.tests()
        verdict = tests.verdict(name)
        joined = name in tests.running
        if not joined:
            started = await self._start_member(command, name)
            if started is not None:  # refused: the report says why
                verdict.cancel()
                return started
        kind, message = await verdict
        also = " (the test that was running)" if joined else ""
        command.report[name] = f"{kind.removeprefix('ar_')}: {message}{also}"
        return kind == "ar_passed"

    def _reached(self, command: GroupCommand, name: str, target: str) -> bool | None:
        """True once the member reached ``target``, False if it ended elsewhere (reported),
        None while it is on its way."""
        scenario = self.scenarios[name]
        if target and scenario.state != target:
            if scenario.state == "blocked":
                command.report[name] = f"blocked: {scenario.record.reason}"
                return False
            if scenario.state in ("running", "switched") and command.action != "run":
                command.report[name] = f"ended {scenario.state}: {scenario.record.reason or ''}"
                return False
            return None
        command.report[name] = f"{scenario.state}, {scenario.record.active} active"
        return True
