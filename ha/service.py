"""Running the daemon as a service: logging, token, store, loop, local API, signals."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from ha.api import create_app
from ha.config import Config
from ha.daemon import Daemon
from ha.logs import configure_logging
from ha.token import ensure_token

log = structlog.get_logger("ha.service")


async def run_daemon(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (a runbook in flight resumes next start)."""
    configure_logging(config.log.level, config.log.format)
    token = ensure_token(config.api.token_file)
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.request_stop)
    await daemon.start()
    runner = web.AppRunner(create_app(daemon, token), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.api.listen, config.api.port)
        await site.start()
        log.info("api listening", url=f"http://{config.api.listen}:{config.api.port}")
        await daemon.serve()
    finally:
        await runner.cleanup()
        await daemon.stop()
