"""A PostgreSQL primary and streaming standby protected by the daemon: SIGKILL the primary, the
standby is promoted (the journal keeps the lag at promotion), writes go on; failback rebuilds
the old primary with pg_rewind and moves back without losing a row."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.e2e.site import DaemonRunner
from tests.servers.pg_pair import USER, PgNode, PgPair, pg_pair


@pytest.fixture
def pair() -> Iterator[PgPair]:
    with pg_pair() as started:
        yield started


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DaemonRunner]:
    runner = DaemonRunner(tmp_path)
    yield runner
    runner.stop()


def sql(node: PgNode, query: str) -> Any:
    async def run() -> Any:
        db = await asyncpg.connect(
            host="127.0.0.1",
            port=node.port,
            user=USER,
            password=os.environ["HA_TEST_PG_PASSWORD"],
            database="postgres",
        )
        try:
            return await db.fetchval(query)
        finally:
            await db.close()

    return asyncio.run(run())


def write(site: DaemonRunner, pair: PgPair) -> None:
    def ready(node: PgNode, side: str) -> dict[str, Any]:
        command = [str(node.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(node.port)]
        return {
            "kind": "script",
            "name": f"pg-{side}",
            "command": command,
            "side": side,
            "interval": "300ms",
            "timeout": "2s",
        }

    config = {
        "api": {"port": site.api_port},
        "providers": {
            "db": {
                "type": "postgresql",
                "instances": {
                    "primary": {**pair.instance(pair.primary), "unreachable_is_fenced": True},
                    "standby": {**pair.instance(pair.standby), "unreachable_is_fenced": True},
                },
                "promote_timeout": "30s",
            }
        },
        "scenarios": [
            {
                "name": "pg",
                "production": {
                    "address": "127.0.0.2",
                    "machine": {"provider": "db", "name": "primary"},
                },
                "replica": {
                    "address": "127.0.0.3",
                    "machine": {"provider": "db", "name": "standby"},
                },
                "checks": [ready(pair.primary, "production"), ready(pair.standby, "replica")],
                "failover": {"failures": 2, "hold_down": "0s"},
                "fence": True,
                "runbook": {
                    "retry_delay": "300ms",
                    "step_timeout": "90s",
                    "healthy_timeout": "30s",
                },
                "redirect": [
                    {"script": {"set": ["sh", "-c", f'echo "$HA_ADDRESS" > {site.dir}/active']}}
                ],
            }
        ],
    }
    site.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_kill_the_primary_promote_the_standby_and_fail_back_with_every_row(
    site: DaemonRunner, pair: PgPair
) -> None:
    sql(pair.primary, "create table t as select g as id from generate_series(1, 100) g")
    write(site, pair)
    site.start_daemon()

    pair.primary.kill()
    site.wait_state("switched", timeout=60, name="pg")
    promoted = next(
        e for e in site.journal() if e["kind"] == "step_done" and e["step"] == "activate_replica"
    )
    assert "lag at promotion:" in promoted["message"]
    assert sql(pair.standby, "select count(*) from t") == 100  # nothing was pending
    sql(pair.standby, "insert into t select g from generate_series(101, 150) g")
    assert (site.dir / "active").read_text().strip() == "127.0.0.3"

    back = site.ha("failback", "pg", "--wait", timeout=180)
    assert back.returncode == 0, back.stdout + back.stderr + site.log()[-3000:]
    steps = [e["step"] for e in site.journal() if e["kind"] == "step_done"][-7:]
    assert steps == [
        "rebuild_production",
        "drain_replica",
        "activate_production",
        "wait_production_healthy",
        "redirect",
        "verify",
        "rebuild_replica",
    ]
    assert site.state("pg") == ("running", "production")
    assert sql(pair.primary, "select count(*) from t") == 150  # the rows written on the replica
    assert sql(pair.primary, "select pg_is_in_recovery()") is False
    assert sql(pair.standby, "select pg_is_in_recovery()") is True  # a standby again
