"""Group failover benchmark: a group of N scenarios in one wave, failed over by the real daemon
(in this process) with the script provider (fence and activation are commands) and the RFC 2136
redirector on a real BIND9 primary and secondary.

    .venv/bin/python -m bench.group_failover              # N = 1, 10, 100
    .venv/bin/python -m bench.group_failover --members 1 50

The daemon runs on the service's event loop (uvloop; ``HA_EVENT_LOOP=asyncio`` for asyncio's).
Each member's servers are 127.0.0.2 (production) and 127.0.0.3 (replica), with a tcp check of a
listener this benchmark runs on both, in a process of its own (the servers' work is not the
orchestrator's). The time is from the group command to the group report
(every member switched: fenced, activated, healthy, redirected and verified at both DNS servers);
the CPU is this process's meanwhile (the daemon's loop and its SQLite thread, not the servers or
the commands), and per member more than the first row.
The provider's commands take ``{machines}``: each run serves every machine queued meanwhile.
``--one-by-one`` gives each machine its own commands instead (four processes per member);
``--no-machines`` leaves out fencing and activation, to show the orchestration alone;
``--steps journal`` keeps every step and its journal entries but makes it do nothing, and
``--steps none`` gives each runbook no step at all (the command, the proposal, the transitions
and the report alone): floors that show what the orchestration costs per member before any
step acts (diagnostics, not product options). The daemon
logs at ``warning`` unless ``--log-level`` says otherwise (its own default is ``info``). Target:
100 members take under 2 times as long as one. Not a test: CI never runs it; everything it
starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from unittest import mock

from bench.dns_redirect import QUIET, ZONE, bind_pair, free_port
from bench.servers import accept_until_orphaned, listening, stop_process
from bench.summary import Figure, add_option, write
from ha.commands import Intent
from ha.config import parse_config
from ha.daemon import Daemon
from ha.logs import configure_logging
from ha.runbook import Step
from ha.service import event_loop_factory, settle_heap
from ha.steps import build_steps

PRODUCTION, REPLICA = "127.0.0.2", "127.0.0.3"
TARGET_RATIO = 2.0
LIFETIME = 600  # the listener process ends by itself after this, or when this process is gone


def config(
    members: int,
    primary: int,
    secondary: int,
    key: Path,
    port: int,
    root: Path,
    machines: bool,
    batched: bool = True,
    log_level: str = "warning",
) -> Any:
    names = [f"r{i:05}" for i in range(members)]
    return parse_config(
        {
            "state": str(root / "state.db"),
            "api": {"port": free_port()},
            "log": {"level": log_level, "format": "json"},
            "providers": {"lab": provider(root, batched)},
            "dns_servers": {
                "lab": {"address": "127.0.0.1", "port": primary, "tsig": {"secret_file": str(key)}},
                "lab2": {"address": "127.0.0.1", "port": secondary},
            },
            "scenarios": [
                {
                    "name": name,
                    "production": {"address": PRODUCTION, **machine(name, "p", machines)},
                    "replica": {"address": REPLICA, **machine(name, "r", machines)},
                    "checks": [{"kind": "tcp", "port": port, "interval": "2s"}],
                    "failover": {"mode": "manual"},
                    "fence": machines,
                    "split": {"redirect_interval": None},
                    "redirect": [
                        {
                            "dns": {
                                "server": "lab",
                                "zone": ZONE,
                                "name": name,
                                "ttl": 30,
                                "verify": {"servers": ["lab", "lab2"], "deadline": "20s"},
                            }
                        }
                    ],
                }
                for name in names
            ],
            "groups": [{"name": "farm", "scenarios": names}],
        },
        root,
    )


def provider(root: Path, batched: bool) -> dict[str, Any]:
    """The script provider: a machine is off while the file ``NAME.off`` exists. Batched, each
    command takes every machine queued meanwhile ({machines}); else one command per machine."""
    if not batched:
        off = f"{root}/{{machine}}.off"
        return {
            "type": "script",
            "status": ["sh", "-c", f"test -e {off} && echo off || echo on"],
            "power_on": ["rm", "-f", off],
            "power_off": ["touch", off],
        }
    each = 'cd "$0" && for m; do '  # shell builtins and one rm: one or two processes
    status = each + 'if test -e "$m.off"; then echo "$m off"; else echo "$m on"; fi; done'
    power_on = each + 'shift; set -- "$@" "$m.off"; done; rm -f -- "$@"'
    power_off = each + ': > "$m.off"; done'
    return {
        "type": "script",
        **{
            name: ["sh", "-c", script, str(root), "{machines}"]
            for name, script in (
                ("status", status),
                ("power_on", power_on),
                ("power_off", power_off),
            )
        },
    }


def machine(name: str, suffix: str, machines: bool) -> dict[str, Any]:
    return {"machine": {"provider": "lab", "name": f"{name}-{suffix}"}} if machines else {}


def stub_steps(what: str) -> contextlib.AbstractContextManager[object]:
    """``all``: the real steps. ``journal``: each step journaled as usual, doing nothing.
    ``none``: a runbook of no steps."""
    if what == "all":
        return contextlib.nullcontext()

    async def nothing() -> str:
        return "did nothing (benchmark: --steps journal)"

    def stubbed(*args: Any, **kwargs: Any) -> list[Step]:
        steps = build_steps(*args, **kwargs)
        return [dataclasses.replace(s, action=nothing) for s in steps] if what == "journal" else []

    return mock.patch("ha.daemon.build_steps", stubbed)


def serve_port(port: int, ready: Connection, lifetime: float) -> None:
    """The members' servers, in a process of their own (in the daemon's loop, accepting ~8
    connections per member would count against the orchestrator): listen on ``port`` of
    PRODUCTION and REPLICA, accept and close every connection at once."""
    sockets = [listening(host, port) for host in (PRODUCTION, REPLICA)]
    ready.send(True)
    ready.close()
    asyncio.run(accept_until_orphaned(sockets, os.getppid(), time.monotonic() + lifetime))


def start_listener(port: int) -> BaseProcess:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=serve_port, args=(port, sender, LIFETIME), daemon=True)
    process.start()
    sender.close()
    if not receiver.poll(30):
        stop_process(process, grace=0)
        raise RuntimeError(f"the listeners on port {port} did not start")
    receiver.recv()
    return process


async def measure(
    members: int,
    machines: bool = True,
    batched: bool = True,
    log_level: str = "warning",
    phases: dict[str, float] | None = None,
) -> tuple[float, float]:
    """Seconds from the group command to its report, and the CPU seconds of this process
    (the daemon's loop and its SQLite thread; not the servers, not the commands) meanwhile.
    ``phases`` gets, for each kind of journal entry (and its step), when the last member wrote
    it: milliseconds after the group command."""
    with tempfile.TemporaryDirectory(prefix="ha-bench-group-") as tmp:
        root = Path(tmp)
        os.chmod(tmp, 0o755)  # named runs as the bind user
        os.mkdir(root / "bind")
        with bind_pair(root / "bind", members, PRODUCTION) as (primary, secondary, key):
            port = free_port()
            listener = start_listener(port)
            daemon = Daemon(
                config(members, primary, secondary, key, port, root, machines, batched, log_level)
            )
            await daemon.start()
            settle_heap()  # as the service does before serving
            loop = asyncio.create_task(daemon.serve())
            try:
                await asyncio.sleep(QUIET + 1)  # checks ran; DNS records read (prepare)
                started, cpu = time.monotonic(), time.process_time()
                intent = Intent(action="failover", scenario="", group="farm", actor="bench")
                daemon.submit(intent)
                outcome = await intent.future
                assert outcome.status == "accepted", outcome.message
                running = daemon.groups.running.get("farm")
                if running is not None:
                    await running[1]
                elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
                reasons = {
                    s.record.reason for s in daemon.scenarios.values() if s.state != "switched"
                }
                assert not reasons, reasons
                if phases is not None:
                    phases.update(await journal_phases(daemon, outcome.command))
                return elapsed, cpu
            finally:
                daemon.request_stop()
                await loop
                await daemon.stop()
                stop_process(listener, grace=0)


async def journal_phases(daemon: Daemon, command: int | None) -> dict[str, float]:
    """Each kind of entry (with its step or trigger) the group command led to, and when its last
    one was written: milliseconds after the command, in the order of those times."""
    events = await daemon.store.events(after=(command or 1) - 1, limit=10**6)
    last: dict[str, float] = {}
    for event in events:
        what = event.step or str(event.data.get("trigger", ""))
        last[f"{event.kind} {what}".strip()] = (event.ts - events[0].ts) * 1000
    return dict(sorted(last.items(), key=lambda item: item[1]))


def print_phases(first: int, last: int, phases: dict[int, dict[str, float]]) -> None:
    print("\nwhen the last member wrote each entry, ms after the group command:")
    print(f"{'entry':<34} {first:>8} {last:>8} {'ms per member more':>18}")
    before = {first: 0.0, last: 0.0}
    for entry, at in phases[last].items():
        one = phases[first].get(entry)
        if one is None:
            continue
        more = (at - before[last] - (one - before[first])) / (last - first)
        print(f"{entry:<34} {one:>8.1f} {at:>8.1f} {more:>18.3f}")
        before = {first: one, last: at}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--members", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--no-machines",
        action="store_true",
        help="no provider steps (no fence, no activation): the orchestration alone",
    )
    parser.add_argument(
        "--one-by-one",
        action="store_true",
        help="one provider command per machine (no {machines}): four processes per member",
    )
    parser.add_argument(
        "--steps",
        default="all",
        choices=["all", "journal", "none"],
        help="diagnostic floors: journal = steps journaled but doing nothing; none = no steps",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="the daemon's log level (to stderr); the daemon's default is info",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also when each journal entry's last member came, for the first and largest group",
    )
    add_option(parser)
    args = parser.parse_args()
    configure_logging(args.log_level, "json")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average at start: {load} ({os.cpu_count()} cores)")
    print(f"{'members':>8} {'seconds':>8} {'vs 1':>6} {'CPU s':>6} {'CPU ms per member more':>23}")
    times: dict[int, float] = {}
    cpus: dict[int, float] = {}
    phases: dict[int, dict[str, float]] = {}
    first = args.members[0]
    for members in args.members:
        phases[members] = {}
        with (
            stub_steps(args.steps),
            asyncio.Runner(loop_factory=event_loop_factory()) as runner,  # the service's loop
        ):
            times[members], cpus[members] = runner.run(
                measure(
                    members,
                    not args.no_machines,
                    not args.one_by_one,
                    args.log_level,
                    phases[members] if args.phases else None,
                )
            )
        ratio = times[members] / times[first]
        more = members - first
        added = f"{(cpus[members] - cpus[first]) / more * 1000:.2f}" if more else "-"
        print(
            f"{members:>8} {times[members]:>8.3f} {ratio:>6.2f} {cpus[members]:>6.3f} {added:>23}",
            flush=True,
        )
    last = args.members[-1]
    ratio = times[last] / times[first]
    verdict = "met" if ratio < TARGET_RATIO else "MISSED"
    if args.steps != "all":
        verdict = f"not judged (--steps {args.steps} is a diagnostic floor)"
    print(f"target: the largest group under {TARGET_RATIO:g}x the time of the first: {verdict}")
    if args.phases and last != first:
        print_phases(first, last, phases)
    if args.steps != "all":
        return
    write(
        args.summary,
        Figure(f"group failover of {first}", f"{times[first]:.3f} s"),
        Figure(
            f"group failover of {last} vs {first}, one wave",
            f"{ratio:.1f}x ({times[last]:.2f} s)",
            f"< {TARGET_RATIO:g}x",
            ratio < TARGET_RATIO,
        ),
    )


if __name__ == "__main__":
    main()
