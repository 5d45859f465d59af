"""Running the daemon as a service: event loop, logging, tokens, store, loop, journal feed (event
stream, metrics, notifications), the API over HTTP or HTTPS, signals.

The event loop is uvloop's (libuv; 9-22% less CPU per check at 10,000 checks/s over 1,000
scenarios in bench/monitor_scale), or asyncio's own with ``HA_EVENT_LOOP=asyncio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from aiohttp import web

from ha.api import create_app
from ha.api_feed import JournalFeed
from ha.config import ApiConfig, Config
from ha.daemon import Daemon
from ha.errors import ConfigError, StartError
from ha.logs import configure_logging
from ha.metrics import Metrics
from ha.notify import Notifier
from ha.store.etcd_target import EtcdTarget
from ha.token import LOCAL, Tokens, ensure_token, token_digest

log = structlog.get_logger("ha.service")

SHUTDOWN_TIMEOUT = 5.0  # longest wait for requests in flight when the daemon stops
CALLS_GRACE = 5.0  # longest wait for SDK calls still in flight once the daemon stopped
LOOP_ENV = "HA_EVENT_LOOP"
LOOPS = ("uvloop", "asyncio")


def serve(config: Config) -> None:
    """Run the daemon (``run_daemon``) on the event loop ``HA_EVENT_LOOP`` names, the only one
    on its state (``sole_daemon``)."""
    with sole_daemon(config.state):
        run_service(config)
        leave_calls_behind(CALLS_GRACE)


def leave_calls_behind(grace: float) -> None:
    """Once the daemon stopped, end the process within ``grace`` seconds, even while SDK calls
    still wait for an answer.

    Providers call blocking SDKs (boto3, pyVmomi, pywinrm) in worker threads, and the
    interpreter joins those before it exits: a call waiting on an endpoint that answers nothing
    held the stopped daemon, and its state file, until the SDK's own timeouts and retries ran
    out (minutes, with boto3's). Nobody waits for these answers any more: the state is saved,
    and a runbook in flight resumes at the next start (its steps are idempotent)."""
    give_up = time.monotonic() + grace
    for thread in _workers():
        thread.join(max(0.0, give_up - time.monotonic()))
    left = [thread.name for thread in _workers() if thread.is_alive()]
    if left:
        log.warning("calls in flight left behind", threads=left, waited=grace)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _workers() -> list[threading.Thread]:
    """The threads the interpreter would join before it exits."""
    current = threading.current_thread()
    return [t for t in threading.enumerate() if t is not current and not t.daemon]


def run_service(config: Config) -> None:
    """``serve`` for a caller that holds ``sole_daemon`` already (the demo)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run_daemon(config))


@contextlib.contextmanager
def sole_daemon(state: Path | EtcdTarget) -> Iterator[None]:
    """One daemon per SQLite state file: a second one would decide for the same scenarios (two
    failovers of one service). An exclusive lock on ``STATE.lock``, which holds the PID of the
    daemon that has it, taken before anything is read or done; the kernel releases it when the
    process ends, also when it is killed. Several daemons on one etcd state (``cluster``) are
    meant to be: they elect a leader instead. Raises StartError."""
    if isinstance(state, EtcdTarget):
        yield
        return
    path = state.with_name(state.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StartError(f"cannot open the lock of state file {state}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StartError(
                f"state file {state} is in use by another daemon (pid {holder}; lock {path}):"
                " stop that one first, or give this one a state file of its own"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def check_listen(api: ApiConfig) -> None:
    """Raise StartError now if the API's address is taken, before the daemon acts (resumes a
    runbook) only to stop when it cannot listen."""
    try:
        places = socket.getaddrinfo(
            api.listen, api.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in places:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
    except OSError as exc:
        raise cannot_listen(api, exc) from exc


def cannot_listen(api: ApiConfig, exc: OSError) -> StartError:
    return StartError(
        f"api: cannot listen on {api.listen} port {api.port}: {exc.strerror or exc}"
        " (another program has it? set api.port)"
    )


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, or None for asyncio's own, as ``HA_EVENT_LOOP`` says (default uvloop)."""
    choice = os.environ.get(LOOP_ENV, "uvloop")
    if choice not in LOOPS:
        raise ConfigError(
            [(f"environment {LOOP_ENV}", f"must be one of {', '.join(LOOPS)}, not {choice}")]
        )
    if choice == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


# The collector's thresholds once the heap is settled (Python's defaults: 700, 10, 10).
GC_THRESHOLDS = (20_000, 10, 1000)


def settle_heap() -> None:
    """Once the daemon has started: what it built (config, scenarios and their state machines,
    detectors, checks) lives as long as it does, so it leaves the cyclic garbage collector's
    generations for good (``gc.freeze``). Otherwise every full collection walks all of it again,
    which at 10,000 scenarios (1.7 million objects) stalls the loop for half a second.

    Then the collector runs less often (``GC_THRESHOLDS``). Probing makes no cyclic garbage (full
    collections under load found none), yet a young collection every 700 allocations promoted
    the objects of every probe in flight, and after the freeze nothing held full collections
    back (Python skips one while the oldest generation grew by less than a quarter of its
    long-lived objects, and the freeze left none): one every 70,000 allocations, walking every
    probe in flight. At 10,000 checks/s a loop that fell behind once (a burst at start) then
    spent a fifth of its time there and never caught up; with these, ~0-2 ms per second."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
    check_listen(config.api)
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
        try:
            await site.start()
        except OSError as exc:  # taken since check_listen
            raise cannot_listen(config.api, exc) from exc
        scheme = "https" if tls else "http"
        log.info("api listening", url=f"{scheme}://{config.api.listen}:{config.api.port}")
        settle_heap()
        await daemon.serve()
    finally:
        await runner.cleanup()
        await feed.close()
        await notifier.close()
        await daemon.stop()
