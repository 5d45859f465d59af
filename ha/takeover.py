"""Taking charge and handing it over: what a daemon does when it starts acting or stops.

With SQLite the daemon takes charge once, at start. With etcd it takes charge each time it wins
the leadership: it reads every scenario's state from the store, rebuilds what the journal says
(failover budget, recovery blocks, interrupted Assured Recovery tests) and resumes the runbooks in
flight from the journal, each step done once. It hands over when its lease is no longer trusted:
runbooks are cancelled (already at the moment of the loss, by the daemon), groups and tests stop,
commands are answered 503, and it follows the leader's record of each scenario.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from ha.ar_runner import RecoveryTests
from ha.autopilot import Autopilot
from ha.groups import GroupCommand
from ha.intents import refuse_waiting
from ha.machine import RUNBOOK_STATES
from ha.store import JournalEvent, ScenarioRecord

if TYPE_CHECKING:
    from ha.cluster import Cluster
    from ha.daemon import Daemon

log = structlog.get_logger("ha.takeover")


async def take_charge(daemon: Daemon, records: Mapping[str, ScenarioRecord], why: str) -> None:
    """Start acting: register new scenarios, rebuild what the journal says (budget, recovery
    blocks, interrupted tests), resume the runbooks in flight. Raises StoreError (NotLeader
    when leadership is lost meanwhile: the next cycle tries again)."""
    daemon.deposed = False
    if daemon.cluster is not None:  # first: all it does from now on follows this entry
        daemon.cluster.forget_disagreements()
        await daemon.store.append(
            JournalEvent(
                kind="leader",
                message=f"{daemon.cluster.name} leads",
                data={"instance": daemon.cluster.name},
            )
        )
    new = [
        (
            scenario.record,
            JournalEvent(
                kind="registered", scenario=name, message=f"new scenario, {scenario.state}"
            ),
        )
        for name, scenario in daemon.scenarios.items()
        if name not in records
    ]
    await daemon.store.transitions(new)  # new scenarios: one durable write for all
    daemon.autopilot = Autopilot(daemon.config, daemon.store)
    await daemon.autopilot.restore()
    daemon.tests = RecoveryTests(
        daemon.config, daemon.store, daemon.scenarios, daemon.providers, daemon.probe_replica
    )
    await daemon.tests.restore(time.time())  # undo interrupted tests before any runbook acts
    daemon.in_charge = True
    daemon.prepare(s for s in daemon.scenarios.values() if s.state == "running")
    await resume_runbooks(daemon, why)
    await resume_groups(daemon, why)


async def resume_runbooks(daemon: Daemon, why: str) -> None:
    """Start the runbooks in flight that no task runs (nor just reported on)."""
    reported = {report[0] for report in daemon.reports}
    for scenario in daemon.scenarios.values():
        task = daemon.runbooks.get(scenario.name)
        if (
            scenario.state not in RUNBOOK_STATES
            or (task is not None and not task.done())
            or scenario.name in reported
        ):
            continue
        await daemon.store.append(
            JournalEvent(
                kind="runbook_resumed",
                scenario=scenario.name,
                runbook=scenario.record.runbook,
                message=f"resuming {scenario.record.runbook_kind} {why}",
            )
        )
        # The operator's options (--force, a group's confirmation) are in its proposal.
        proposal = await daemon.parts[scenario.name].proposal(str(scenario.record.runbook))
        if proposal.get("force"):
            daemon.forced.add(scenario.name)
        if proposal.get("force_promotion"):
            daemon.force_promotion.add(scenario.name)
        daemon.start_runbook(scenario)


async def resume_groups(daemon: Daemon, why: str) -> None:
    """Group commands that a restart or a change of leader interrupted (a ``group_command``
    with no ``group_report`` after it) start again: members already at their goal are skipped,
    a member whose runbook resumed above is waited for, the later waves follow (a cancelled
    command starts no other member). An interrupted group test ends with its report instead:
    the restart rolled each rehearsal back. (A follower has read the journal's group entries as
    it went: only the rest is read.)"""
    await daemon.groups.catch_up()
    unfinished, daemon.groups.unfinished = daemon.groups.unfinished, {}
    cancels, daemon.groups.cancels = daemon.groups.cancels, {}
    for (name, test), event in unfinished.items():
        group, action = daemon.config.group(name), str(event.data.get("action"))
        active = event.data.get("active")
        if group is None or test or (action == "recover" and active is None):
            daemon.groups.reports[name] = await daemon.store.append(
                JournalEvent(
                    kind="group_report",
                    message=f"group {name}: {action} interrupted {why}; not resumed",
                    actor=event.actor,
                    data={"group": name, "action": action, "ok": False, "members": {}},
                )
            )
            continue
        cancel = cancels.get(name)
        cancelled_by = cancel.actor if cancel is not None else None
        cancelled = f"; cancelled by {cancelled_by}: no other member starts" if cancel else ""
        await daemon.store.append(
            JournalEvent(
                kind="group_resumed",
                message=f"group {name}: resuming {action} (command #{event.id}) {why}{cancelled}",
                actor=event.actor,
                data={"group": name, "action": action, "command": event.id},
            )
        )
        command = GroupCommand(group, action, event.actor, active, cancelled_by=cancelled_by)
        daemon.groups.start(command)


async def lead(daemon: Daemon, cluster: Cluster) -> bool:
    """Follow or lead for this cycle; True when this instance is in charge. Leadership lost
    even for a moment means stepping down: another instance may have acted meanwhile."""
    if daemon.in_charge and (daemon.deposed or not cluster.leading):
        await step_down(daemon)
    if cluster.leading:
        if not daemon.in_charge:
            records = await daemon.store.scenarios()
            follow(daemon, records)  # what the last leader wrote, up to its last write
            await take_charge(daemon, records, "after a takeover")
        return True
    refuse_waiting(daemon, not_leader(daemon))
    daemon.reports.clear()  # the leader acts on its own reports
    follow(daemon, await daemon.store.scenarios())
    return False


def not_leader(daemon: Daemon) -> str:
    assert daemon.cluster is not None
    leader = daemon.cluster.elector.leader
    return f"{daemon.cluster.name} is not the leader; " + (
        f"ask {leader}" if leader and leader != daemon.cluster.name else "no leader now"
    )


async def step_down(daemon: Daemon) -> None:
    daemon.in_charge = False
    tasks, daemon.runbooks = list(daemon.runbooks.values()), {}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await daemon.groups.close()
    await daemon.tests.close()
    await daemon.readback.close()
    daemon.autopilot = Autopilot(daemon.config, daemon.store)  # a follower's: read when asked
    log.warning("stepped down: another instance may lead now", runbooks=len(tasks))


def follow(daemon: Daemon, records: Mapping[str, ScenarioRecord]) -> None:
    """Take the leader's word for each scenario's state (what we check, what we show)."""
    for name, scenario in daemon.scenarios.items():
        record = records.get(name)
        if record is None or record == scenario.record:
            continue
        scenario.record = record
        if scenario.state != record.state:
            daemon.machine.set_state(record.state, model=scenario)
            daemon.state_changed(name)
            if record.state == "stopped":
                daemon.monitor.unwatch(name)
            else:
                daemon.monitor.watch(name, daemon.checks[name])
