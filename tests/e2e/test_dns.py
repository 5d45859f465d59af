"""End to end on a real BIND9 primary and secondary: the daemon fails over and both servers
answer the replica; BIND down mid-failover blocks the scenario (never half-redirected), and the
same button completes it once BIND is back; a playbook's --check leaves both servers' answers as
they are, and the playbook itself moves them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.site import DaemonRunner
from tests.e2e.test_playbooks import PLAYBOOKS
from tests.servers.bind import HOST, BindLab

PRODUCTION, REPLICA = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def site(tmp_path: Path, bind: BindLab) -> Any:
    runner = DaemonRunner(tmp_path)
    (tmp_path / f"{PRODUCTION}.alive").touch()
    (tmp_path / f"{REPLICA}.alive").touch()
    yield runner
    runner.stop()


def write(site: DaemonRunner, bind: BindLab, name: str) -> None:
    config = {
        "api": {"port": site.api_port},
        "dns_servers": {
            "lab": {
                "address": HOST,
                "port": bind.primary.port,
                "tsig": {"secret_file": str(bind.key_file)},
                "timeout": "1s",
            },
            "lab2": {"address": HOST, "port": bind.secondary.port, "timeout": "1s"},
        },
        "scenarios": [
            {
                "name": "app",
                "production": {"address": PRODUCTION},
                "replica": {"address": REPLICA},
                "checks": [
                    {
                        "kind": "script",
                        "command": ["test", "-e", f"{site.dir}/{{target}}.alive"],
                        "interval": "200ms",
                    }
                ],
                "failover": {"failures": 2, "hold_down": "0s"},
                "runbook": {"retry_delay": "200ms", "retries": 1, "step_timeout": "10s"},
                "redirect": [
                    {
                        "dns": {
                            "server": "lab",
                            "zone": "example.test",
                            "name": name,
                            "ttl": 30,
                            "verify": {"servers": ["lab", "lab2"], "deadline": "5s"},
                        }
                    }
                ],
            }
        ],
    }
    site.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def start(site: DaemonRunner, bind: BindLab, name: str) -> None:
    """NAME.example.test at production on both servers, and the daemon protecting app with it."""
    asyncio.run(bind.write("example.test", name, "A", PRODUCTION, ttl=30))
    write(site, bind, name)
    site.start_daemon()


def answers(bind: BindLab, name: str) -> tuple[set[str], set[str]]:
    async def ask() -> tuple[set[str], set[str]]:
        primary, _ = await bind.ask(bind.primary, f"{name}.example.test", "A")
        secondary, _ = await bind.ask(bind.secondary, f"{name}.example.test", "A")
        return primary, secondary

    return asyncio.run(ask())


def test_failover_and_failback_are_answered_by_both_servers(
    site: DaemonRunner, bind: BindLab
) -> None:
    start(site, bind, "e2e-app")
    shown = site.ha("dns", "show", "app")
    assert shown.returncode == 0, shown.stderr
    assert PRODUCTION in shown.stdout

    (site.dir / f"{PRODUCTION}.alive").unlink()
    site.wait_state("switched", timeout=20, name="app")
    assert answers(bind, "e2e-app") == ({REPLICA}, {REPLICA})
    redirect = next(
        e for e in site.journal() if e["kind"] == "step_done" and e["step"] == "redirect"
    )
    assert "ttl 30s" in redirect["message"]

    (site.dir / f"{PRODUCTION}.alive").touch()
    done = site.ha("failback", "app", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert answers(bind, "e2e-app") == ({PRODUCTION}, {PRODUCTION})


def test_bind_down_blocks_the_failover_and_the_button_completes_it(
    site: DaemonRunner, bind: BindLab
) -> None:
    start(site, bind, "e2e-down")
    with bind.primary.stopped():
        (site.dir / f"{PRODUCTION}.alive").unlink()
        site.wait_state("blocked", timeout=30, name="app")
        reason = site.api("GET", "/v1/scenarios/app")[1]["reason"]
        assert reason.startswith("step redirect failed:")
        assert "lab" in reason
    assert answers(bind, "e2e-down") == ({PRODUCTION}, {PRODUCTION})  # not half-redirected

    resumed = site.ha("failover", "app", "--wait")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert answers(bind, "e2e-down") == ({REPLICA}, {REPLICA})


def test_a_playbook_check_leaves_dns_as_it_is_and_the_playbook_moves_it(
    site: DaemonRunner, bind: BindLab
) -> None:
    start(site, bind, "e2e-play")
    migration = str(PLAYBOOKS / "planned-migration.yaml")
    before = site.journal()

    checked = site.ha("play", "--check", migration, "-e", "scenario=app")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    redirect = "  would: redirect: e2e-play.example.test A -> 127.0.0.3 in zone example.test at lab"
    assert redirect in checked.stdout
    assert answers(bind, "e2e-play") == ({PRODUCTION}, {PRODUCTION})
    acting = [e for e in site.journal()[len(before) :] if e["kind"] not in ("check", "alert")]
    assert acting == []

    done = site.ha("play", migration, "-e", "scenario=app", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert answers(bind, "e2e-play") == ({REPLICA}, {REPLICA})
    assert site.state("app") == ("switched", "replica")
