"""Deciding, once per cycle for each scenario the agenda names: a split (both sides act as
active: reported also while paused, it acts on nothing), an automatic failover while running,
an automatic failback while switched. A member of a ``together`` group decides for its group:
the group command, every member in waves. Only the daemon's loop calls this, so decisions never
race operator commands or each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ha.coordination_quorum import Verdict
from ha.groups import GroupCommand
from ha.groups_config import GroupConfig
from ha.intents import journal_group_start
from ha.scenario import Scenario

if TYPE_CHECKING:
    from ha.daemon import Daemon


async def evaluate(daemon: Daemon, scenario: Scenario, now: float, verdict: Verdict | None) -> None:
    """Decide for ``scenario`` now (``verdict``: the observers', with an etcd state)."""
    group = daemon.config.group_of(scenario.name)
    if group is not None and daemon.groups.holds(group.name):
        daemon.agenda.mark(scenario.name)  # not evaluated: the next cycle looks again
        return
    split = scenario.split_reason() if scenario.state in ("running", "switched") else None
    if split is not None:  # also while paused: a split is reported, it acts on nothing
        await daemon.pull(scenario, "split", reason=split)
        return
    if scenario.record.paused:
        daemon.agenda.mark(scenario.name)
        return
    parts = daemon.parts[scenario.name]
    together = group if group is not None and group.failover == "together" else None
    if scenario.state == "running":
        kwargs = await daemon.autopilot.on_running(scenario, parts, now, verdict)
        if kwargs is None:
            daemon.agenda.at(scenario.name, scenario.detectors["production"].expires_at(now))
        elif together is not None:
            await _together(daemon, together, "failover", kwargs["reason"])
        else:
            await daemon.pull(scenario, "failover", **kwargs)
    elif scenario.state == "switched":
        names = together.scenarios if together is not None else []
        fellows = [daemon.scenarios[name] for name in names if name != scenario.name]
        fellows = [m for m in fellows if m.state == "switched" and not m.record.paused]
        kwargs = await daemon.autopilot.on_switched(scenario, parts, now, verdict, fellows)
        if kwargs is None:
            return
        if together is not None:
            await _together(daemon, together, "failback", kwargs["reason"])
        else:
            await daemon.pull(scenario, "failback", **kwargs)


async def _together(daemon: Daemon, group: GroupConfig, action: str, reason: str) -> None:
    """An automatic decision for a together group: the group command, every member."""
    command = GroupCommand(group, action, "detector")
    daemon.groups.start(command)
    await journal_group_start(daemon, command, reason)
