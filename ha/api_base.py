"""What every API module shares: the app's keys, JSON errors, who is asking, request parameters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ha.api_feed import JournalFeed
from ha.daemon import Daemon
from ha.scenario import Scenario
from ha.token import Principal, Role

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
PRINCIPAL = "principal"  # request key: the Principal the bearer token belongs to


def error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def principal(request: web.Request) -> Principal:
    found: Principal = request[PRINCIPAL]
    return found


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


def int_param(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be an integer") from None
