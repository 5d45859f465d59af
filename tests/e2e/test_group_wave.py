"""A group wave fails over together: its members' records go to BIND in one UPDATE (the zone's
serial moves by one) even though half of its replicas boot 0.3 s later, and one member that
cannot boot does not hold the others back; machines are fenced and powered on by a few
{machines} commands; every member's steps are still journaled one by one, each record verified
at the primary and the secondary.

The daemon runs in this process (as bench/group_failover.py does), on real BIND9 servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ha.commands import Intent
from ha.config import parse_config
from ha.daemon import Daemon
from tests.servers.bind import HOST, BindLab
from tests.servers.ports import free_port

PRODUCTION, REPLICA = "127.0.0.2", "127.0.0.3"
ZONE = "example.test"
STEPS = [
    "confirm_failure",
    "fence_production",
    "activate_replica",
    "wait_replica_healthy",
    "redirect",
    "verify",
]


def provider(root: Path, refuse: str, boot: float = 0) -> dict[str, Any]:
    """A machine is off while NAME.off exists; each run appends its action and machines to
    ``runs``; powering on takes ``boot`` seconds, and fails for ``refuse``."""
    log = 'cd "$0" && echo "$HA_ACTION $*" >> runs && for m; do '

    def command(action: str, body: str) -> list[str]:
        return ["sh", "-c", log.replace("$HA_ACTION", action) + body, str(root), "{machines}"]

    return {
        "type": "script",
        "status": command(
            "status", 'if test -e "$m.off"; then echo "$m off"; else echo "$m on"; fi; done'
        ),
        "power_off": command("power_off", ': > "$m.off"; done'),
        "power_on": command("power_on", f'[ "$m" != {refuse} ] || exit 1; rm -f "$m.off"; done'),
    }


SLOW = {f"wave{i:02}": "slow" for i in range(10)}  # replicas that take 0.3 s longer to boot


def config(bind: BindLab, root: Path, names: list[str], port: int, refuse: str) -> Any:
    return parse_config(
        {
            "state": str(root / "state.db"),
            "api": {"port": free_port()},
            "providers": {"lab": provider(root, "none"), "slow": provider(root, refuse, boot=0.3)},
            "dns_servers": {
                "lab": {
                    "address": HOST,
                    "port": bind.primary.port,
                    "tsig": {"secret_file": str(bind.key_file)},
                },
                "lab2": {"address": HOST, "port": bind.secondary.port},
            },
            "scenarios": [
                {
                    "name": name,
                    "production": {
                        "address": PRODUCTION,
                        "machine": {"provider": "lab", "name": f"{name}-p"},
                    },
                    "replica": {
                        "address": REPLICA,
                        "machine": {"provider": SLOW.get(name, "lab"), "name": f"{name}-r"},
                    },
                    "checks": [{"kind": "tcp", "port": port, "interval": "1s"}],
                    "failover": {"mode": "manual"},
                    "fence": True,
                    "runbook": {"retries": 0},
                    "redirect": [
                        {
                            "dns": {
                                "server": "lab",
                                "zone": ZONE,
                                "name": name,
                                "ttl": 30,
                                "verify": {"servers": ["lab", "lab2"], "deadline": "10s"},
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


@pytest.fixture
async def listeners() -> AsyncIterator[int]:
    """Production and replica both accept on one port (their tcp check)."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    port = free_port()
    servers = [await asyncio.start_server(accept, host, port) for host in (PRODUCTION, REPLICA)]
    yield port
    for server in servers:
        server.close()
        await server.wait_closed()


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Every replica probed once and healthy: a failover may start."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail("the replicas did not pass their checks in time")


async def serial(bind: BindLab) -> int:
    values, _ = await bind.ask(bind.primary, ZONE, "SOA")
    return int(next(iter(values)).split()[2])


async def test_a_wave_redirects_in_one_update_and_journals_every_member(
    bind: BindLab, tmp_path: Path, listeners: int
) -> None:
    names = [f"wave{i:02}" for i in range(20)]
    for name in names:
        await bind.write(ZONE, name, "A", PRODUCTION)
    await bind.notify(ZONE)
    refused = "wave07"
    daemon = Daemon(config(bind, tmp_path, names, listeners, f"{refused}-r"))
    scenarios = daemon.scenarios.values()
    await daemon.start()
    loop = asyncio.create_task(daemon.serve())
    try:
        await until(lambda: all(s.detectors["replica"].is_healthy() for s in scenarios), 10)
        before = await serial(bind)
        intent = Intent(action="failover", scenario="", group="farm", actor="test")
        daemon.submit(intent)
        assert (await intent.future).status == "accepted"
        running = daemon.groups.running.get("farm")
        assert running is not None
        async with asyncio.timeout(30):
            await running[1]
        after = await serial(bind)
        events = await daemon.store.events(limit=100_000)
    finally:
        daemon.request_stop()
        await loop
        await daemon.stop()

    assert after == before + 1  # one UPDATE for the 19 records of the wave
    others = [name for name in names if name != refused]
    for name in others:
        for server in (bind.primary, bind.secondary):
            assert await bind.ask(server, f"{name}.{ZONE}", "A") == ({REPLICA}, 30)
    assert await bind.ask(bind.secondary, f"{refused}.{ZONE}", "A") == ({PRODUCTION}, 300)

    report = next(e for e in events if e.kind == "group_report")
    assert report.data["members"][refused].startswith("blocked: ")
    assert {report.data["members"][name] for name in others} == {"switched, replica active"}

    for name in others:
        mine = [e for e in events if e.scenario == name and e.kind.startswith("step_")]
        assert [(e.kind, e.step) for e in mine] == [
            (kind, step) for step in STEPS for kind in ("step_started", "step_done")
        ]
        verify = next(e for e in mine if e.kind == "step_done" and e.step == "verify")
        assert verify.message.startswith(f"users sent to {REPLICA}; replica passes")

    # Commands for many machines at once (calls made while one runs go in the next run), and
    # a run that failed tried again for each of its machines alone.
    runs = [run.split() for run in (tmp_path / "runs").read_text().splitlines()]
    fenced = [run[1:] for run in runs if run[0] == "power_off"]
    assert sorted(m for run in fenced for m in run) == [f"{name}-p" for name in names]
    assert len(fenced) <= 3
    powered_on = [run[1:] for run in runs if run[0] == "power_on"]
    fast = {f"{name}-r" for name in names if name not in SLOW}
    assert {m for run in powered_on if set(run) <= fast for m in run} == fast
    assert len([run for run in powered_on if set(run) <= fast]) <= 3
    assert [f"{refused}-r"] in powered_on
    assert any(len(run) > 1 and f"{refused}-r" in run for run in powered_on)
