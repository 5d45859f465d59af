"""What every API module shares: the app's keys, JSON errors, who is asking, request parameters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ha.api_feed import JournalFeed
from ha.daemon import Daemon
from ha.groups_config import GroupConfig
from ha.scenario import Scenario
from ha.store import JournalEvent, Store
from ha.token import Principal, Role

PAGE = 1000  # journal entries read at a time for a group's events

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # path, query or header
    description: str
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """One route: how it is served, who may call it, and how the OpenAPI document shows it."""

    method: str
    path: str
    handler: Handler
    role: Role | None  # None: public (the dashboard's files)
    summary: str
    params: tuple[Param, ...] = ()
    body: str | None = None  # the request body's schema, by name
    answers: tuple[int, ...] = (200,)
    content: str = "application/json"


DAEMON = web.AppKey("daemon", Daemon)
FEED = web.AppKey("feed", JournalFeed)
ROUTES = web.AppKey("routes", tuple[Route, ...])
PRINCIPAL = web.RequestKey("principal", Principal)  # whose bearer token the request carries


def error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def actor(request: web.Request) -> str:
    """``api:<token name>:<who, as the client says>``: journaled with every command."""
    said = request.headers.get("X-HA-Actor", "anonymous")[:100]
    return f"api:{principal(request).name}:{said}"


def scenario_of(request: web.Request) -> Scenario:
    name = request.match_info["name"]
    scenario = request.app[DAEMON].scenarios.get(name)
    if scenario is None:
        raise web.HTTPNotFound(reason=f"no scenario named {name!r}")
    return scenario


def scenario_filter(request: web.Request) -> str | None:
    """The ``scenario`` query parameter: None, or a scenario that exists (else 404)."""
    name = request.query.get("scenario")
    if name is not None and name not in request.app[DAEMON].scenarios:
        raise web.HTTPNotFound(reason=f"no scenario named {name!r}")
    return name


def group_of(request: web.Request) -> GroupConfig:
    """The group the path names (else 404)."""
    return _group_named(request, request.match_info["name"])


def group_filter(request: web.Request) -> GroupConfig | None:
    """The ``group`` query parameter: None, or a group that exists (else 404)."""
    name = request.query.get("group")
    return None if name is None else _group_named(request, name)


def _group_named(request: web.Request, name: str) -> GroupConfig:
    group = request.app[DAEMON].config.group(name)
    if group is None:
        raise web.HTTPNotFound(reason=f"no group named {name!r}")
    return group


@dataclass(frozen=True)
class EventFilter:
    """The journal entries a reader asked for (``/v1/events`` and its stream): one scenario's,
    one runbook's, one group's (its members' and its own), or any combination."""

    scenario: str | None = None
    runbook: str | None = None
    group: GroupConfig | None = None

    @classmethod
    def of(cls, request: web.Request) -> EventFilter:
        return cls(scenario_filter(request), request.query.get("runbook"), group_filter(request))

    async def read(
        self, store: Store, after: int, limit: int
    ) -> tuple[list[JournalEvent], int, bool]:
        """At most ``limit`` entries after id ``after``; the last id read (past entries a group
        left out); whether there may be more."""
        found: list[JournalEvent] = []
        size = limit if self.group is None else PAGE  # a group's: pages, to leave out others'
        while True:
            page = await store.events(
                after=after, scenario=self.scenario, runbook=self.runbook, limit=size
            )
            for event in page:
                after = event.id or after
                if self.group is None or self.group.concerns(event.scenario, event.data):
                    found.append(event)
                    if len(found) == limit:
                        return found, after, True
            if len(page) < size:
                return found, after, False


def int_param(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be an integer") from None
