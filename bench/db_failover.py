"""Benchmark: SIGKILL of the PostgreSQL primary to the first successful write on the promoted
standby, through the PostgreSQL provider (``promote``: lag check, ``pg_promote(wait => true)``,
wait until writable), then the client's own write. Failure *detection* is not included: it is the
scenario's is-alive policy (interval x failures), added on top.

Each run uses a fresh primary + streaming standby (tests/servers/pg_pair.py), so that every
measurement starts from the same state. Run as root (the servers run as ``postgres`` via runuser)::

    .venv/bin/python -m bench.db_failover --runs 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import asyncpg

from bench.summary import Figure, add_option, write
from providers.postgresql import PostgreSQLConfig, PostgreSQLProvider
from tests.servers.pg_pair import USER, PgPair, pg_pair


async def one_run(pair: PgPair) -> tuple[float, float]:
    """(seconds to the first write, seconds spent in promote)."""
    config = PostgreSQLConfig.model_validate(
        {
            "type": "postgresql",
            "instances": {
                "primary": pair.instance(pair.primary, local=False),
                "standby": pair.instance(pair.standby, local=False),
            },
        }
    )
    provider = PostgreSQLProvider("bench", config)
    password = os.environ["HA_TEST_PG_PASSWORD"]
    primary = await asyncpg.connect(
        host="127.0.0.1", port=pair.primary.port, user=USER, password=password, database="postgres"
    )
    await primary.execute("create table t (id serial primary key, at timestamptz default now())")
    await primary.execute("insert into t default values")
    await primary.close()
    while True:  # the standby has the table before the primary dies
        if (await provider.replication_lag("standby"))["bytes"] == 0:
            break
        await asyncio.sleep(0.01)

    killed = time.perf_counter()
    pair.primary.kill()
    await provider.promote("standby")
    promoted = time.perf_counter()
    while True:
        try:
            standby = await asyncpg.connect(
                host="127.0.0.1",
                port=pair.standby.port,
                user=USER,
                password=password,
                database="postgres",
            )
            try:
                await standby.execute("insert into t default values")
            finally:
                await standby.close()
            break
        except (asyncpg.PostgresError, OSError):
            await asyncio.sleep(0.005)
    return time.perf_counter() - killed, promoted - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    add_option(parser)
    args = parser.parse_args()
    totals, promotes = [], []
    for run in range(args.runs):
        with pg_pair() as pair:
            total, promote = asyncio.run(one_run(pair))
        totals.append(total)
        promotes.append(promote)
        print(f"run {run + 1}: first write {total * 1000:.0f} ms (promote {promote * 1000:.0f} ms)")
    print(
        f"median of {args.runs}: SIGKILL -> first write {statistics.median(totals) * 1000:.0f} ms"
        f" (min {min(totals) * 1000:.0f}, max {max(totals) * 1000:.0f});"
        f" in promote {statistics.median(promotes) * 1000:.0f} ms"
    )
    write(
        args.summary,
        Figure(
            f"PostgreSQL primary killed -> write on promoted standby (median of {args.runs})",
            f"{statistics.median(totals) * 1000:.0f} ms",
        ),
    )


if __name__ == "__main__":
    main()
