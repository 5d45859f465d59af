"""A real webhook receiver on loopback: an aiohttp server on its own thread and event loop (so that
tests which block, waiting on a daemon subprocess, do not stall it). It keeps every request and
answers the statuses a test queues (then 200)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.servers.ports import free_port


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("X-HA-Signature", ""), expected)


@dataclass
class WebhookServer:
    port: int
    answers: list[int] = field(default_factory=list)  # statuses to answer first, in order
    received: list[Delivery] = field(default_factory=list)  # every request, answered or not
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.received.append(Delivery(dict(request.headers), body, time.monotonic()))
            status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status, text="ok" if status < 300 else "not now")

    def wait_for(self, count: int, timeout: float = 10) -> list[Delivery]:
        """The first ``count`` requests, once they came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received[:count])
            time.sleep(0.02)
        raise AssertionError(f"{len(self.received)} webhook requests, not {count}")


@contextmanager
def serve_webhook() -> Iterator[WebhookServer]:
    server = WebhookServer(free_port())
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/hook", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", server.port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
