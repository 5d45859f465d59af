"""The local HTTP API (aiohttp). It never acts: it validates, hands an intent to the daemon's loop,
and answers 202 accepted, 409 conflict or 503 unavailable. Errors are JSON ``{"error": reason}``.

Every route under /v1 needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ha.commands import ACTIONS, RUNBOOK_COMMANDS, Intent, conflict
from ha.daemon import Daemon
from ha.groups import GROUP_ACTIONS, group_conflict, skip_reason
from ha.machine import diagram
from ha.runbook import Runbook
from ha.scenario import Scenario
from ha.steps import build_steps
from ha.token import TokenCheck
from ha.views import group_views, proposal_report, scenario_view

LOOP_DEADLINE = 10.0  # the loop must take a command within this long, else 503
WAIT_LIMIT = 60.0  # longest long-poll on /v1/events

DAEMON = web.AppKey("daemon", Daemon)
TOKEN = web.AppKey("token", TokenCheck)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return error(exc.status, exc.reason)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not request.app[TOKEN](presented.strip()):
            return error(401, "missing or wrong bearer token")
    return await handler(request)


def _scenario(request: web.Request) -> Scenario:
    name = request.match_info["name"]
    scenario = request.app[DAEMON].scenarios.get(name)
    if scenario is None:
        raise web.HTTPNotFound(reason=f"no scenario named {name!r}")
    return scenario


async def status(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    return web.json_response(
        {
            "scenarios": [scenario_view(s) for s in daemon.scenarios.values()],
            "groups": group_views(daemon),
            "budget": daemon.autopilot.budget.describe(),
            "observe_only": daemon.config.safety.observe_only,
        }
    )


async def scenario(request: web.Request) -> web.Response:
    return web.json_response(scenario_view(_scenario(request)))


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    unknown = set(body) - {"force", "dry_run", "active"}
    if unknown:
        raise web.HTTPUnprocessableEntity(reason=f"unknown fields: {', '.join(sorted(unknown))}")
    for key in ("force", "dry_run"):
        if not isinstance(body.get(key, False), bool):
            raise web.HTTPUnprocessableEntity(reason=f"{key} must be true or false")
    if body.get("active") not in (None, "production", "replica"):
        raise web.HTTPUnprocessableEntity(reason="active must be production or replica")
    return body


async def command(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    target = _scenario(request)
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound(reason=f"no action {action!r}; actions: {', '.join(ACTIONS)}")
    body = await _body(request)
    force = bool(body.get("force", False))
    active = body.get("active")
    why_not = conflict(target, action, force=force, now=time.time(), active=active)
    if why_not is not None:
        return error(409, why_not)
    if body.get("dry_run"):
        kind = f"recover-{active}" if action == "recover" else action
        return web.json_response(await _plan(daemon, target, kind, force))
    intent = Intent(
        action=action, scenario=target.name, actor=_actor(request), force=force, active=active
    )
    return await _submit(daemon, intent)


def _actor(request: web.Request) -> str:
    return "api:" + request.headers.get("X-HA-Actor", "anonymous")[:100]


async def rearm(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    return await _submit(daemon, Intent(action="rearm", scenario="", actor=_actor(request)))


async def _submit(daemon: Daemon, intent: Intent) -> web.Response:
    daemon.submit(intent)
    try:
        outcome = await asyncio.wait_for(asyncio.shield(intent.future), LOOP_DEADLINE)
    except TimeoutError:
        return error(503, f"the daemon did not take the command within {LOOP_DEADLINE:g}s")
    if outcome.status == "conflict":
        return error(409, outcome.message)
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
    else:
        plans = {
            "run": "start the checks; fail over automatically when production dies",
            "stop": "stop the checks; no automatic action",
            "abort": "give up the blocked runbook; the active side stays as it is now",
            "pause": "keep checking and reporting; take no automatic action",
            "resume": "take automatic actions again",
        }
        steps.append({"step": action, "plan": plans[action], "status": "to do"})
    return {
        "dry_run": True,
        "scenario": target.name,
        "action": action,
        "state": target.state,
        "steps": steps,
    }


async def events(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    try:
        after = int(request.query.get("after", "0"))
        limit = min(int(request.query.get("limit", "200")), 1000)
        wait = min(float(request.query.get("wait", "0")), WAIT_LIMIT)
    except ValueError:
        return error(400, "after and limit must be integers, wait a number of seconds")
    name = request.query.get("scenario")
    if name is not None and name not in daemon.scenarios:
        return error(404, f"no scenario named {name!r}")
    runbook = request.query.get("runbook")
    deadline = time.monotonic() + wait
    while True:
        found = await daemon.store.events(after=after, scenario=name, runbook=runbook, limit=limit)
        if found or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    return web.json_response({"events": [e.to_json() for e in found]})


async def groups(request: web.Request) -> web.Response:
    return web.json_response({"groups": group_views(request.app[DAEMON])})


async def group_command(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    name, action = request.match_info["name"], request.match_info["action"]
    group = next((g for g in daemon.config.groups if g.name == name), None)
    if group is None:
        raise web.HTTPNotFound(reason=f"no group named {name!r}")
    if action not in GROUP_ACTIONS:
        raise web.HTTPNotFound(
            reason=f"no group action {action!r}; actions: {', '.join(GROUP_ACTIONS)}"
        )
    body = await _body(request)
    active = body.get("active")
    why_not = group_conflict(daemon, name, action, active)
    if why_not is not None:
        return error(409, why_not)
    if body.get("dry_run"):
        waves = group.waves()
        if action == "stop":
            waves.reverse()
        plan = [
            {
                "wave": number,
                "scenario": member,
                "plan": skip_reason(daemon.scenarios[member], action, active)
                or f"{action}" + (f" --active {active}" if active else ""),
            }
            for number, wave in enumerate(waves, 1)
            for member in wave
        ]
        return web.json_response({"dry_run": True, "group": name, "action": action, "plan": plan})
    intent = Intent(action=action, scenario="", group=name, actor=_actor(request), active=active)
    return await _submit(daemon, intent)


async def proposals(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    name = request.query.get("scenario")
    if name is not None and name not in daemon.scenarios:
        return error(404, f"no scenario named {name!r}")
    kinds = ("proposal", "proposal_cancelled", "production_recovered")
    found = await daemon.store.events(scenario=name, kinds=kinds, limit=100_000)
    return web.json_response(
        {
            "proposals": [e.to_json() for e in found if e.kind == "proposal"],
            "report": proposal_report(found),
        }
    )


async def state_diagram(request: web.Request) -> web.Response:
    return web.Response(text=diagram(), content_type="text/plain")


def create_app(daemon: Daemon, token: str) -> web.Application:
    app = web.Application(middlewares=[errors_as_json, bearer_auth])
    app[DAEMON] = daemon
    app[TOKEN] = TokenCheck(token)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/scenarios/{name}", scenario)
    app.router.add_post("/v1/scenarios/{name}/{action}", command)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/v1/proposals", proposals)
    app.router.add_get("/v1/groups", groups)
    app.router.add_post("/v1/groups/{name}/{action}", group_command)
    app.router.add_post("/v1/rearm", rearm)
    app.router.add_get("/v1/diagram", state_diagram)
    return app
