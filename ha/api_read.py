"""Read-only routes: status, scenarios, groups, the journal, proposals, the diagram, reports."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ha.api_base import (
    DAEMON,
    FEED,
    EventFilter,
    error,
    group_filter,
    group_of,
    int_param,
    principal,
    scenario_filter,
    scenario_of,
)
from ha.errors import StoreError
from ha.machine import diagram
from ha.reports import FORMATS, REPORTS, Query, as_csv, as_json, collect, parse_time, rows
from ha.views import group_view, group_views, proposal_report, scenario_view

if TYPE_CHECKING:
    from ha.daemon import Daemon

WAIT_LIMIT = 60.0  # longest long-poll on /v1/events


async def status(request: web.Request) -> web.Response:
    daemon, who = request.app[DAEMON], principal(request)
    return web.json_response(
        {
            "scenarios": [scenario_view(s) for s in daemon.scenarios.values()],
            "groups": await _group_views(daemon),
            "budget": await _budget(daemon),
            "observe_only": daemon.config.safety.observe_only,
            "store_error": daemon.store_error,
            "last_event": request.app[FEED].last_id,
            "token": {"name": who.name, "role": who.role},
        }
    )


async def cluster(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    if daemon.cluster is None:
        return error(404, "not a cluster: the state is a SQLite file (state: etcd://... is one)")
    return web.json_response(await daemon.cluster.status())


async def scenario(request: web.Request) -> web.Response:
    return web.json_response(scenario_view(scenario_of(request)))


async def groups(request: web.Request) -> web.Response:
    return web.json_response({"groups": await _group_views(request.app[DAEMON])})


async def group(request: web.Request) -> web.Response:
    daemon, group = request.app[DAEMON], group_of(request)
    await _catch_up(daemon)
    return web.json_response(group_view(daemon, group, time.time()))


async def _group_views(daemon: Daemon) -> list[dict[str, Any]]:
    await _catch_up(daemon)
    return group_views(daemon)


async def _catch_up(daemon: Daemon) -> None:
    """A follower reads the leader's group commands and reports from the journal first (when
    the store fails, it shows what it read before)."""
    if daemon.config.groups and not daemon.in_charge:
        with contextlib.suppress(StoreError):
            await daemon.groups.catch_up()


async def _budget(daemon: Daemon) -> str:
    """The failover budget; a follower reads the leader's failovers and re-arms first."""
    if daemon.config.safety.budget is not None and not daemon.in_charge:
        with contextlib.suppress(StoreError):
            await daemon.autopilot.restore()
    return daemon.autopilot.budget.describe()


async def events(request: web.Request) -> web.Response:
    daemon, feed = request.app[DAEMON], request.app[FEED]
    after = int_param(request, "after", 0)
    limit = min(max(int_param(request, "limit", 200), 1), 1000)
    try:
        wait = min(float(request.query.get("wait", "0")), WAIT_LIMIT)
    except ValueError:
        return error(400, "wait must be a number of seconds")
    which = EventFilter.of(request)
    deadline = time.monotonic() + wait
    while True:
        seen = feed.last_id
        found, after, _ = await which.read(daemon.store, after, limit)
        left = deadline - time.monotonic()
        if found or left <= 0 or feed.closed.is_set():
            break
        await feed.wait(max(after, seen), left)
    return web.json_response({"events": [e.to_json() for e in found]})


async def proposals(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    name = scenario_filter(request)
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


async def reports(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    form = request.query.get("format", "json")
    report = next((r for r in REPORTS if r == request.query.get("report", "journal")), None)
    if report is None:
        return error(422, f"report must be one of {', '.join(REPORTS)}")
    if form not in FORMATS:
        return error(422, f"format must be one of {', '.join(FORMATS)}")
    group = group_filter(request)
    now = time.time()
    try:
        since, until = (
            parse_time(request.query[key], now) if key in request.query else None
            for key in ("since", "until")
        )
    except ValueError as exc:
        return error(422, str(exc))
    query = Query(report, scenario_filter(request), group, since, until)
    table = rows(await collect(daemon.store, query), query.report)
    if form == "csv":
        return web.Response(
            text=as_csv(table, query.report),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="ha-{report}.csv"'},
        )
    return web.json_response(as_json(table, query))
