"""The MariaDB application provider against a real primary and GTID replica.

Kill the primary, promote the replica, fence the old primary when it comes back writable, rebuild
it as a GTID replica, switch back losslessly; a lagging replica is refused unless forced.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import aiomysql
import pytest

from providers.base import PowerState
from providers.mariadb import MariaDBConfig, MariaDBProvider
from providers.postgresql import LagTooHigh
from tests.servers.mariadb_pair import PASSWORD_ENV, MariaNode, MariaPair, mariadb_pair


@pytest.fixture
def pair() -> Iterator[MariaPair]:
    with mariadb_pair() as started:
        yield started


def provider_for(pair: MariaPair, **settings: Any) -> MariaDBProvider:
    config = MariaDBConfig.model_validate(
        {
            "type": "mariadb",
            "instances": {
                "primary": pair.instance(pair.primary),
                "replica": pair.instance(pair.replica),
            },
            "promote_timeout": 30,
            **settings,
        }
    )
    return MariaDBProvider("db", config)


async def app_sql(node: MariaNode, sql: str, args: tuple[Any, ...] | None = None) -> list[Any]:
    """Run SQL as the application's account (no privilege to write past read_only)."""
    connection = await aiomysql.connect(
        host="127.0.0.1",
        port=node.port,
        user="app",
        password=os.environ[PASSWORD_ENV],
        db="ha",
        autocommit=True,
    )
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(sql, args)
            return list(await cursor.fetchall())
    finally:
        connection.close()


async def write(node: MariaNode, first: int, count: int, pad: int = 10) -> None:
    if first == 1:
        await app_sql(node, "create table t (id int primary key, pad text)")
    padding = "x" * pad  # a literal: the statement-based binlog then really carries it
    values = ",".join(f"({i}, '{padding}')" for i in range(first, first + count))
    await app_sql(node, f"insert into t values {values}")


async def ids(node: MariaNode) -> list[int]:
    return [row[0] for row in await app_sql(node, "select id from t order by id")]


async def caught_up(provider: MariaDBProvider, pair: MariaPair) -> None:
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        async with provider._session("test", "primary") as db:
            head = await db.value("select @@global.gtid_binlog_pos")
        lag = await provider.replication_lag("replica")
        if lag["gtid_applied"] == head and lag["bytes"] == 0:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the replica did not catch up")


async def test_failover_fence_rebuild_and_lossless_switch_back(pair: MariaPair) -> None:
    provider = provider_for(pair)
    assert await provider.power_state("primary") == PowerState.ON
    assert await provider.power_state("replica") == PowerState.OFF
    await write(pair.primary, 1, 100)
    await caught_up(provider, pair)

    pair.primary.kill()
    lag = await provider.promote("replica")
    assert (lag["bytes"], lag["forced"]) == (0, False)
    assert provider.last_promotion["replica"] == lag
    assert await provider.power_state("replica") == PowerState.ON
    assert await provider.power_state("primary") == PowerState.UNKNOWN
    await write(pair.replica, 101, 100)

    pair.primary.start()  # the old primary comes back writable: split brain unless fenced
    assert await provider.power_state("primary") == PowerState.ON
    await provider.power_off("primary", hard=True)
    assert await provider.power_state("primary") == PowerState.OFF
    with pytest.raises(aiomysql.OperationalError, match="read-only"):
        await write(pair.primary, 1000, 1)

    assert "caught up" in await provider.rebuild("primary", "replica")
    assert await provider.power_state("primary") == PowerState.OFF
    await write(pair.replica, 201, 100)
    await provider.power_off("replica", hard=False)  # read_only, wait for GTID, fenced
    await provider.power_on("primary")
    assert await provider.power_state("primary") == PowerState.ON
    assert await provider.power_state("replica") == PowerState.OFF
    await write(pair.primary, 301, 10)
    assert await ids(pair.primary) == list(range(1, 311))


async def test_lagging_replica_refused_unless_forced(pair: MariaPair) -> None:
    provider = provider_for(pair, max_lag_bytes=16384)
    await write(pair.primary, 1, 10)
    await caught_up(provider, pair)
    async with provider._session("test", "replica") as db:
        await db.run("stop slave sql_thread")
    await write(pair.primary, 11, 500, pad=200)  # ~100 kB received, not applied
    give_up = time.monotonic() + 30
    while (await provider.replication_lag("replica"))["bytes"] <= 16384:
        assert time.monotonic() < give_up
        await asyncio.sleep(0.05)

    with pytest.raises(LagTooHigh) as refused:
        await provider.power_on("replica")
    assert f"lag {refused.value.lag['bytes']} bytes > max_lag_bytes 16384" in str(refused.value)
    assert pair.password not in str(refused.value)
    assert await provider.power_state("replica") == PowerState.OFF

    await provider.power_off("primary", hard=True)
    lag = await provider.promote("replica", force=True)
    assert lag["forced"] is True
    assert await provider.power_state("replica") == PowerState.ON
    assert await ids(pair.replica) == list(range(1, 511))  # what it had received was applied
