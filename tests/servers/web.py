"""A real HTTP(S) server on loopback for the http check tests: an aiohttp app whose answer (status,
body, delay) the test sets, and which remembers the Host header of each request."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: str = "ok"
    delay: float = 0.0


@dataclass
class WebServer:
    host: str
    port: int
    runner: web.AppRunner
    reply: Reply = field(default_factory=Reply)
    hosts: list[str] = field(default_factory=list)

    async def stop(self) -> None:
        """Close the listener and every connection; idempotent."""
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        self.hosts.append(request.host)
        reply = self.reply
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, text=reply.body)


@asynccontextmanager
async def serve_web(
    host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[WebServer]:
    """Serve on a port the kernel picks; every path and method gets ``server.reply``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, 0), family=family)
    app = web.Application()
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    server = WebServer(host=host, port=sock.getsockname()[1], runner=runner)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, ssl_context=tls).start()
        yield server
    finally:
        await runner.cleanup()
        sock.close()


def self_signed_tls(directory: Path, name: str = "ha.test") -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for ``name``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", f"/CN={name}"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
