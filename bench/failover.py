"""Failover benchmark in the failure lab (tests/lab): time from a fault to the moment every
authoritative DNS server answers the replica and a client connects to it; then a soak that counts
false failovers.

    .venv/bin/python -m bench.failover                     # 20 runs per fault, 60 s soak
    .venv/bin/python -m bench.failover --runs 5 --soak 0   # quick look, no soak
    .venv/bin/python -m bench.failover --runs 0 --soak 600 # the issue's 10-minute soak alone

Needs root. Builds one lab (namespaces, HTTP servers, BIND9 primary and secondary, the daemon as
a subprocess, all inside the lab) and, per run: applies the fault (SIGKILL, SIGSTOP, or the link
to production set down) from this process, then polls from inside the orchestrator's namespace,
every 5 ms, until both BIND servers answer the replica's address and a TCP connect to the replica
succeeds. It reads the phases from the daemon's journal (wall-clock timestamps): detection (fault
to the failover proposal) and each runbook step's own duration. Between runs it repairs
production (a new server, the link up), fails back with ``ha failback --wait`` and waits QUIET
seconds, since BIND holds back a NOTIFY that follows the previous one closely.

Soak: production behind a TCP proxy adding latency spikes below the check timeout (tests/lab/proxy),
and nftables dropping 5% of the packets to it at random; every failover seen is counted, then
production is restored and failed back. Target: zero. Not a test: CI never runs it. Everything it
starts is stopped by PID and every namespace deleted at the end, also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.summary import Figure, add_option, write
from tests.lab import faults
from tests.lab.lab import HTTP_PORT, NAME, PRODUCTION, REPLICA, Lab, LabDaemon, running_lab
from tests.lab.namespaces import LabUnavailable, require_root
from tests.lab.services import Service, connects

QUIET = 1.0
RUN_TIMEOUT = 20.0
PROXY_PORT = 8081
PHASES = ("detect", "confirm_failure", "fence_production", "wait_replica_healthy", "redirect",
          "verify")  # fmt: skip

TARGETS = {"kill": 0.30, "hang": 0.45, "cut": 0.45}  # issue 10's medians, in seconds
FAULT_WORDS = {"kill": "killed", "hang": "hung", "cut": "cut off"}
FAULTS: dict[str, Callable[[Lab], None]] = {
    "kill": lambda lab: faults.kill(lab.http["prod"]),
    "hang": lambda lab: faults.hang(lab.http["prod"]),
    "cut": lambda lab: faults.cut(lab.network, "prod"),
}


def daemon(lab: Lab) -> LabDaemon:
    assert lab.daemon is not None
    return lab.daemon


def users_on(lab: Lab, address: str) -> bool:
    """Every authoritative server answers ``address``, and a client connects to it."""
    assert lab.dns is not None
    assert lab.thread is not None
    both = {"primary": {address}, "secondary": {address}}
    return lab.dns.answers(NAME, timeout=0.2) == both and connects(lab.thread, address, HTTP_PORT)


def journal_since(lab: Lab, since: float) -> list[tuple[float, str, str | None, dict[str, object]]]:
    db = sqlite3.connect(f"file:{daemon(lab).dir / 'ha-state.db'}?mode=ro", uri=True, timeout=5)
    with db:
        rows = db.execute(
            "select ts, kind, step, data from journal where ts >= ? order by id", (since,)
        ).fetchall()
    db.close()
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def phases(lab: Lab, wall0: float) -> dict[str, float]:
    events = journal_since(lab, wall0)
    found = {"detect": next(ts for ts, kind, _, _ in events if kind == "proposal") - wall0}
    for _, kind, step, data in events:
        if kind == "step_done" and step in PHASES:
            found[step] = float(str(data["seconds"]))
    return found


def reset(lab: Lab) -> None:
    """Production repaired and active again; DNS back on it at both servers; a quiet zone."""
    faults.restore(lab.network, "prod")
    lab.start_production()
    back = daemon(lab).ha("failback", NAME, "--wait", timeout=60)
    if back.returncode != 0:
        raise RuntimeError(f"failback failed: {back.stdout}{back.stderr}")
    wait(lambda: users_on(lab, PRODUCTION), RUN_TIMEOUT, "users are back on production")
    time.sleep(QUIET)


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout:g}s: {what}")
        time.sleep(0.005)


def measure(lab: Lab, fault: str) -> tuple[float, dict[str, float]]:
    wall0, start = time.time(), time.monotonic()
    FAULTS[fault](lab)
    wait(lambda: users_on(lab, REPLICA), RUN_TIMEOUT, f"users reach the replica ({fault})")
    elapsed = time.monotonic() - start
    daemon(lab).wait_state("switched", timeout=RUN_TIMEOUT)
    found = phases(lab, wall0)
    reset(lab)
    return elapsed, found


def failover_table(lab: Lab, runs: int, figures: list[Figure]) -> None:
    print(f"{'fault':6} {'runs':>4} {'median':>7} {'max':>7}   median per phase (s): "
          + " ".join(PHASES))  # fmt: skip
    for fault in FAULTS:
        samples = [measure(lab, fault) for _ in range(runs)]
        totals = [s[0] for s in samples]
        per_phase = " ".join(
            f"{statistics.median(s[1].get(p, 0.0) for s in samples):.3f}" for p in PHASES
        )
        median, worst = statistics.median(totals), max(totals)
        print(f"{fault:6} {runs:>4} {median:7.3f} {worst:7.3f}   {per_phase}", flush=True)
        figures.append(
            Figure(
                f"failover, production {FAULT_WORDS[fault]} (median of {runs}, max {worst:.3f} s)",
                f"{median:.3f} s",
                f"< {TARGETS[fault]:.2f} s",
                median < TARGETS[fault],
            )
        )


def soak(
    lab: Lab,
    seconds: float,
    loss: int,
    spike_ms: float,
    args: argparse.Namespace,
    figures: list[Figure],
) -> None:
    assert lab.thread is not None
    for side, rate in (("prod", 0.2), ("repl", 0.0)):
        address = PRODUCTION if side == "prod" else REPLICA
        argv = [sys.executable, "-m", "tests.lab.proxy", address, str(PROXY_PORT), str(HTTP_PORT),
                "--spike-ms", str(spike_ms), "--rate", str(rate)]  # fmt: skip
        proxy = Service(lab.network, lab.network.ns[side], argv, lab.root / f"proxy-{side}.log")
        lab.extra.append(proxy)
        proxy.start(partial(connects, lab.thread, address, PROXY_PORT))
    configure(lab, args, port=PROXY_PORT)
    faults.lose(lab.network, "prod", PROXY_PORT, loss)
    wall0, end = time.time(), time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.1)
        if daemon(lab).state()[0] == "switched":
            print(f"  false failover at {time.time() - wall0:.0f}s", flush=True)
            faults.clear(lab.network, "prod")
            reset(lab)
            faults.lose(lab.network, "prod", PROXY_PORT, loss)
    events = journal_since(lab, wall0)
    moves = [(d["from"], d["to"]) for _, kind, _, d in events if kind == "transition"]
    failed = sum(
        1 for _, kind, _, data in events
        if kind == "check" and data.get("side") == "production" and not data.get("ok")
    )  # fmt: skip
    print(
        f"soak {seconds:g}s: {loss}% random loss and spikes up to {spike_ms:g} ms on 20% of"
        f" connections to production: {failed} failed probes journaled (not those overtaken by"
        f" a later probe's answer); failovers started"
        f" {moves.count(('running', 'failing_over'))}, cancelled by confirm_failure"
        f" {moves.count(('failing_over', 'running'))}, completed (false failovers)"
        f" {moves.count(('failing_over', 'switched'))}",
        flush=True,
    )
    false = moves.count(("failing_over", "switched"))
    figures.append(
        Figure(
            f"false failovers in {seconds:g} s ({loss}% loss, spikes to {spike_ms:g} ms)",
            str(false),
            "0",
            false == 0,
        )
    )


def configure(lab: Lab, args: argparse.Namespace, port: int = HTTP_PORT) -> None:
    daemon(lab).stop()
    db = daemon(lab).dir / "ha-state.db"
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)
    lab.write_config(
        interval=args.interval,
        timeout=args.timeout,
        failures=args.failures,
        follow_up=args.follow_up or None,
        port=port,
    )
    daemon(lab).start_daemon()
    time.sleep(QUIET)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="runs per fault (default 20)")
    parser.add_argument("--soak", type=float, default=60, help="soak seconds (0: none)")
    parser.add_argument("--loss", type=int, default=5, help="percent of packets dropped (soak)")
    parser.add_argument("--spike-ms", type=float, default=150, help="latency spikes (soak)")
    parser.add_argument("--interval", default="100ms", help="check interval")
    parser.add_argument("--timeout", default="200ms", help="check timeout")
    parser.add_argument("--failures", type=int, default=4, help="failed probes before down")
    parser.add_argument(
        "--follow-up", default="25ms", help="probe spacing while in doubt ('': the interval)"
    )
    add_option(parser)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    print(
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; http check every {args.interval},"
        f" timeout {args.timeout}, follow-ups every {args.follow_up or args.interval} in doubt,"
        f" down after {args.failures} failures; fence, DNS redirect"
        " (2 BIND servers), verify",
        flush=True,
    )
    try:
        require_root()
    except LabUnavailable as exc:
        sys.exit(f"bench.failover: {exc}")
    with (
        tempfile.TemporaryDirectory(prefix="ha-bench-failover-") as root,
        running_lab(Path(root)) as lab,
    ):
        figures: list[Figure] = []
        try:
            if args.runs:
                configure(lab, args)
                failover_table(lab, args.runs, figures)
            if args.soak:
                soak(lab, args.soak, args.loss, args.spike_ms, args, figures)
        finally:
            write(args.summary, *figures)


if __name__ == "__main__":
    main()
