"""Running the daemon as a service: logging, tokens, store, loop, journal feed (event stream,
metrics, notifications), the API over HTTP or HTTPS, signals."""

from __future__ import annotations

import asyncio
import signal
import ssl

import structlog
from aiohttp import web

from ha.api import create_app
from ha.api_feed import JournalFeed
from ha.config import ApiConfig, Config
from ha.daemon import Daemon
from ha.logs import configure_logging
from ha.metrics import Metrics
from ha.notify import Notifier
from ha.token import LOCAL, Tokens, ensure_token, token_digest

log = structlog.get_logger("ha.service")

SHUTDOWN_TIMEOUT = 5.0  # longest wait for requests in flight when the daemon stops


def api_tokens(api: ApiConfig) -> Tokens:
    """The configured tokens, and the token file's as operator ``local`` (made if missing)."""
    local = ensure_token(api.token_file)
    return Tokens(
        [
            (LOCAL, "operator", token_digest(local)),
            *((t.name, t.role, t.sha256) for t in api.tokens),
        ]
    )


def server_tls(api: ApiConfig) -> ssl.SSLContext | None:
    if api.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(api.tls.cert_file, api.tls.key_file)
    return context


async def run_daemon(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (a runbook in flight resumes next start)."""
    configure_logging(config.log.level, config.log.format)
    tokens = api_tokens(config.api)
    tls = server_tls(config.api)
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.request_stop)
    await daemon.start()
    feed = JournalFeed(daemon.store)
    metrics = Metrics(daemon.scenarios)
    notifier = Notifier(config)
    runner = web.AppRunner(
        create_app(daemon, tokens, feed, metrics),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    try:
        await metrics.restore(daemon.store)
        feed.subscribe(metrics.on_event)
        daemon.result_listeners.append(metrics.observe_result)
        feed.subscribe(notifier.on_event)
        await feed.start()
        notifier.start()
        await runner.setup()
        site = web.TCPSite(runner, config.api.listen, config.api.port, ssl_context=tls)
        await site.start()
        scheme = "https" if tls else "http"
        log.info("api listening", url=f"{scheme}://{config.api.listen}:{config.api.port}")
        await daemon.serve()
    finally:
        await runner.cleanup()
        await feed.close()
        await notifier.close()
        await daemon.stop()
