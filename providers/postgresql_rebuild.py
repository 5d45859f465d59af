"""Failback for the PostgreSQL provider: rebuild an old primary as a standby of the new one.

Sequence: stop the instance (``stop_command``; a crashed one is fine, pg_rewind recovers it
first), ``pg_rewind --source-server ... -R`` (writes standby.signal and primary_conninfo), start it
(``start_command``), wait until it has replayed the new primary's current LSN. When pg_rewind
cannot work (no common timeline history, checksums and wal_log_hints both off, ...) the data
directory is moved aside (kept, renamed ``<data_dir>.old-<time>``) and a fresh
``pg_basebackup -R -X stream`` takes its place.

The password reaches the tools through ``PGPASSWORD`` in their environment: never in argv or in a
message.
"""

from __future__ import annotations

import asyncio
import glob
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ha.errors import NotSupported, ProviderError
from ha.process import Command, argv_of, run_command

if TYPE_CHECKING:
    from providers.postgresql import DatabaseInstance, PostgreSQLProvider

log = structlog.get_logger("providers.postgresql")
TOOL_TIMEOUT = 300.0


async def run_local(
    spec: DatabaseInstance,
    action: str,
    command: Command | list[str],
    machine: str,
    env: dict[str, str] | None = None,
) -> str:
    """Run a local command for ``machine`` ({machine} and {data_dir} are filled in)."""
    argv = argv_of(command, {"machine": machine, "data_dir": str(spec.data_dir or "")})
    try:
        result = await run_command(
            argv, timeout=TOOL_TIMEOUT, env={"HA_MACHINE": machine, **(env or {})}
        )
    except OSError as exc:
        raise ProviderError(f"{action} {machine}: cannot start {argv[0]}: {exc}") from exc
    password = (env or {}).get("PGPASSWORD")
    output = result.output.replace(password, "********") if password else result.output
    if not result.ok:
        raise ProviderError(f"{action} {machine}: {argv[0]} failed: {output.strip()[-400:]}")
    return output


def _tool(spec: DatabaseInstance, name: str) -> list[str]:
    if spec.bindir is not None:
        path = str(spec.bindir / name)
    else:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
        path = found[-1] if found else (shutil.which(name) or name)
    return ["runuser", "-u", spec.run_as, "--", path] if spec.run_as else [path]


def _version(path: str) -> int:
    return int(Path(path).parents[1].name.split(".")[0])


def _conninfo(spec: DatabaseInstance) -> str:
    database = spec.database or "postgres"
    return f"host={spec.host} port={spec.port} user={spec.user} dbname={database}"


async def rebuild(provider: PostgreSQLProvider, machine: str, primary: str) -> str:
    spec, source = provider.instance(machine), provider.instance(primary)
    if spec.data_dir is None or spec.start_command is None or spec.stop_command is None:
        raise NotSupported(
            f"rebuild {machine}: needs data_dir, start_command and stop_command in its config"
        )
    if machine == primary:
        raise NotSupported(f"rebuild {machine}: it cannot follow itself")
    if await provider.power_state(primary) != "on":
        raise ProviderError(f"rebuild {machine}: {primary} is not a writable primary")
    try:
        standby, _ = await provider._role("rebuild", machine)
    except ProviderError:
        standby = False  # not running: rewind it
    if standby:
        done = "already a standby"
    else:
        done = await _rewind_or_copy(provider, machine, spec, source)
    await _wait_caught_up(provider, machine, primary)
    log.info("rebuilt as standby", instance=machine, primary=primary, how=done)
    return f"{machine} follows {primary} ({done}) and has caught up"


async def _rewind_or_copy(
    provider: PostgreSQLProvider, machine: str, spec: DatabaseInstance, source: DatabaseInstance
) -> str:
    assert spec.data_dir is not None
    assert spec.start_command is not None
    assert spec.stop_command is not None
    env = {"PGPASSWORD": password} if (password := source.password()) else {}
    await _stop_quietly(provider, machine, spec.stop_command)
    # a just-promoted primary writes its new timeline to pg_control at its next checkpoint only:
    # before it, pg_rewind sees one timeline and wrongly answers "no rewind required"
    async with provider._session("checkpoint", _name_of(provider, source)) as db:
        await db.execute("checkpoint")
    rewind = [*_tool(spec, "pg_rewind"), "-D", str(spec.data_dir), "-R"]
    try:
        output = await run_local(
            spec, "pg_rewind", [*rewind, "--source-server", _conninfo(source)], machine, env
        )
        done = "pg_rewind: " + (output.strip().splitlines() or ["done"])[-1]
    except ProviderError as exc:
        log.warning("pg_rewind failed: fresh base backup", instance=machine, reason=str(exc))
        aside = spec.data_dir.with_name(f"{spec.data_dir.name}.old-{int(time.time())}")
        await asyncio.to_thread(spec.data_dir.rename, aside)
        backup = [*_tool(spec, "pg_basebackup"), "-D", str(spec.data_dir), "-R", "-X", "stream"]
        backup += ["-c", "fast", "-h", source.host, "-p", str(source.port), "-U", source.user]
        await run_local(spec, "pg_basebackup", backup, machine, env)
        done = f"pg_basebackup (pg_rewind failed; old data kept in {aside})"
    await run_local(spec, "start", spec.start_command, machine)
    provider._stopped.discard(machine)
    return done


def _name_of(provider: PostgreSQLProvider, spec: DatabaseInstance) -> str:
    return next(name for name, other in provider.config.instances.items() if other is spec)


async def _stop_quietly(provider: PostgreSQLProvider, machine: str, command: Command) -> None:
    """Stop the instance; a stop that fails because it is not running is fine."""
    try:
        await run_local(provider.instance(machine), "stop", command, machine)
    except ProviderError as exc:
        log.info("stop before rewind failed (not running?)", instance=machine, reason=str(exc))


async def _wait_caught_up(provider: PostgreSQLProvider, machine: str, primary: str) -> None:
    from providers.postgresql import lsn_to_int

    async with provider._session("rebuild", primary) as db:
        target = str(await db.fetchval("select pg_current_wal_lsn()::text"))
    give_up = time.monotonic() + provider.config.promote_timeout
    while True:
        replayed = None
        try:
            async with provider._session("rebuild", machine) as db:
                replayed = await db.fetchval("select pg_last_wal_replay_lsn()::text")
        except ProviderError:
            pass  # still starting
        if replayed is not None and lsn_to_int(replayed) >= lsn_to_int(target):
            return
        if time.monotonic() > give_up:
            raise ProviderError(
                f"rebuild {machine}: has not replayed {target} (at {replayed})"
                f" within {provider.config.promote_timeout:g}s"
            )
        await asyncio.sleep(0.1)
