"""Unit costs of a member's failover: the CPU the daemon's loop spends on one journal entry, one
runbook step that does nothing, one tcp probe and one DNS record read back, each done 100 at a
time (as a wave of 100 members does) on the service's event loop (uvloop).

    .venv/bin/python -m bench.unit_costs

What bench/README.md (group_failover) adds up against the group target. The journal is a real
SQLite store in a temp dir (its writer thread counted: process CPU), the probes go to a listener
in a process of its own, the DNS questions to a real BIND9 secondary. Not a test: CI never runs
it; everything it starts is stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.name
import dns.rdatatype

from bench.dns_redirect import ZONE, bind_pair, free_port
from bench.group_failover import REPLICA, start_listener
from bench.servers import stop_process
from checks.tcp import TcpCheck
from ha.config import RunbookPolicy
from ha.logs import configure_logging
from ha.redirect.dns_client import QueryClient, answer_of
from ha.runbook import Runbook, Step
from ha.service import event_loop_factory
from ha.store import JournalEvent
from ha.store.sqlite import SqliteStore

WAVE = 100  # done at once
ROUNDS = 20  # waves measured, after one untimed


async def cpu_each(one: Callable[[int], Awaitable[object]]) -> float:
    """Microseconds of process CPU per call of ``one``, WAVE calls at a time."""
    await asyncio.gather(*(one(n) for n in range(WAVE)))
    started = time.process_time()
    for _ in range(ROUNDS):
        await asyncio.gather(*(one(n) for n in range(WAVE)))
    return (time.process_time() - started) / (WAVE * ROUNDS) * 1e6


async def journal(root: Path) -> float:
    store = SqliteStore(root / "state.db")
    await store.open()

    async def append(n: int) -> object:
        return await store.append(
            JournalEvent(
                kind="step_done",
                scenario=f"r{n:05}",
                runbook=f"rb{n}",
                step="fence_production",
                message=f"r{n:05}-p is off",
                data={"seconds": 0.012},
            )
        )

    try:
        return await cpu_each(append)
    finally:
        await store.close()


async def steps(root: Path) -> float:
    """A runbook step that does nothing: its deadline, its two journal entries, its task."""
    store = SqliteStore(root / "steps.db")
    await store.open()

    async def nothing() -> str:
        return "done"

    async def step(n: int) -> object:
        only = Step("noop", f"nothing for member {n}", nothing)
        runbook = Runbook(
            id=uuid.uuid4().hex,
            kind="failover",
            scenario=f"r{n:05}",
            steps=[only],
            policy=RunbookPolicy(),
            store=store,
        )
        await runbook.run(resume=False)
        return None

    try:
        return await cpu_each(step)
    finally:
        await store.close()


async def probes(port: int) -> float:
    config = TcpCheck.Config.model_validate({"kind": "tcp", "port": port})
    checks = [TcpCheck(config, REPLICA) for _ in range(WAVE)]

    async def probe(n: int) -> object:
        result = await checks[n].probe()
        assert result.ok, result.detail
        return result

    try:
        return await cpu_each(probe)
    finally:
        for check in checks:
            await check.close()


async def reads(port: int) -> float:
    client = QueryClient("127.0.0.1", port)
    names = [dns.name.from_text(f"r{n:05}.{ZONE}.") for n in range(WAVE)]

    async def read(n: int) -> object:
        response = await client.query(names[n], dns.rdatatype.A, 5)
        answer = answer_of(response, names[n], dns.rdatatype.A)
        assert answer.values, answer
        return answer

    return await cpu_each(read)


def measure(what: Callable[[], Awaitable[float]]) -> float:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(what())


def show(what: str, us: float) -> None:
    print(f"{what:<36} {us:>6.1f}", flush=True)


def main() -> None:
    configure_logging("warning", "json")  # as the group benchmark's daemon: steps log at info
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(f"{'CPU each, ' + str(WAVE) + ' at a time':<36} {'us':>6}")
    with tempfile.TemporaryDirectory(prefix="ha-bench-units-") as tmp:
        root = Path(tmp)
        os.chmod(tmp, 0o755)  # named runs as the bind user
        os.mkdir(root / "bind")
        show("journal entry (SQLite, durable)", measure(lambda: journal(root)))
        show("runbook step doing nothing", measure(lambda: steps(root)))
        port = free_port()
        listener = start_listener(port)
        try:
            show("tcp probe", measure(lambda: probes(port)))
        finally:
            stop_process(listener, grace=0)
        with bind_pair(root / "bind", WAVE) as (_, secondary, _key):
            show("DNS record read back (dnspython)", measure(lambda: reads(secondary)))


if __name__ == "__main__":
    main()
