"""Monitor scale benchmark: N scenarios, one tcp check each, against listeners on loopback.

    .venv/bin/python -m bench.monitor_scale                      # N = 1,000 and 10,000
    .venv/bin/python -m bench.monitor_scale --scenarios 10000 --profile /tmp/prof

The real path: a ``Config`` from ``parse_config``, the real ``Daemon`` (SQLite store in a temp
dir, state machine, detectors, monitor) started in-process on the service's event loop (uvloop;
``HA_EVENT_LOOP=asyncio`` for asyncio's), with the service's metrics listener and heap settling,
``serve()`` running as a task. The check interval is N / rate, so the offered load is ``--rate``
checks/s whatever N is.

Processes: the listeners (a handful of listening sockets on 127.0.0.2, accepting and closing)
run in their own process, pinned to the last core; each N runs in a fresh orchestrator process
pinned to core 0 (so the figures are one core's, and the memory of one run does not hide in the
next). This process only starts them, collects a row from each and prints the table.

The scenarios are registered in the store before the daemon starts, as after a restart: a
daemon's very first start writes one durable commit per new scenario while the monitor already
runs, which takes minutes at N = 10,000 (``--first-start`` measures that path instead).

Measured over the window, after a warm-up: results reaching the daemon per second (the
monitor's ``on_result`` is wrapped to count them, ok and failed), scheduling lag p50/p99/max
from ``daemon.monitor.lag`` (reset after warm-up), CPU of the orchestrator process (all its
threads; the kernel's share separately) and of the listener process, the time spent in the
cyclic garbage collector, and resident memory per scenario: VmRSS after start and warm-up minus
VmRSS before the config was built, divided by N.

Not a test: CI never runs it. It stops by itself: every child has a deadline and is stopped by
its PID when it overruns.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import multiprocessing
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.servers import accept_until_orphaned, listening, stop_process
from bench.summary import Figure, add_option, write
from ha.service import LOOP_ENV, LOOPS

PRODUCTION = "127.0.0.2"
REPLICA = "127.0.0.3"
# Ports: every probe leaves a TIME_WAIT (60 s) on one side or the other, and one listening port
# takes at most ~28,000 connections from 127.0.0.1 per minute; 64 ports last at 10,000/s.
LISTENERS = 64
TARGET_RATE = 10_000.0
TARGET_P99_MS = 50.0
TARGET_KB = 20.0
STOP_WITHIN = 30.0  # seconds the daemon gets to stop after the window


@dataclass
class Row:
    scenarios: int
    interval: float
    rate: float  # results reaching the daemon per second, over the window
    failed: int  # failed probes in the window
    failure: str  # the most frequent failure details, with their counts
    not_running: int  # scenarios no longer "running" after the window (failed over, ...)
    p50_ms: float
    p99_ms: float
    max_ms: float
    kb_config: float  # per scenario, after parse_config
    kb_start: float  # per scenario, after daemon.start()
    kb_total: float  # per scenario, after start and warm-up
    cpu: float  # orchestrator process CPU over the window, % of one core
    sys_cpu: float  # the kernel's part of it (socket, connect, close, epoll: loopback TCP)
    us_per_check: float  # orchestrator CPU per result, microseconds
    gc_ms: float  # time in the cyclic garbage collector, ms per second of window
    gc_full: int  # full collections (of the oldest generation) in the window
    core: float  # how busy the orchestrator's core was (anyone's work, ksoftirqd's too), %
    listener_cpu: float  # listener process CPU over the window, % of one core
    register_s: float  # registering the scenarios in the store beforehand (0 with --first-start)
    start_s: float  # parse_config + Daemon() + start()
    window_s: float


@dataclass
class WorkerArgs:
    scenarios: int
    rate: float
    warmup: float
    seconds: float
    ports: list[int]
    listener_pid: int
    cpu: int | None
    state_dir: str
    first_start: bool
    log_level: str
    profile: str | None

    @property
    def deadline(self) -> float:
        """Seconds the worker may take, all included."""
        per_scenario = 0.1 if self.first_start else 0.005
        return 60 + self.warmup + self.seconds + per_scenario * self.scenarios


# Listeners: their own process.


def serve_listeners(ports_out: Connection, cpu: int | None, lifetime: float) -> None:
    """Listen on LISTENERS ports of PRODUCTION; accept and close every connection at once."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    sockets = [listening(PRODUCTION, 0) for _ in range(LISTENERS)]
    ports_out.send([sock.getsockname()[1] for sock in sockets])
    ports_out.close()
    asyncio.run(accept_until_orphaned(sockets, os.getppid(), time.monotonic() + lifetime))


def core_ticks(cpu: int | None) -> tuple[int, int]:
    """(busy, total) jiffies of one core (of all cores when None), from /proc/stat."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            ticks = [int(field) for field in fields[1:8]]  # user .. softirq
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # minus idle, iowait
    raise RuntimeError(f"no {name} in /proc/stat")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The orchestrator: one fresh process per N.


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def config_data(n: int, interval: float, ports: list[int], state_dir: Path) -> dict[str, Any]:
    check = {"kind": "tcp", "interval": interval, "timeout": 1.0, "side": "production"}
    return {
        "state": str(state_dir / "ha-state.db"),
        "api": {"token_file": str(state_dir / "ha-token")},
        "scenarios": [
            {
                "name": f"bench{i:05d}",
                "production": {"address": PRODUCTION},
                "replica": {"address": REPLICA},
                "checks": [{**check, "port": ports[i % len(ports)]}],
            }
            for i in range(n)
        ],
    }


async def register(data: dict[str, Any]) -> None:
    """Write the scenarios' records the way a daemon's first start does (so this start is a
    restart)."""
    from ha.store import JournalEvent, ScenarioRecord
    from ha.store.sqlite import SqliteStore

    store = SqliteStore(Path(data["state"]))
    await store.open()
    try:
        for scenario in data["scenarios"]:
            name = scenario["name"]
            await store.transition(
                ScenarioRecord(name, "running"),
                JournalEvent(kind="registered", scenario=name, message="new scenario, running"),
            )
    finally:
        await store.close()


def worker(args: WorkerArgs, out: Connection) -> None:
    from ha.service import event_loop_factory

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread starts, so all inherit it

    def report(row: Row) -> None:
        out.send(asdict(row))
        out.close()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(measure(args, report))


async def measure(args: WorkerArgs, report: Callable[[Row], None]) -> None:
    """Start the daemon, warm up, measure the window, report the row, then stop the daemon
    (within STOP_WITHIN: an overloaded daemon may be deep in a cycle)."""
    from ha.config import parse_config
    from ha.daemon import Daemon
    from ha.logs import configure_logging
    from ha.metrics import Metrics
    from ha.monitor import LagStats
    from ha.service import settle_heap

    configure_logging(args.log_level, "json")
    n, state_dir = args.scenarios, Path(args.state_dir)
    interval = n / args.rate
    data = config_data(n, interval, args.ports, state_dir)
    began = time.monotonic()
    if not args.first_start:
        await register(data)
    register_s = time.monotonic() - began
    gc.collect()
    rss_before = rss_kb()
    began = time.monotonic()
    config = parse_config(data, state_dir)
    del data
    rss_config = rss_kb()
    daemon = Daemon(config)
    tally = [0, 0]  # ok, failed
    failures: Counter[str] = Counter()
    handler = daemon.monitor.on_result

    async def counting(name: str, side: Any, label: str, result: Any) -> None:
        tally[not result.ok] += 1
        if not result.ok:
            failures[result.detail] += 1
        await handler(name, side, label, result)

    daemon.monitor.on_result = counting
    gc_time = watch_gc()
    await daemon.start()
    daemon.result_listeners.append(Metrics(daemon.scenarios).observe_result)  # as the service
    settle_heap()
    start_s = time.monotonic() - began
    rss_start = rss_kb()
    serving = asyncio.create_task(daemon.serve())
    profiler = cProfile.Profile() if args.profile else None
    try:
        await asyncio.sleep(args.warmup)
        rss_total = rss_kb()
        daemon.monitor.lag = LagStats()
        tally[:] = [0, 0]
        failures.clear()
        gc_time.clear()
        full0 = gc.get_stats()[-1]["collections"]
        cpu0, listener0 = os.times(), process_cpu_seconds(args.listener_pid)
        core0, wall0 = core_ticks(args.cpu), time.monotonic()
        if profiler is not None:
            profiler.enable()
        await asyncio.sleep(args.seconds)
        if profiler is not None:
            profiler.disable()
        wall1, core1 = time.monotonic(), core_ticks(args.cpu)
        cpu1, listener1 = os.times(), process_cpu_seconds(args.listener_pid)
        gc_full = gc.get_stats()[-1]["collections"] - full0
        (ok, failed), lags = tally, sorted(daemon.monitor.lag.samples)
        window = wall1 - wall0
        cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        if profiler is not None and args.profile:
            report_profile(profiler, Path(args.profile), n)
        report(
            Row(
                scenarios=n,
                interval=interval,
                rate=(ok + failed) / window,
                failed=failed,
                failure=", ".join(f"{count} {detail}" for detail, count in failures.most_common(2)),
                not_running=sum(s.state != "running" for s in daemon.scenarios.values()),
                p50_ms=percentile(lags, 0.50) * 1000,
                p99_ms=percentile(lags, 0.99) * 1000,
                max_ms=(lags[-1] if lags else float("nan")) * 1000,
                kb_config=(rss_config - rss_before) / n,
                kb_start=(rss_start - rss_before) / n,
                kb_total=(rss_total - rss_before) / n,
                cpu=100 * cpu / window,
                sys_cpu=100 * (cpu1.system - cpu0.system) / window,
                us_per_check=1e6 * cpu / max(1, ok + failed),
                gc_ms=1000 * sum(gc_time) / window,
                gc_full=gc_full,
                core=100 * (core1[0] - core0[0]) / max(1, core1[1] - core0[1]),
                listener_cpu=100 * (listener1 - listener0) / window,
                register_s=register_s,
                start_s=start_s,
                window_s=window,
            )
        )
    finally:
        daemon.request_stop()
        try:
            async with asyncio.timeout(STOP_WITHIN):
                await serving
                await daemon.stop()
        except TimeoutError:
            print(f"N={n}: the daemon did not stop within {STOP_WITHIN:g}s", file=sys.stderr)


def watch_gc() -> list[float]:
    """Durations of the cyclic collector's runs from now on (clear the list to restart)."""
    durations: list[float] = []
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            durations.append(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    return durations


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report_profile(profiler: cProfile.Profile, directory: Path, n: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"monitor-{n}.prof"
    profiler.dump_stats(path)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    print(f"--- cProfile of the window, N={n} ({path}), by own time ---")
    print(text.getvalue().split("\n\n", 1)[-1].rstrip(), flush=True)


# The driver.


def run(options: argparse.Namespace) -> list[Row]:
    context = multiprocessing.get_context("spawn")
    cores = sorted(os.sched_getaffinity(0))
    pin = len(cores) >= 2 and not options.no_pin
    template = WorkerArgs(
        scenarios=0,
        rate=options.rate,
        warmup=options.warmup,
        seconds=options.seconds,
        ports=[],
        listener_pid=0,
        cpu=cores[0] if pin else None,
        state_dir="",
        first_start=options.first_start,
        log_level=options.log_level,
        profile=options.profile,
    )
    budget = sum(replace_n(template, n).deadline for n in options.scenarios)
    receive, send = context.Pipe(duplex=False)
    listener = context.Process(
        target=serve_listeners,
        args=(send, cores[-1] if pin else None, budget + 30),
        name="bench-listeners",
    )
    listener.start()
    send.close()
    rows: list[Row] = []
    try:
        if not receive.poll(30):
            raise RuntimeError("the listener process did not start")
        template.ports = receive.recv()
        assert listener.pid is not None
        template.listener_pid = listener.pid
        for n in options.scenarios:
            rows.append(run_worker(context, replace_n(template, n)))
            print("done:", format_row(rows[-1]), file=sys.stderr, flush=True)
    finally:
        stop_process(listener)
    return rows


def replace_n(template: WorkerArgs, n: int) -> WorkerArgs:
    return WorkerArgs(**{**asdict(template), "scenarios": n})


def run_worker(context: Any, args: WorkerArgs) -> Row:
    state_dir = tempfile.mkdtemp(prefix="ha-bench-")
    args.state_dir = state_dir
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=worker, args=(args, send), name=f"bench-{args.scenarios}")
    process.start()
    send.close()
    try:
        if not receive.poll(args.deadline):
            raise RuntimeError(f"N={args.scenarios}: no result within {args.deadline:.0f}s")
        return Row(**receive.recv())
    except EOFError:
        message = f"N={args.scenarios}: the worker died (exit {process.exitcode})"
        raise RuntimeError(message) from None
    finally:
        stop_process(process, grace=STOP_WITHIN + 5)
        shutil.rmtree(state_dir, ignore_errors=True)


HEADER = (
    f"{'N':>6} {'interval':>8} {'checks/s':>9} {'% target':>8} {'failed':>6} {'p50 ms':>7}"
    f" {'p99 ms':>7} {'max ms':>7} {'KB/scn':>7} {'CPU %':>6} {'sys %':>6} {'us/check':>8}"
    f" {'gc ms/s':>7} {'full gc':>7} {'core %':>6} {'lsn CPU %':>9} {'start s':>7}"
)


def format_row(row: Row) -> str:
    return (
        f"{row.scenarios:>6} {row.interval * 1000:>6.0f}ms {row.rate:>9.0f}"
        f" {100 * row.rate / TARGET_RATE:>7.1f}% {row.failed:>6} {row.p50_ms:>7.2f}"
        f" {row.p99_ms:>7.2f} {row.max_ms:>7.1f} {row.kb_total:>7.1f} {row.cpu:>6.1f}"
        f" {row.sys_cpu:>6.1f} {row.us_per_check:>8.1f} {row.gc_ms:>7.1f} {row.gc_full:>7}"
        f" {row.core:>6.1f} {row.listener_cpu:>9.1f} {row.start_s:>7.1f}"
    )


def print_table(rows: list[Row], options: argparse.Namespace) -> None:
    print(
        f"monitor scale: {options.rate:.0f} checks/s offered, warm-up {options.warmup:g}s,"
        f" window {options.seconds:g}s, log level {options.log_level},"
        f" {'first start' if options.first_start else 'scenarios registered beforehand'},"
        f" Python {sys.version.split()[0]}, {os.environ.get(LOOP_ENV, LOOPS[0])} loop"
    )
    print(HEADER)
    for row in rows:
        print(format_row(row))
    print(
        f"targets: {TARGET_RATE:.0f} checks/s, p99 lag < {TARGET_P99_MS:.0f} ms,"
        f" < {TARGET_KB:.0f} KB/scenario. CPU %: the orchestrator process, of one core (it is"
        " pinned to one); sys %: its kernel part; core %: that core busy, whoever ran there;"
        " lsn: the listener process"
    )
    print("memory (KB/scenario) after parse_config / daemon.start() / warm-up; times (s):")
    for row in rows:
        print(
            f"{row.scenarios:>6}: {row.kb_config:.1f} / {row.kb_start:.1f} / {row.kb_total:.1f};"
            f" register {row.register_s:.1f}, start {row.start_s:.1f},"
            f" window {row.window_s:.1f}"
        )
    for row in rows:
        if row.failed or row.not_running:
            print(
                f"{row.scenarios:>6}: failed probes: {row.failure};"
                f" {row.not_running} scenarios no longer running"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.monitor_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenarios", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=5.0, help="before the window")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="offered checks/s")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning"])
    parser.add_argument("--profile", metavar="DIR", help="cProfile the window, stats into DIR")
    parser.add_argument("--first-start", action="store_true", help="do not register beforehand")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    add_option(parser)
    options = parser.parse_args(argv)
    rows = run(options)
    print_table(rows, options)
    for row in rows:
        n = f"monitor, N = {row.scenarios:,}"
        write(
            options.summary,
            # 10,000/s are offered, with jitter: 99% of that is sustaining it
            Figure(f"{n}: checks/s sustained (of {TARGET_RATE:,.0f} offered)", f"{row.rate:,.0f}",
                   f">= {0.99 * TARGET_RATE:,.0f}", row.rate >= 0.99 * TARGET_RATE),
            Figure(f"{n}: scheduling lag p99", f"{row.p99_ms:.0f} ms", f"< {TARGET_P99_MS:.0f} ms",
                   row.p99_ms < TARGET_P99_MS),
            Figure(f"{n}: memory per scenario", f"{row.kb_total:.1f} KB", f"< {TARGET_KB:.0f} KB",
                   row.kb_total < TARGET_KB),
        )  # fmt: skip


if __name__ == "__main__":
    main()
