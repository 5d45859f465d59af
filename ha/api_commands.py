"""Push-button routes: validate, hand an intent to the daemon's loop, answer 202, 409 or 503.

A dry run answers what the command would do now (a runbook's steps, a group's waves) and takes
no step. These routes never act themselves: only the loop does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from ha.api_base import DAEMON, actor, error, group_of, scenario_of
from ha.commands import ACTIONS, RECOVER_NEEDS_ACTIVE, RUNBOOK_COMMANDS, Intent, conflict
from ha.daemon import Daemon
from ha.format import test_plan
from ha.groups import (
    GroupCommand,
    command_waves,
    goal,
    group_conflict,
    in_flight_to,
    member_action,
    member_refusal,
    skip_reason,
)
from ha.groups_config import GROUP_ACTIONS, GROUP_BUTTONS, GroupConfig
from ha.groups_pause import pause_conflict, pause_leaves
from ha.machine import RUNBOOK_STATES
from ha.runbook import Runbook
from ha.scenario import SUPPOSABLE, Scenario
from ha.steps import build_steps
from ha.store import Side
from ha.takeover import not_leader

LOOP_DEADLINE = 10.0  # the loop must take a command within this long, else 503
BODY_FIELDS = ("force", "dry_run", "active", "force_promotion", "as_if")
GROUP_BODY_FIELDS = ("dry_run", "active", "as_if")  # a member's options are its own
PLANS = {
    "run": "start the checks; fail over automatically when production dies",
    "stop": "stop the checks; no automatic action",
    "abort": "give up the blocked runbook; the active side stays as it is now",
    "pause": "keep checking and reporting; take no automatic action",
    "resume": "take automatic actions again",
}


async def _body(
    request: web.Request, action: str, fields: tuple[str, ...] = BODY_FIELDS
) -> dict[str, Any]:
    body = await _json_object(request, fields)
    if body.get("active") not in (None, "production", "replica"):
        raise web.HTTPUnprocessableEntity(reason="active must be production or replica")
    if action == "recover" and body.get("active") is None:
        raise web.HTTPUnprocessableEntity(reason=RECOVER_NEEDS_ACTIVE)
    return body


async def _json_object(request: web.Request, fields: tuple[str, ...]) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    unknown = set(body) - set(fields)
    if unknown:
        raise web.HTTPUnprocessableEntity(reason=f"unknown fields: {', '.join(sorted(unknown))}")
    for key in ("force", "dry_run", "force_promotion"):
        if not isinstance(body.get(key, False), bool):
            raise web.HTTPUnprocessableEntity(reason=f"{key} must be true or false")
    if "as_if" in body:
        _check_as_if(request.app[DAEMON], body)
    return body


def _check_as_if(daemon: Daemon, body: dict[str, Any]) -> None:
    """``as_if``, a dry run's supposition: {scenario: state} judges those scenarios as if a
    command before had left them in that state (a playbook's --check). Never with an action."""
    if not body.get("dry_run"):
        raise web.HTTPUnprocessableEntity(reason="as_if is for a dry run only (dry_run: true)")
    as_if = body["as_if"]
    if not isinstance(as_if, dict):
        raise web.HTTPUnprocessableEntity(reason="as_if must be an object: {scenario: state}")
    for name, state in as_if.items():
        if name not in daemon.scenarios:
            raise web.HTTPUnprocessableEntity(reason=f"as_if: no scenario named {name!r}")
        if not isinstance(state, str) or state not in SUPPOSABLE:
            raise web.HTTPUnprocessableEntity(
                reason=f"as_if.{name}: {state!r} is not one of {', '.join(SUPPOSABLE)}"
            )


def _judged(scenario: Scenario, body: dict[str, Any]) -> Scenario:
    """The scenario as a dry run judges it: as it is, or as ``as_if`` supposes."""
    state = body.get("as_if", {}).get(scenario.name)
    return scenario if state is None else scenario.supposing(state)


async def command(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    target = scenario_of(request)
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound(reason=f"no action {action!r}; actions: {', '.join(ACTIONS)}")
    body = await _body(request, action)
    target = _judged(target, body)
    force = bool(body.get("force", False))
    active = body.get("active")
    why_not = conflict(target, action, force=force, now=time.time(), active=active)
    if why_not is not None:
        return error(409, why_not)
    if body.get("dry_run"):
        kind = f"recover-{active}" if action == "recover" else action
        return web.json_response(await _plan(daemon, target, kind, force))
    intent = Intent(
        action=action,
        scenario=target.name,
        actor=actor(request),
        force=force,
        active=active,
        force_promotion=bool(body.get("force_promotion", False)),
    )
    return await _submit(daemon, intent)


async def rearm(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    return await _submit(daemon, Intent(action="rearm", scenario="", actor=actor(request)))


async def group_command(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    group, action = group_of(request), request.match_info["action"]
    name = group.name
    if action == "cancel":
        return await _group_cancel(request, daemon, group)
    if action in ("pause", "resume"):
        return await _group_pause(request, daemon, group, action)
    if action not in GROUP_ACTIONS:
        raise web.HTTPNotFound(
            reason=f"no group action {action!r}; actions: {', '.join(GROUP_BUTTONS)}"
        )
    body = await _body(request, action, GROUP_BODY_FIELDS)
    active = body.get("active")
    why_not = group_conflict(daemon, name, action, active)
    if why_not is not None:
        return error(409, why_not)
    if body.get("dry_run"):
        plan = _group_plan(daemon, group, action, body)
        return web.json_response({"dry_run": True, "group": name, "action": action, "plan": plan})
    intent = Intent(action=action, scenario="", group=name, actor=actor(request), active=active)
    return await _submit(daemon, intent)


async def _group_cancel(request: web.Request, daemon: Daemon, group: GroupConfig) -> web.Response:
    """Cancel the group command in progress: no other member starts (dry_run: what it leaves)."""
    body = await _json_object(request, ("dry_run",))
    if not body.get("dry_run"):
        intent = Intent(action="cancel", scenario="", group=group.name, actor=actor(request))
        return await _submit(daemon, intent)
    if not daemon.in_charge:  # a follower runs no group command: the leader knows what it left
        return error(503, not_leader(daemon))
    command = daemon.groups.cancellable(group.name)
    if isinstance(command, str):
        return error(409, command)
    plan = [
        {"wave": number, "scenario": member, "plan": shown, "acts": acts, "refused": False}
        for number, wave in enumerate(command_waves(group, command.action), 1)
        for member in wave
        for shown, acts in [_left_by_cancel(daemon.scenarios[member], command)]
    ]
    return web.json_response(
        {"dry_run": True, "group": group.name, "action": "cancel", "plan": plan}
    )


async def _group_pause(
    request: web.Request, daemon: Daemon, group: GroupConfig, action: str
) -> web.Response:
    """Pause or resume every member (dry_run: which, wave by wave; the others are so already)."""
    body = await _json_object(request, ("dry_run",))
    if not body.get("dry_run"):
        intent = Intent(action=action, scenario="", group=group.name, actor=actor(request))
        return await _submit(daemon, intent)
    plan = [
        {
            "wave": number,
            "scenario": member,
            "plan": shown,
            "acts": leaves is None,
            "refused": False,
        }
        for number, wave in enumerate(group.waves(), 1)
        for member in wave
        for leaves in [pause_leaves(daemon.scenarios[member], action)]
        for shown in [PLANS[action] if leaves is None else f"{leaves}: left as it is"]
    ]
    if not any(row["acts"] for row in plan):
        return error(409, pause_conflict(group.name, action))
    return web.json_response({"dry_run": True, "group": group.name, "action": action, "plan": plan})


def _left_by_cancel(member: Scenario, command: GroupCommand) -> tuple[str, bool]:
    """What a cancel leaves of a member: its report so far, its runbook in flight (finished:
    it still moves), or the start it will not get."""
    if member.name in command.report:
        return command.report[member.name], False
    if member.state in RUNBOOK_STATES:
        return f"finishes its {member.record.runbook_kind} runbook", True
    return "not started (cancelled)", False


def _group_plan(
    daemon: Daemon, group: GroupConfig, action: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """What a group command would do, wave by wave (see _member_plan); a wave with a member that
    would be refused fails, and the later waves would not start."""
    active, now, refused = body.get("active"), time.time(), False
    plan: list[dict[str, Any]] = []
    for number, wave in enumerate(command_waves(group, action), 1):
        rows = [
            ("not started: an earlier wave would fail", False, False)
            if refused
            else _member_plan(_judged(daemon.scenarios[member], body), action, active, now)
            for member in wave
        ]
        plan += [
            {"wave": number, "scenario": member, "plan": shown, "acts": acts, "refused": no}
            for member, (shown, acts, no) in zip(wave, rows, strict=True)
        ]
        refused = refused or any(refused_here for _, _, refused_here in rows)
    return plan


def _member_plan(
    member: Scenario, action: str, active: Side | None, now: float
) -> tuple[str, bool, bool]:
    """What a group command would have the member do, whether it moves, whether it would be
    refused: its own command (or its runbook already in flight, waited for); or why it needs
    none, or why it would be refused."""
    skip = skip_reason(member, action, active)
    if skip is not None:
        return skip, False, False
    if in_flight_to(member, goal(action, active)):
        return f"its {member.record.runbook_kind} in progress: waited for", True, False
    does = member_action(member, action, active)
    refusal = conflict(member, does, force=False, now=now, active=active)  # a test: None
    if refusal is not None:
        return member_refusal(member.name, does, active, refusal), False, True
    if action == "recover":  # a split or blocked member recovers, another moves
        does += f" --active {active}" if does == action else f" (to make {active} active)"
    return does, True, False


async def _submit(daemon: Daemon, intent: Intent) -> web.Response:
    daemon.submit(intent)
    try:
        async with asyncio.timeout(LOOP_DEADLINE):
            outcome = await asyncio.shield(intent.future)
    except TimeoutError:
        intent.future.cancel()  # withdrawn: the loop must not carry out what we answer 503 to
        return error(503, f"the daemon did not take the command within {LOOP_DEADLINE:g}s")
    if outcome.status != "accepted":
        return error(409 if outcome.status == "conflict" else 503, outcome.message)
    return web.json_response(
        {
            "status": "accepted",
            "message": outcome.message,
            "runbook": outcome.runbook,
            "command": outcome.command,
        },
        status=202,
    )


async def _plan(daemon: Daemon, target: Scenario, action: str, force: bool) -> dict[str, Any]:
    """The steps ``action`` would take now, without taking them."""
    steps: list[dict[str, Any]] = []
    if action in RUNBOOK_COMMANDS or action.startswith("recover-"):
        done: set[str] = set()
        if target.state == "blocked" and target.record.runbook and action in RUNBOOK_COMMANDS:
            done = await Runbook(
                id=target.record.runbook,
                kind=action,
                scenario=target.name,
                steps=[],
                policy=target.config.runbook,
                store=daemon.store,
            ).done_steps()
        for step in build_steps(action, daemon.parts[target.name], force=force):
            steps.append(
                {
                    "step": step.name,
                    "plan": step.plan,
                    "status": "done" if step.name in done else "to do",
                }
            )
    elif action == "test":
        for line in test_plan(daemon.config, target.name)[1:]:
            steps.append({"step": "test", "plan": line.strip(), "status": "to do"})
    else:
        plan = PLANS.get(action, f"{action} {target.name} now")
        steps.append({"step": action, "plan": plan, "status": "to do"})
    return {
        "dry_run": True,
        "scenario": target.name,
        "action": action,
        "state": target.state,
        "steps": steps,
    }
