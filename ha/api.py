"""The HTTP API (aiohttp) and the dashboard's files. The API never acts: it validates, hands an
intent to the daemon's loop, and answers 202 accepted, 409 conflict or 503 unavailable. Errors
are JSON ``{"error": reason}``.

Every route under /v1 and /metrics needs ``Authorization: Bearer <token>``: a viewer token reads,
an operator token also pushes the buttons (401 without a known token, 403 without the role).
The dashboard's own files are public; they hold no data.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ha import api_commands, api_read
from ha.api_base import DAEMON, FEED, PRINCIPAL, ROUTES, Handler, Param, Route, error
from ha.api_feed import JournalFeed
from ha.commands import ACTIONS
from ha.daemon import Daemon
from ha.groups_config import GROUP_BUTTONS
from ha.metrics import METRICS, Metrics, metrics_page
from ha.openapi import openapi_json
from ha.reports import FORMATS, REPORTS
from ha.sse import stream
from ha.token import Role, Tokens

STATIC = Path(__file__).parent / "static"
TOKENS = web.AppKey("tokens", Tokens)
DASHBOARD_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=DASHBOARD_HEADERS)


async def static_file(request: web.Request) -> web.FileResponse:
    name = request.match_info["file"]
    if name not in {p.name for p in STATIC.iterdir()}:
        raise web.HTTPNotFound(reason=f"no file {name!r}")
    return web.FileResponse(STATIC / name, headers=DASHBOARD_HEADERS)


NAME = Param("name", "path", "scenario name")
SCENARIO = Param("scenario", "query", "only this scenario")
AFTER = Param("after", "query", "only events with a greater journal id")
RUNBOOK = Param("runbook", "query", "only this runbook's events")
GROUP = Param("group", "query", "only this group's members' events and its own")
GROUP_NAME = Param("name", "path", "group name")
READ: Role = "viewer"
ACT: Role = "operator"
COMMAND_ANSWERS = (200, 202, 400, 404, 409, 422, 503)

ROUTE_TABLE: tuple[Route, ...] = (
    Route("GET", "/", dashboard, None, "the dashboard", content="text/html"),
    Route(
        "GET",
        "/static/{file}",
        static_file,
        None,
        "the dashboard's scripts and styles",
        (Param("file", "path", "file name"),),
        answers=(200, 404),
        content="text/javascript | text/css",
    ),
    Route("GET", "/v1/openapi.json", openapi_json, READ, "this document"),
    Route("GET", "/v1/status", api_read.status, READ, "every scenario and group, the budget"),
    Route(
        "GET",
        "/v1/scenarios/{name}",
        api_read.scenario,
        READ,
        "one scenario",
        (NAME,),
        answers=(200, 404),
    ),
    Route(
        "POST",
        "/v1/scenarios/{name}/{action}",
        api_commands.command,
        ACT,
        "push a scenario's button (dry_run: the steps it would take)",
        (NAME, Param("action", "path", "what to do", ACTIONS)),
        "Command",
        COMMAND_ANSWERS,
    ),
    Route(
        "GET", "/v1/groups", api_read.groups, READ, "groups: rollup, waves, members, last report"
    ),
    Route(
        "GET",
        "/v1/groups/{name}",
        api_read.group,
        READ,
        "one group",
        (GROUP_NAME,),
        answers=(200, 404),
    ),
    Route(
        "POST",
        "/v1/groups/{name}/{action}",
        api_commands.group_command,
        ACT,
        "push a group's button (dry_run: the waves it would take); cancel: the command in"
        " progress starts no other member; pause, resume: every member's automatic actions off"
        " or on (the body of those three: dry_run only)",
        (GROUP_NAME, Param("action", "path", "what", GROUP_BUTTONS)),
        "GroupCommand",
        COMMAND_ANSWERS,
    ),
    Route(
        "POST",
        "/v1/rearm",
        api_commands.rearm,
        ACT,
        "re-arm a spent failover budget",
        answers=(202, 409, 503),
    ),
    Route(
        "GET",
        "/v1/events",
        api_read.events,
        READ,
        "the journal, oldest first (a long poll with wait)",
        (
            AFTER,
            SCENARIO,
            RUNBOOK,
            GROUP,
            Param("limit", "query", "at most this many (1000)"),
            Param("wait", "query", "seconds to wait for a first event (at most 60)"),
        ),
        answers=(200, 400, 404),
    ),
    Route(
        "GET",
        "/v1/events/stream",
        stream,
        READ,
        "the journal as Server-Sent Events, live; id: is the journal id",
        (
            Param("Last-Event-ID", "header", "resume after this journal id"),
            AFTER,
            SCENARIO,
            RUNBOOK,
            GROUP,
            Param("heartbeat", "query", "seconds between heartbeats when quiet (1..60, 15)"),
        ),
        answers=(200, 400, 404),
        content="text/event-stream",
    ),
    Route(
        "GET",
        "/v1/proposals",
        api_read.proposals,
        READ,
        "proposals and the report",
        (SCENARIO,),
        answers=(200, 404),
    ),
    Route(
        "GET",
        "/v1/cluster",
        api_read.cluster,
        READ,
        "orchestrators on etcd: this one, the leader, instances, etcd members, views by observer",
        answers=(200, 404),
    ),
    Route(
        "GET",
        "/v1/diagram",
        api_read.state_diagram,
        READ,
        "the state machine (mermaid)",
        content="text/plain",
    ),
    Route(
        "GET",
        "/v1/reports",
        api_read.reports,
        READ,
        "the journal or the Assured Recovery test history, filtered",
        (
            Param("report", "query", "journal (default) or tests", REPORTS),
            Param("format", "query", "json (default) or csv", FORMATS),
            SCENARIO,
            GROUP,
            Param("since", "query", "from: ISO 8601, epoch seconds, or how long ago (24h)"),
            Param("until", "query", "to: same forms"),
        ),
        answers=(200, 404, 422),
        content="application/json | text/csv",
    ),
    Route(
        "GET",
        "/metrics",
        metrics_page,
        READ,
        "Prometheus metrics",
        content="text/plain",
    ),
)


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
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else None
    route = next(
        (r for r in request.app[ROUTES] if r.path == canonical and r.method == request.method),
        None,
    )
    needs = route.role if route is not None else READ if request.path.startswith("/v1/") else None
    if needs is None:
        return await handler(request)
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    who = request.app[TOKENS].identify(presented.strip()) if scheme.lower() == "bearer" else None
    if who is None:
        return error(401, "missing or wrong bearer token")
    if not who.may(needs):
        return error(403, f"the token {who.name!r} is a {who.role} token; this needs {needs}")
    request[PRINCIPAL] = who
    return await handler(request)


def create_app(
    daemon: Daemon, tokens: Tokens, feed: JournalFeed, metrics: Metrics
) -> web.Application:
    """The app; ``feed`` must be started by the caller and is closed when the app shuts down."""
    app = web.Application(middlewares=[errors_as_json, bearer_auth])
    app[DAEMON] = daemon
    app[TOKENS] = tokens
    app[FEED] = feed
    app[METRICS] = metrics
    app[ROUTES] = ROUTE_TABLE
    for route in ROUTE_TABLE:
        app.router.add_route(route.method, route.path, route.handler)

    async def close_feed(app: web.Application) -> None:
        await feed.close()  # ends every event stream, so that shutdown need not wait for them

    app.on_shutdown.append(close_feed)
    return app
