"""The MariaDB/MySQL application provider: GTID replication roles mapped onto power states.

An *instance* is the "machine". ON means "writable primary": ``read_only`` off and no replication
configured. OFF means a replica, a primary fenced with ``read_only``, or (only with
``unreachable_is_fenced: true``) an unreachable server; unreachable is UNKNOWN otherwise, so a
required fence blocks instead of risking split brain.

- ``power_on`` promotes: refuses with :class:`LagTooHigh` above the bound unless forced; applies
  what the replica has received, then ``STOP REPLICA; RESET REPLICA ALL; SET GLOBAL
  read_only=OFF``. On a fenced primary it lifts ``read_only``. Idempotent.
- ``power_off(hard=True)`` fences: ``stop_command`` when configured, else ``read_only=ON``
  (``super_read_only`` too where the server has it: MySQL) and other client sessions killed.
  Accounts with READ_ONLY ADMIN (MariaDB) or SUPER (MySQL without super_read_only) can still
  write: the application's account must not have them.
- ``power_off(hard=False)``: read-only, then ``MASTER_GTID_WAIT`` on every configured replica
  for the primary's ``gtid_binlog_pos`` (lossless), then fence.
- ``rebuild(old, new)``: ``read_only=ON``, ``gtid_slave_pos`` from its own binlog,
  ``CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos``, wait until caught up.

Driver errors become :class:`ha.errors.ProviderError` in :meth:`MariaDBProvider._session` only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal

import structlog
from pydantic import Field

from ha.duration import Duration
from ha.errors import NotSupported, ProviderError
from providers.base import PowerState, Provider, ProviderConfig
from providers.postgresql import DatabaseInstance, LagTooHigh
from providers.postgresql_rebuild import run_local

log = structlog.get_logger("providers.mariadb")
Row = dict[str, Any]


class MariaDBConfig(ProviderConfig):
    type: Literal["mariadb"]
    instances: dict[str, DatabaseInstance] = Field(min_length=1)
    max_lag_bytes: int | None = Field(1 << 20, ge=0, description="relay log not yet applied")
    max_lag_seconds: float | None = Field(None, ge=0, description="Seconds_Behind_Master")
    promote_timeout: Duration = Field(30.0, gt=0)
    connect_timeout: Duration = Field(3.0, gt=0)
    force_promotion: bool = False


class MariaDBProvider(Provider):
    type = "mariadb"
    Config = MariaDBConfig
    config: MariaDBConfig

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self.last_promotion: dict[str, dict[str, Any]] = {}
        self._stopped: set[str] = set()

    def instance(self, machine: str) -> DatabaseInstance:
        try:
            return self.config.instances[machine]
        except KeyError:
            raise NotSupported(f"provider {self.name}: no instance {machine!r}") from None

    @asynccontextmanager
    async def _session(self, action: str, machine: str) -> AsyncIterator[_Db]:
        """The one place where driver errors become ProviderError (password scrubbed)."""
        import aiomysql

        spec = self.instance(machine)
        password = spec.password() or ""
        connection = None
        try:
            connection = await aiomysql.connect(
                host=spec.host,
                port=spec.port,
                user=spec.user,
                password=password,
                db=spec.database,
                autocommit=True,  # else SET GLOBAL read_only fails with 1192
                connect_timeout=self.config.connect_timeout,
            )
            yield _Db(connection)
        except (OSError, TimeoutError, aiomysql.Error) as exc:
            text = f"{action} {machine}: {_describe(exc)}"
            raise ProviderError(text.replace(password, "********") if password else text) from exc
        finally:
            if connection is not None:
                connection.close()

    async def _role(self, action: str, machine: str) -> tuple[bool, bool]:
        """(replication configured, read_only) of a reachable instance."""
        async with self._session(action, machine) as db:
            status = await db.one("show slave status")
            read_only = await db.value("select @@global.read_only")
        return status is not None, bool(int(read_only or 0))

    async def power_state(self, machine: str) -> PowerState:
        try:
            replica, read_only = await self._role("status", machine)
        except NotSupported:
            raise
        except ProviderError as exc:
            if machine in self._stopped or self.instance(machine).unreachable_is_fenced:
                return PowerState.OFF
            log.warning("instance unreachable: state unknown", instance=machine, reason=str(exc))
            return PowerState.UNKNOWN
        return PowerState.OFF if replica or read_only else PowerState.ON

    async def power_on(self, machine: str) -> None:
        await self.promote(machine, force=self.config.force_promotion)

    async def promote(self, machine: str, *, force: bool = False) -> dict[str, Any]:
        """Make ``machine`` the writable primary; return the lag measured before promotion."""
        replica, _ = await self._role("promote", machine)
        self._stopped.discard(machine)
        lag: dict[str, Any] = {}
        if replica:
            lag = await self.replication_lag(machine)
            over = _over_bound(lag, self.config.max_lag_bytes, self.config.max_lag_seconds)
            if over and not force:
                raise LagTooHigh(f"promote {machine} refused: {over}; force to promote anyway", lag)
            lag["forced"] = bool(over)
            log.info("promoting", **lag)
            await self._apply_relay_log(machine)
        async with self._session("promote", machine) as db:
            if (status := await db.one("show slave status")) is not None:
                if _running(status):
                    await db.run("stop slave")
                await db.run("reset slave all")
            await db.run("set global read_only = OFF")
            if int(await db.value("select @@global.read_only")) != 0:
                raise ProviderError(f"promote {machine}: still read_only after promotion")
        if lag:
            self.last_promotion[machine] = lag
        return lag

    async def _apply_relay_log(self, machine: str) -> None:
        """Let the SQL thread apply what was received (bounded wait). The IO thread is left as
        it is: in GTID mode, once both threads stop, the relay log is discarded."""
        async with self._session("promote", machine) as db:
            first = await db.one("show slave status") or {}
            if first.get("Slave_SQL_Running") != "Yes":  # statements that change nothing warn
                await db.run("start slave sql_thread")
            give_up = time.monotonic() + self.config.promote_timeout
            while (status := await db.one("show slave status")) is not None:
                if _pending_bytes(status) == 0 or time.monotonic() > give_up:
                    log.info("relay log", instance=machine, pending=_pending_bytes(status))
                    break
                await asyncio.sleep(0.05)

    async def power_off(self, machine: str, *, hard: bool) -> None:
        spec = self.instance(machine)
        if not hard:
            await self._drain(machine)
        if spec.stop_command is not None:
            await run_local(spec, "stop", spec.stop_command, machine)
            self._stopped.add(machine)
            return
        await self._fence(machine)

    async def _fence(self, machine: str) -> None:
        import aiomysql

        async with self._session("fence", machine) as db:
            await db.run("set global read_only = ON")
            if await db.one("show global variables like 'super_read_only'") is not None:
                await db.run("set global super_read_only = ON")
            rows = await db.all(
                "select id from information_schema.processlist where id <> connection_id()"
                " and command not in ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO',"
                " 'Slave_SQL', 'Slave_worker') and user not in ('system user', 'event_scheduler')"
            )
            for row in rows:
                with suppress(aiomysql.Error):  # gone already
                    await db.run(f"kill connection {int(row['id'])}")

    async def _drain(self, machine: str) -> None:
        replica, _ = await self._role("switchover", machine)
        if replica:
            return
        await self._fence(machine)
        async with self._session("switchover", machine) as db:
            target = str(await db.value("select @@global.gtid_binlog_pos"))
        replicas = []
        for name in self.config.instances:
            if name != machine:
                try:
                    if (await self._role("switchover", name))[0]:
                        replicas.append(name)
                except ProviderError:
                    continue
        if not replicas:
            raise ProviderError(f"switchover {machine}: no reachable replica to wait for")
        timeout = self.config.promote_timeout
        for name in replicas:
            async with self._session("switchover", name) as db:
                waited = await db.value("select master_gtid_wait(%s, %s)", (target, timeout))
            if int(waited) != 0:
                raise ProviderError(
                    f"switchover {machine}: {name} has not applied {target} within {timeout:g}s"
                )
        log.info("replicas caught up", instance=machine, gtid=target, replicas=replicas)

    async def replication_lag(self, machine: str) -> dict[str, Any]:
        """``bytes`` received but not applied, ``seconds`` (Seconds_Behind_Master), GTIDs."""
        async with self._session("lag", machine) as db:
            status = await db.one("show slave status")
            applied = await db.value("select @@global.gtid_slave_pos")
        if status is None:
            return {"instance": machine, "bytes": 0, "seconds": 0.0, "primary": None}
        seconds = status.get("Seconds_Behind_Master")
        return {
            "instance": machine,
            "bytes": _pending_bytes(status),
            "seconds": None if seconds is None else float(seconds),
            "gtid_applied": str(applied or ""),
            "gtid_received": str(status.get("Gtid_IO_Pos") or ""),
            "primary": f"{status.get('Master_Host')}:{status.get('Master_Port')}",
        }

    async def rebuild(self, machine: str, primary: str) -> str:
        """Make ``machine`` a GTID replica of ``primary`` and wait until it has caught up."""
        source = self.instance(primary)
        if await self.power_state(primary) != PowerState.ON:
            raise ProviderError(f"rebuild {machine}: {primary} is not a writable primary")
        async with self._session("rebuild", primary) as db:
            target = str(await db.value("select @@global.gtid_binlog_pos"))
        password = source.password() or ""
        async with self._session("rebuild", machine) as db:
            await db.run("set global read_only = ON")
            if (status := await db.one("show slave status")) is not None and _running(status):
                await db.run("stop slave")
            await db.run("set global gtid_slave_pos = @@global.gtid_binlog_pos")
            await db.run(
                "change master to master_host = %s, master_port = %s, master_user = %s,"
                " master_password = %s, master_use_gtid = slave_pos",
                (source.host, source.port, source.user, password),
            )
            await db.run("start slave")
            waited = await db.value(
                "select master_gtid_wait(%s, %s)", (target, self.config.promote_timeout)
            )
            status = await db.one("show slave status")
        if int(waited) != 0:
            error = (status or {}).get("Last_IO_Error") or (status or {}).get("Last_SQL_Error")
            raise ProviderError(f"rebuild {machine}: has not applied {target}: {error or 'slow'}")
        self._stopped.discard(machine)
        return f"{machine} replicates {primary} with GTID and has caught up"

    def describe(self, action: str, machine: str) -> str:
        verbs = {
            "power on": "promote (refused above the lag bound)",
            "power off (hard)": "fence (stop or read_only)",
            "shut down": "read_only, wait for replicas (GTID), fence",
        }
        return f"{verbs.get(action, action)} MariaDB {machine} via {self.name}"


class _Db:
    """A thin typed wrapper over an aiomysql connection (dict rows)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def all(self, sql: str, args: tuple[Any, ...] | None = None) -> list[Row]:
        import aiomysql

        async with self.connection.cursor(aiomysql.DictCursor) as cursor:
            await cursor.execute(sql, args)
            return list(await cursor.fetchall())

    async def one(self, sql: str, args: tuple[Any, ...] | None = None) -> Row | None:
        rows = await self.all(sql, args)
        return rows[0] if rows else None

    async def value(self, sql: str, args: tuple[Any, ...] | None = None) -> Any:
        row = await self.one(sql, args)
        return None if row is None else next(iter(row.values()))

    async def run(self, sql: str, args: tuple[Any, ...] | None = None) -> None:
        await self.all(sql, args)


def _running(status: Row) -> bool:
    return "Yes" in (status.get("Slave_IO_Running"), status.get("Slave_SQL_Running"))


def _pending_bytes(status: Row) -> int:
    """Received from the primary's binlog but not applied yet (same binlog file), else 0 if
    the SQL thread is on an older file (counted as 1: pending, size unknown)."""
    read_file, exec_file = status.get("Master_Log_File"), status.get("Relay_Master_Log_File")
    read, done = (
        int(status.get("Read_Master_Log_Pos") or 0),
        int(status.get("Exec_Master_Log_Pos") or 0),
    )
    if read_file == exec_file:
        return max(0, read - done)
    return max(1, read)


def _over_bound(lag: dict[str, Any], max_bytes: int | None, max_seconds: float | None) -> str:
    reasons = []
    if max_bytes is not None and lag["bytes"] > max_bytes:
        reasons.append(f"lag {lag['bytes']} bytes > max_lag_bytes {max_bytes}")
    seconds = lag["seconds"]
    if max_seconds is not None and seconds is not None and seconds > max_seconds:
        reasons.append(f"lag {seconds:.1f}s > max_lag_seconds {max_seconds:g}")
    return ", ".join(reasons)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if len(exc.args) == 2 and isinstance(exc.args[0], int):
        return f"error {exc.args[0]}: {exc.args[1]}"
    return f"{type(exc).__name__}: {exc}".strip()
