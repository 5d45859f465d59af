"""The PostgreSQL application provider: database roles mapped onto power states.

An *instance* (a configured PostgreSQL server) is the "machine". ON means "a primary that accepts
writes"; OFF means "cannot take writes": a standby in recovery, a primary fenced read-only, or
(only when the instance says ``unreachable_is_fenced: true``) a server that cannot be reached.
An unreachable server is UNKNOWN otherwise, so a required fence step blocks instead of risking two
writable primaries (split brain): unreachable is not the same as dead.

- ``power_on`` promotes a standby (``pg_promote(wait => true)``), refusing with
  :class:`LagTooHigh` when its lag is above the bound unless forced; on a fenced primary it lifts
  the read-only fence. Idempotent.
- ``power_off(hard=True)`` fences: ``stop_command`` when configured, else read-only
  (``ALTER SYSTEM SET default_transaction_read_only``) and every client session terminated.
- ``power_off(hard=False)`` is the lossless half of a switchover: read-only, wait until every
  connected standby has replayed the primary's last LSN, then fence as above.
- ``replication_lag`` and ``rebuild`` (pg_rewind, or a fresh base backup) serve the journal and
  failback; see :mod:`providers.postgresql_rebuild`.

Driver errors become :class:`ha.errors.ProviderError` in :meth:`PostgreSQLProvider._session`
only. Passwords are given by reference and never appear in messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.base import CheckFailed
from checks.database import EnvVarName, SecretFilePath, read_secret
from ha.duration import Duration
from ha.errors import NotSupported, ProviderError
from ha.process import Command
from providers.base import PowerState, Provider, ProviderConfig

if TYPE_CHECKING:
    import asyncpg

log = structlog.get_logger("providers.postgresql")


class LagTooHigh(NotSupported):
    """Promotion refused: the standby's lag is above the configured bound (never retried)."""

    def __init__(self, message: str, lag: dict[str, Any]) -> None:
        super().__init__(message)
        self.lag = lag


class DatabaseInstance(BaseModel):
    """One database server: how to reach it and, when local, how to stop, start and rebuild it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    user: str = Field(min_length=1)
    password_env: EnvVarName | None = None
    password_file: SecretFilePath | None = None
    database: str | None = None
    data_dir: Path | None = Field(None, description="local data directory, for rebuild")
    stop_command: Command | None = Field(None, description="stops the instance: the fence")
    start_command: Command | None = Field(None, description="starts the instance, for rebuild")
    run_as: str | None = Field(None, description="OS user for pg_rewind/pg_basebackup (runuser)")
    bindir: Path | None = Field(None, description="PostgreSQL binaries; found when unset")
    unreachable_is_fenced: bool = Field(
        False, description="count an unreachable instance as OFF (only if fenced by other means)"
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> Self:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        return self

    def password(self) -> str | None:
        try:
            secret = read_secret(self.password_env, self.password_file)
        except CheckFailed as exc:
            raise ProviderError(str(exc)) from None
        return secret.get_secret_value() if secret is not None else None


class PostgreSQLConfig(ProviderConfig):
    type: Literal["postgresql"]
    instances: dict[str, DatabaseInstance] = Field(min_length=1)
    max_lag_bytes: int | None = Field(1 << 20, ge=0, description="promotion bound; None: none")
    max_lag_seconds: float | None = Field(None, ge=0, description="promotion bound; None: none")
    promote_timeout: Duration = Field(30.0, gt=0, description="promotion, catch-up, rebuild")
    connect_timeout: Duration = Field(3.0, gt=0)
    force_promotion: bool = Field(False, description="promote past the lag bound (data loss)")


def lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class PostgreSQLProvider(Provider):
    type = "postgresql"
    Config = PostgreSQLConfig
    config: PostgreSQLConfig

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self.last_promotion: dict[str, dict[str, Any]] = {}  # instance -> lag at promotion
        self._stopped: set[str] = set()  # instances this provider stopped with stop_command

    # -- the one place where driver errors become ProviderError --------------------------------

    def instance(self, machine: str) -> DatabaseInstance:
        try:
            return self.config.instances[machine]
        except KeyError:
            raise NotSupported(f"provider {self.name}: no instance {machine!r}") from None

    @asynccontextmanager
    async def _session(self, action: str, machine: str) -> AsyncIterator[asyncpg.Connection]:
        import asyncpg

        spec = self.instance(machine)
        password = spec.password()
        try:
            connection = await asyncpg.connect(
                host=spec.host,
                port=spec.port,
                user=spec.user,
                password=password,
                database=spec.database,
                timeout=self.config.connect_timeout,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise ProviderError(_scrub(f"{action} {machine}: {_describe(exc)}", password)) from exc
        try:
            yield connection
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ProviderError(_scrub(f"{action} {machine}: {_describe(exc)}", password)) from exc
        finally:
            await _close(connection)

    async def _role(self, action: str, machine: str) -> tuple[bool, bool]:
        """(in recovery, read-only by default) of a reachable instance."""
        async with self._session(action, machine) as db:
            row = await db.fetchrow(
                "select pg_is_in_recovery() as standby,"
                " current_setting('default_transaction_read_only') = 'on' as read_only"
            )
        assert row is not None
        return bool(row["standby"]), bool(row["read_only"])

    # -- Provider --------------------------------------------------------------------------------

    async def power_state(self, machine: str) -> PowerState:
        try:
            standby, read_only = await self._role("status", machine)
        except NotSupported:
            raise
        except ProviderError as exc:
            if machine in self._stopped or self.instance(machine).unreachable_is_fenced:
                log.info("unreachable counts as fenced", instance=machine, reason=str(exc))
                return PowerState.OFF
            log.warning("instance unreachable: state unknown", instance=machine, reason=str(exc))
            return PowerState.UNKNOWN
        return PowerState.OFF if standby or read_only else PowerState.ON

    async def power_on(self, machine: str) -> None:
        await self.promote(machine, force=self.config.force_promotion)

    async def promote(self, machine: str, *, force: bool = False) -> dict[str, Any]:
        """Make ``machine`` the writable primary; return the lag measured before promotion
        (empty when it was a primary already). Refuses with LagTooHigh unless ``force``."""
        standby, read_only = await self._role("promote", machine)
        self._stopped.discard(machine)
        if not standby:
            if read_only:
                await self._set_read_only(machine, on=False)
                log.info("read-only fence lifted", instance=machine)
            await self._wait_writable(machine)
            return {}
        lag = await self.replication_lag(machine)
        over = self._over_bound(lag)
        if over and not force:
            raise LagTooHigh(f"promote {machine} refused: {over}; force to promote anyway", lag)
        log.info("promoting", forced=bool(over), **lag)
        timeout = max(1, int(self.config.promote_timeout))
        async with self._session("promote", machine) as db:
            done = await db.fetchval("select pg_promote(true, $1)", timeout)
        if not done:
            raise ProviderError(f"promote {machine}: not promoted within {timeout}s")
        if (await self._role("promote", machine))[1]:
            # fenced read-only when it was a primary before (ALTER SYSTEM is not replicated,
            # and pg_rewind keeps the target's postgresql.auto.conf)
            await self._set_read_only(machine, on=False)
        await self._wait_writable(machine)
        lag = {**lag, "forced": bool(over)}
        self.last_promotion[machine] = lag
        return lag

    def _over_bound(self, lag: dict[str, Any]) -> str:
        """Why ``lag`` is above the bound, or '' when it is within."""
        max_bytes, max_seconds = self.config.max_lag_bytes, self.config.max_lag_seconds
        reasons = []
        if max_bytes is not None and lag["bytes"] > max_bytes:
            reasons.append(f"lag {lag['bytes']} bytes > max_lag_bytes {max_bytes}")
        seconds = lag["seconds"]
        if max_seconds is not None and seconds is not None and seconds > max_seconds:
            reasons.append(f"lag {seconds:.1f}s > max_lag_seconds {max_seconds:g}")
        return ", ".join(reasons)

    async def _wait_writable(self, machine: str) -> None:
        give_up = time.monotonic() + self.config.promote_timeout
        while True:
            standby, read_only = await self._role("wait writable", machine)
            if not standby and not read_only:
                async with self._session("write probe", machine) as db:
                    await db.execute("select txid_current()")  # assigns an xid: a real write
                return
            if time.monotonic() > give_up:
                raise ProviderError(
                    f"{machine} does not accept writes after promotion"
                    f" (in recovery: {standby}, read-only: {read_only})"
                )
            await asyncio.sleep(0.05)

    async def power_off(self, machine: str, *, hard: bool) -> None:
        spec = self.instance(machine)
        if not hard:
            await self._drain(machine)
        if spec.stop_command is not None:
            from providers.postgresql_rebuild import run_local

            await run_local(spec, "stop", spec.stop_command, machine)
            self._stopped.add(machine)
            return
        standby, read_only = await self._role("fence", machine)
        if standby:
            return  # a standby cannot take writes: nothing to fence
        if not read_only:
            await self._set_read_only(machine, on=True)

    async def _set_read_only(self, machine: str, *, on: bool) -> None:
        async with self._session("fence" if on else "unfence", machine) as db:
            if on:
                await db.execute("alter system set default_transaction_read_only = on")
            else:
                await db.execute("alter system reset default_transaction_read_only")
            await db.execute("select pg_reload_conf()")
            give_up = time.monotonic() + self.config.promote_timeout
            want = "on" if on else "off"
            # the reload is asynchronous: a new session sees the setting once the postmaster
            # has re-read the file
            while await self._fresh_setting(machine) != want:
                if time.monotonic() > give_up:
                    raise ProviderError(f"{machine}: default_transaction_read_only is not {want}")
                await asyncio.sleep(0.02)
            if on:
                await db.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where backend_type = 'client backend' and pid <> pg_backend_pid()"
                )

    async def _fresh_setting(self, machine: str) -> str:
        async with self._session("fence", machine) as db:
            return str(await db.fetchval("show default_transaction_read_only"))

    async def _drain(self, machine: str) -> None:
        """Stop writes, then wait until every connected standby has replayed our last LSN."""
        standby, read_only = await self._role("switchover", machine)
        if standby:
            return
        if not read_only:
            await self._set_read_only(machine, on=True)
        async with self._session("switchover", machine) as db:
            target = str(await db.fetchval("select pg_current_wal_lsn()::text"))
            give_up = time.monotonic() + self.config.promote_timeout
            while True:
                rows = await db.fetch("select replay_lsn::text as lsn from pg_stat_replication")
                behind = [
                    r for r in rows if r["lsn"] is None or lsn_to_int(r["lsn"]) < lsn_to_int(target)
                ]
                if rows and not behind:
                    log.info("standbys caught up", instance=machine, lsn=target, standbys=len(rows))
                    return
                if time.monotonic() > give_up:
                    raise ProviderError(
                        f"switchover {machine}: {len(behind)} of {len(rows)} standbys have not"
                        f" replayed {target} within {self.config.promote_timeout:g}s"
                    )
                await asyncio.sleep(0.05)

    async def replication_lag(self, machine: str) -> dict[str, Any]:
        """The lag of a standby: ``bytes`` behind the primary (when a configured primary answers,
        else behind what it has received), ``seconds`` since its last replayed transaction (0 when
        nothing is pending), the LSNs, and ``primary`` (the instance compared with, or None)."""
        async with self._session("lag", machine) as db:
            row = await db.fetchrow(
                "select pg_is_in_recovery() as standby,"
                " pg_last_wal_receive_lsn()::text as received,"
                " pg_last_wal_replay_lsn()::text as replayed,"
                " extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as age"
            )
        assert row is not None
        if not row["standby"]:
            return {"instance": machine, "bytes": 0, "seconds": 0.0, "primary": machine}
        replayed = row["replayed"] or "0/0"
        primary, head = await self._primary_lsn(exclude=machine)
        if head is None:
            head = row["received"] or replayed
        pending = max(0, lsn_to_int(head) - lsn_to_int(replayed))
        age = row["age"]
        return {
            "instance": machine,
            "bytes": pending,
            "seconds": 0.0 if pending == 0 else (None if age is None else round(float(age), 3)),
            "replay_lsn": replayed,
            "head_lsn": head,
            "primary": primary,
        }

    async def _primary_lsn(self, *, exclude: str) -> tuple[str | None, str | None]:
        """The current LSN of the first other configured instance that is a reachable primary."""

        async def ask(name: str) -> str | None:
            try:
                async with self._session("lag", name) as db:
                    row = await db.fetchrow(
                        "select pg_is_in_recovery() as standby,"
                        " case when pg_is_in_recovery() then null"
                        " else pg_current_wal_lsn()::text end as lsn"
                    )
            except ProviderError:
                return None
            return None if row is None or row["standby"] else str(row["lsn"])

        names = [name for name in self.config.instances if name != exclude]
        answers = await asyncio.gather(*(ask(name) for name in names))
        for name, lsn in zip(names, answers, strict=True):
            if lsn is not None:
                return name, lsn
        return None, None

    async def rebuild(self, machine: str, primary: str) -> str:
        """Turn ``machine`` into a standby of ``primary`` (pg_rewind, else a fresh base backup),
        then wait until it has replayed the primary's current LSN. Returns what was done."""
        from providers.postgresql_rebuild import rebuild

        return await rebuild(self, machine, primary)

    def describe(self, action: str, machine: str) -> str:
        verbs = {
            "power on": "promote (refused above the lag bound)",
            "power off (hard)": "fence (stop or read-only)",
            "shut down": "stop writes, wait for standbys to replay, fence",
        }
        return f"{verbs.get(action, action)} PostgreSQL {machine} via {self.name}"


async def _close(connection: asyncpg.Connection) -> None:
    try:
        async with asyncio.timeout(2):
            await connection.close()
    except (OSError, TimeoutError):
        connection.terminate()
    except Exception:  # the server went away mid-close (it was fenced, or killed)
        connection.terminate()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}".strip()


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text
