"""The event stream: journal events as Server-Sent Events (``GET /v1/events/stream``).

Each event is one SSE message: ``id:`` is the journal id and ``data:`` the event's JSON. A client
resumes where it stopped with ``Last-Event-ID`` (browsers send it when they reconnect) or
``?after=ID``; without either the stream starts with the next event. A comment line is sent as a
heartbeat when nothing happened for ``heartbeat`` seconds (15 by default), so that proxies and
clients can tell a quiet stream from a dead one. ``scenario``, ``runbook`` and ``group`` filter
as on ``/v1/events``.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from ha.api_base import DAEMON, FEED, EventFilter

HEARTBEAT = 15.0
PAGE = 500
RETRY_MS = 2000  # how long a browser waits before it reconnects


def _start(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after")
    if raw is None:
        return request.app[FEED].last_id
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(reason="Last-Event-ID and after must be journal ids") from None


def _heartbeat(request: web.Request) -> float:
    try:
        seconds = float(request.query.get("heartbeat", HEARTBEAT))
    except ValueError:
        raise web.HTTPBadRequest(reason="heartbeat must be a number of seconds") from None
    return min(max(seconds, 1.0), 60.0)


async def stream(request: web.Request) -> web.StreamResponse:
    daemon, feed = request.app[DAEMON], request.app[FEED]
    after, heartbeat = _start(request), _heartbeat(request)
    which = EventFilter.of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        quiet_since = time.monotonic()
        while not feed.closed.is_set():
            seen = feed.last_id  # every event up to here is readable now
            found, after, more = await which.read(daemon.store, after, PAGE)
            for event in found:
                data = json.dumps(event.to_json(), default=str)
                await response.write(f"id: {event.id}\ndata: {data}\n\n".encode())
            if more:
                continue
            if found:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= heartbeat:
                await response.write(b": heartbeat\n\n")
                quiet_since = time.monotonic()
            after = max(after, seen)
            await feed.wait(after, heartbeat - (time.monotonic() - quiet_since))
    except ConnectionResetError:
        pass  # the client went away
    return response
