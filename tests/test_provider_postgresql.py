"""The PostgreSQL application provider against a real primary and streaming standby.

Read like runbooks: write rows, kill the primary, promote the standby, fence, switch over
losslessly, rebuild the old primary with pg_rewind and switch back; a standby lagging past the
bound is refused, and promoted when forced.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from ha.errors import ProviderError
from providers.base import PowerState
from providers.postgresql import LagTooHigh, PostgreSQLConfig, PostgreSQLProvider
from tests.servers.pg_pair import USER, PgNode, PgPair, pg_pair


@pytest.fixture
def pair() -> Iterator[PgPair]:
    with pg_pair() as started:
        yield started


def provider_for(pair: PgPair, *, local: bool = True, **settings: Any) -> PostgreSQLProvider:
    config = PostgreSQLConfig.model_validate(
        {
            "type": "postgresql",
            "instances": {
                "primary": pair.instance(pair.primary, local=local),
                "standby": pair.instance(pair.standby, local=local),
            },
            "promote_timeout": 30,
            **settings,
        }
    )
    return PostgreSQLProvider("db", config)


async def connect(node: PgNode) -> asyncpg.Connection:
    password = os.environ["HA_TEST_PG_PASSWORD"]
    return await asyncpg.connect(
        host="127.0.0.1", port=node.port, user=USER, password=password, database="postgres"
    )


async def write(node: PgNode, first: int, count: int, pad: int = 10) -> None:
    db = await connect(node)
    try:
        await db.execute("create table if not exists t (id int primary key, pad text)")
        await db.execute(
            "insert into t select g, repeat('x', $3) from generate_series($1::int, $2::int) g",
            first,
            first + count - 1,
            pad,
        )
    finally:
        await db.close()


async def ids(node: PgNode) -> list[int]:
    db = await connect(node)
    try:
        return [row["id"] for row in await db.fetch("select id from t order by id")]
    finally:
        await db.close()


async def caught_up(provider: PostgreSQLProvider, standby: str) -> dict[str, Any]:
    give_up = time.monotonic() + 30
    while True:
        lag = await provider.replication_lag(standby)
        if lag["bytes"] == 0 or time.monotonic() > give_up:
            return lag
        await asyncio.sleep(0.05)


async def test_failover_rebuild_and_lossless_switch_back(pair: PgPair) -> None:
    provider = provider_for(pair)
    assert await provider.power_state("primary") == PowerState.ON
    assert await provider.power_state("standby") == PowerState.OFF
    await write(pair.primary, 1, 100)
    assert (await caught_up(provider, "standby"))["bytes"] == 0

    pair.primary.kill()  # unplanned: SIGKILL
    lag = await provider.promote("standby")
    assert (lag["bytes"], lag["seconds"], lag["primary"]) == (0, 0.0, None)
    assert provider.last_promotion["standby"] == lag
    assert await provider.power_state("standby") == PowerState.ON
    assert await provider.power_state("primary") == PowerState.UNKNOWN  # unreachable: not fenced
    await write(pair.standby, 101, 100)

    done = await provider.rebuild("primary", "standby")
    assert "pg_rewind" in done
    assert "pg_basebackup" not in done
    assert await provider.power_state("primary") == PowerState.OFF
    await write(pair.standby, 201, 100)  # written on the new primary before the planned move

    await provider.power_off("standby", hard=False)  # drain, wait for replay, stop
    await provider.power_on("primary")
    assert await provider.power_state("standby") == PowerState.OFF  # stopped by us
    await write(pair.primary, 301, 10)
    assert await ids(pair.primary) == list(range(1, 311))

    # and over again: the stopped standby is rewound (after a clean stop), then a lossless move
    await provider.rebuild("standby", "primary")
    await write(pair.primary, 311, 10)
    await provider.power_off("primary", hard=False)
    await provider.power_on("standby")
    await write(pair.standby, 321, 10)
    assert await ids(pair.standby) == list(range(1, 331))


async def test_fence_reachable_primary_refuses_writes(pair: PgPair) -> None:
    provider = provider_for(pair, local=False)
    await write(pair.primary, 1, 10)
    session = await connect(pair.primary)  # an open session is terminated by the fence
    await provider.power_off("primary", hard=True)
    await provider.power_off("primary", hard=True)  # idempotent
    assert await provider.power_state("primary") == PowerState.OFF
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await session.execute("insert into t values (1000, 'x')")
    session.terminate()
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await write(pair.primary, 11, 1)
    assert await ids(pair.primary) == list(range(1, 11))

    await provider.power_on("primary")  # lifts the fence
    assert await provider.power_state("primary") == PowerState.ON
    await write(pair.primary, 11, 1)


async def test_graceful_switchover_keeps_every_row(pair: PgPair) -> None:
    provider = provider_for(pair, local=False)
    await write(pair.primary, 1, 2000)
    await provider.power_off("primary", hard=False)  # read-only, standby replays, fenced
    assert await provider.power_state("primary") == PowerState.OFF
    await provider.power_on("standby")
    assert await provider.power_state("standby") == PowerState.ON
    assert await ids(pair.standby) == list(range(1, 2001))
    await write(pair.standby, 2001, 1)
    await provider.power_on("standby")  # idempotent


async def test_lagging_standby_refused_unless_forced(pair: PgPair) -> None:
    provider = provider_for(pair, local=False, max_lag_bytes=65536)
    await write(pair.primary, 1, 10)
    await caught_up(provider, "standby")
    standby = await connect(pair.standby)
    try:
        await standby.execute("select pg_wal_replay_pause()")
    finally:
        await standby.close()
    await write(pair.primary, 11, 3000, pad=200)  # ~1 MB of WAL the standby does not replay

    with pytest.raises(LagTooHigh) as refused:
        await provider.power_on("standby")
    message = str(refused.value)
    assert f"lag {refused.value.lag['bytes']} bytes > max_lag_bytes 65536" in message
    assert refused.value.lag["bytes"] > 65536
    assert refused.value.lag["primary"] == "primary"
    assert pair.password not in message
    assert await provider.power_state("standby") == PowerState.OFF

    await provider.power_off("primary", hard=True)  # fence first, then force
    lag = await provider.promote("standby", force=True)
    assert lag["forced"] is True
    assert lag["bytes"] > 65536
    assert await provider.power_state("standby") == PowerState.ON
    await write(pair.standby, 100_000, 1)


async def test_unreachable_instance_and_bad_password(pair: PgPair) -> None:
    provider = provider_for(pair, local=False)
    pair.primary.kill()
    await asyncio.sleep(0.2)
    assert await provider.power_state("primary") == PowerState.UNKNOWN
    fenced = provider_for(pair, local=False)
    spec = fenced.config.instances["primary"].model_copy(update={"unreachable_is_fenced": True})
    fenced.config.instances["primary"] = spec
    assert await fenced.power_state("primary") == PowerState.OFF
    os.environ["HA_TEST_PG_PASSWORD"] = "wrong-" + pair.password
    try:
        with pytest.raises(ProviderError) as failed:
            await provider.power_on("standby")
    finally:
        os.environ["HA_TEST_PG_PASSWORD"] = pair.password
    assert "password authentication failed" in str(failed.value)
    assert pair.password not in str(failed.value)


async def test_rebuild_falls_back_to_base_backup_when_rewind_cannot(pair: PgPair) -> None:
    provider = provider_for(pair)
    await write(pair.primary, 1, 10)
    await caught_up(provider, "standby")
    pair.primary.kill()
    await provider.promote("standby")
    await write(pair.standby, 11, 10)
    for segment in (pair.primary.datadir / "pg_wal").glob("0000*"):
        segment.unlink()  # the old primary's WAL is lost: pg_rewind cannot work

    done = await provider.rebuild("primary", "standby")
    assert "pg_basebackup (pg_rewind failed; old data kept in" in done
    assert await provider.power_state("primary") == PowerState.OFF
    assert await ids(pair.primary) == list(range(1, 21))  # a standby: readable
