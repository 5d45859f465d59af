"""Applying operator commands in the daemon's loop: the only place they turn into actions.

Each command is journaled with who asked before anything happens, checked against the current
state, and answered (accepted or conflict) through the intent's future; unavailable, with the
reason, when the state store refuses its writes (nothing of it happened then: every transition
is written before it happens).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ha.autopilot import new_runbook_id
from ha.commands import RUNBOOK_COMMANDS, Intent, Outcome, conflict
from ha.errors import StoreError
from ha.groups import GroupCommand, group_conflict
from ha.groups_config import GroupConfig
from ha.groups_pause import held_note, hold_unmoved, pause_conflict, pause_leaves
from ha.machine import RUNBOOK_STATES
from ha.store import JournalEvent

if TYPE_CHECKING:
    from ha.daemon import Daemon


async def apply_intent(daemon: Daemon, intent: Intent) -> None:
    if intent.future.done():
        return  # withdrawn: its asker was answered 503 (not taken in time) and went away
    try:
        await _apply(daemon, intent)
    except StoreError as exc:
        refuse(intent, f"the state store failed: {exc}")


def refuse_waiting(daemon: Daemon, reason: str) -> None:
    """Answer every command waiting for the loop: unavailable, for ``reason``."""
    while not daemon.intents.empty():
        refuse(daemon.intents.get_nowait(), reason)


def refuse(intent: Intent, reason: str) -> None:
    if not intent.future.done():
        intent.future.set_result(Outcome("unavailable", reason))


async def _apply(daemon: Daemon, intent: Intent) -> None:
    if intent.action == "rearm":
        await _rearm(daemon, intent)
        return
    if intent.group is not None:
        await _apply_group_intent(daemon, intent)
        return
    scenario = daemon.scenarios[intent.scenario]
    event = await daemon.store.append(
        JournalEvent(
            kind="command",
            scenario=intent.scenario,
            actor=intent.actor,
            message=f"{intent.action}{_options(intent)} requested",
            data={"action": intent.action, "force": intent.force, "active": intent.active},
        )
    )
    if intent.action == "test":
        await _apply_test(daemon, intent, event)
        return
    why_not = conflict(
        scenario, intent.action, force=intent.force, now=time.time(), active=intent.active
    )
    if why_not is not None:
        outcome = Outcome("conflict", why_not)
    elif intent.action in ("pause", "resume"):
        await scenario.set_paused(intent.action == "pause", intent.actor)
        outcome = Outcome("accepted", f"{intent.scenario} {intent.action}d")
    else:
        if intent.force or intent.confirmed:
            daemon.forced.add(intent.scenario)
        if intent.force_promotion:
            daemon.force_promotion.add(intent.scenario)
        kwargs: dict[str, Any] = {"actor": intent.actor}
        kind = f"recover-{intent.active}" if intent.action == "recover" else intent.action
        if kind != intent.action or (
            intent.action in RUNBOOK_COMMANDS and scenario.state != "blocked"
        ):
            kwargs["runbook"], kwargs["kind"] = new_runbook_id(), kind
            proposal = await daemon.autopilot.propose(
                scenario,
                daemon.parts[scenario.name],
                kind,
                f"requested by {intent.actor}",
                "operator",
                kwargs["runbook"],
                actor=intent.actor,
                force=intent.force or intent.confirmed,
                force_promotion=intent.force_promotion,
            )
            kwargs["proposal"] = proposal.id
        changed = await daemon.pull(scenario, intent.action, **kwargs)
        message = f"{intent.scenario} is {scenario.state.replace('_', ' ')}"
        outcome = Outcome("accepted", message, scenario.record.runbook)
        if not changed:
            daemon.forced.discard(intent.scenario)
            outcome = Outcome("conflict", "the state changed meanwhile; " + message)
    await daemon.store.append(
        JournalEvent(
            kind="command_" + outcome.status,
            scenario=intent.scenario,
            actor=intent.actor,
            message=outcome.message,
            data={"command": event.id},
            runbook=outcome.runbook,
        )
    )
    if not intent.future.done():
        intent.future.set_result(replace(outcome, command=event.id))


async def _apply_group_intent(daemon: Daemon, intent: Intent) -> None:
    group = daemon.config.group(str(intent.group))
    assert group is not None  # the API checked it
    if intent.action == "cancel":
        await _cancel_group(daemon, group.name, intent)
        return
    if intent.action in ("pause", "resume"):
        await _pause_group(daemon, group, intent)
        return
    why_not = group_conflict(daemon, group.name, intent.action, intent.active)
    if why_not is not None:
        outcome = Outcome("conflict", why_not)
    else:
        command = GroupCommand(group, intent.action, intent.actor, intent.active)
        daemon.groups.start(command)
        event = await journal_group_start(daemon, command, f"requested{_options(intent)}")
        outcome = Outcome(
            "accepted", f"group {group.name}: {intent.action} started", command=event.id
        )
    if not intent.future.done():
        intent.future.set_result(outcome)


async def _cancel_group(daemon: Daemon, name: str, intent: Intent) -> None:
    """Stop the group command from starting any other member; those in flight finish."""
    command = daemon.groups.cancellable(name)
    if isinstance(command, str):
        outcome = Outcome("conflict", command)
    else:
        command.cancelled_by = intent.actor
        message = f"group {name}: {command.action} cancelled: {in_flight(daemon, command)}"
        if command.actor == "detector":
            why = f"the automatic failover of group {name} was cancelled"
            members = [daemon.scenarios[member] for member in command.group.scenarios]
            held = await hold_unmoved(members, intent.actor, why)
            message += held_note(held, name)
        event = await daemon.store.append(
            JournalEvent(
                kind="group_cancel",
                message=message,
                actor=intent.actor,
                data={"group": name, "action": command.action},
            )
        )
        outcome = Outcome("accepted", message, command=event.id)
    if not intent.future.done():
        intent.future.set_result(outcome)


async def _pause_group(daemon: Daemon, group: GroupConfig, intent: Intent) -> None:
    """Pause (maintenance: no automatic action) or resume every member not so already."""
    members = [daemon.scenarios[name] for name in group.scenarios]
    changing = [m for m in members if pause_leaves(m, intent.action) is None]
    if not changing:
        outcome = Outcome("conflict", pause_conflict(group.name, intent.action))
    else:
        for member in changing:
            await member.set_paused(intent.action == "pause", intent.actor, f"group {group.name}")
        daemon.agenda.mark(*(m.name for m in changing))  # resumed: a dead one fails over now
        word = f"{intent.action}d"
        message = f"group {group.name}: {', '.join(m.name for m in changing)} {word}"
        left = [m.name for m in members if m not in changing]
        if left:
            message += f" ({', '.join(left)} {word} already)"
        outcome = Outcome("accepted", message)
    if not intent.future.done():
        intent.future.set_result(outcome)


def in_flight(daemon: Daemon, command: GroupCommand) -> str:
    """What a cancel leaves to finish: the members whose runbook is in flight."""
    moving = [
        f"{name} finishes its {daemon.scenarios[name].record.runbook_kind}"
        for name in command.group.scenarios
        if daemon.scenarios[name].state in RUNBOOK_STATES
    ]
    return "no other member starts" + "".join(f"; {what}" for what in moving)


async def journal_group_start(daemon: Daemon, command: GroupCommand, reason: str) -> JournalEvent:
    """The group command's entry: what a restart finds to resume it (ha.takeover)."""
    group, action = command.group.name, command.action
    return await daemon.store.append(
        JournalEvent(
            kind="group_command",
            message=f"group {group}: {action}: {reason}",
            actor=command.actor,
            data={"group": group, "action": action, "active": command.active},
        )
    )


async def _rearm(daemon: Daemon, intent: Intent) -> None:
    why_not = await daemon.autopilot.rearm(intent.actor)
    if why_not is None:
        outcome = Outcome(
            "accepted", f"failover budget re-armed: {daemon.autopilot.budget.describe()}"
        )
    else:
        outcome = Outcome("conflict", why_not)
    if not intent.future.done():
        intent.future.set_result(outcome)


async def _apply_test(daemon: Daemon, intent: Intent, event: JournalEvent) -> None:
    scenario = daemon.scenarios[intent.scenario]
    why_not = daemon.tests.conflict(scenario)
    if why_not is None:
        outcome = Outcome(
            "accepted", daemon.tests.request(scenario, intent.actor), command=event.id
        )
    else:
        outcome = Outcome("conflict", why_not, command=event.id)
    if not intent.future.done():
        intent.future.set_result(outcome)


def _options(intent: Intent) -> str:
    return (
        (f" --active {intent.active}" if intent.active else "")
        + (" --force" if intent.force else "")
        + (" --force-promotion" if intent.force_promotion else "")
    )
