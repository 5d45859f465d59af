"""The SQLite store: one file, WAL, synchronous=FULL, no server.

All SQLite calls run on aiosqlite's own thread, never on the event loop.

Group commit: writes that arrive while a commit is in flight wait for it, then go together in
the next transaction: one fsync for all of them instead of one each (a group failover journals
every step of every member). Each caller still returns only once its own write is durable;
each write is atomic (all of it or none), and the journal's ids follow the order in which the
writes were made. A lone write is committed at once: nothing waits for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from ha.errors import StoreError
from ha.store import JournalEvent, ScenarioRecord, Store

SCHEMA = """
create table if not exists scenarios (
    name text primary key,
    state text not null,
    active text not null,
    paused integer not null,
    runbook text,
    runbook_kind text,
    reason text,
    last_switch_at real,
    updated_at real not null
);
create table if not exists journal (
    id integer primary key autoincrement,
    ts real not null,
    kind text not null,
    scenario text,
    actor text not null,
    runbook text,
    step text,
    message text not null,
    data text not null
);
create index if not exists journal_scenario on journal (scenario, id);
create index if not exists journal_runbook on journal (runbook, id);
create index if not exists journal_kind on journal (kind, id);
"""

log = structlog.get_logger("ha.store")

_EVENT_COLUMNS = "id, ts, kind, scenario, actor, runbook, step, message, data"
_JSON = json.JSONEncoder(default=str)  # one encoder: json.dumps(default=...) makes one per call


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._queue: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            await db.execute("pragma journal_mode=wal")
            await db.execute("pragma synchronous=full")
            await db.executescript(SCHEMA)
            await db.commit()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open state file {self.path}: {exc}") from exc
        self._db = db

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer  # what was queued before close is written
            self._writer = None
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def append(self, event: JournalEvent) -> JournalEvent:
        (saved,) = await self._write([], [event], "cannot append to the journal")
        return saved

    async def transition(self, record: ScenarioRecord, event: JournalEvent) -> JournalEvent:
        (saved,) = await self._write([record], [event], f"cannot save the state of {record.name}")
        return saved

    async def transitions(self, changes: list[tuple[ScenarioRecord, JournalEvent]]) -> None:
        """All of them in one transaction: one durable commit, not one per scenario."""
        await self._write(
            [record for record, _ in changes],
            [event for _, event in changes],
            f"cannot save the state of {len(changes)} scenarios",
        )

    def note(self, event: JournalEvent) -> None:
        """Queued as any write (so in order with them) and committed with the next batch, but
        nobody waits: no future to make and resolve, no id to hand back."""
        if self._db is None:
            raise StoreError("cannot append to the journal: the store is not open")
        self._queue.append(_Write([], [event], [_event_row(event)], "", None))
        self._start_writer()

    async def _write(
        self, records: list[ScenarioRecord], events: list[JournalEvent], failure: str
    ) -> list[JournalEvent]:
        """Queue one atomic write and wait until it is committed (durable) with the others
        queued meanwhile; the events come back with their ids."""
        if self._db is None:
            raise StoreError(f"{failure}: the store is not open")
        rows = [_event_row(event) for event in events]
        done: asyncio.Future[list[JournalEvent]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(records, events, rows, failure, done))
        self._start_writer()
        return await done

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued())

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                last = await self._commit(batch)
            except Exception as exc:  # nothing of the batch was written: every caller learns it
                await self._rollback()
                noted = 0
                for write in batch:
                    if write.done is None:
                        noted += 1
                    elif not write.done.done():
                        write.done.set_exception(
                            StoreError(f"{write.failure}: {exc}")
                            if isinstance(exc, sqlite3.Error | StoreError)
                            else exc
                        )
                if noted:
                    log.error("journal events lost", events=noted, error=str(exc))
                continue
            first = last - sum(len(write.rows) for write in batch) + 1
            for write in batch:
                if write.done is not None and not write.done.done():
                    saved = [e.numbered(first + n) for n, e in enumerate(write.events)]
                    write.done.set_result(saved)
                first += len(write.rows)

    async def _commit(self, batch: list[_Write]) -> int:
        """Write every queued change in one transaction; the id of the last event written.
        The transaction holds SQLite's write lock from its first statement to its commit, so
        its events get consecutive ids, in the order they were queued."""
        records = [_record_row(record) for write in batch for record in write.records]
        rows = [row for write in batch for row in write.rows]
        if records:
            await self.db.executemany(
                "insert or replace into scenarios (name, state, active, paused, runbook,"
                " runbook_kind, reason, last_switch_at, updated_at)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                records,
            )
        last = 0
        if rows:
            await self.db.executemany(
                "insert into journal (ts, kind, scenario, actor, runbook, step, message, data)"
                " values (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            (found,) = await self.db.execute_fetchall(
                "select seq from sqlite_sequence where name = 'journal'"
            )
            last = int(found[0])
        await self.db.commit()
        return last

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            await self.db.rollback()

    async def scenarios(self) -> dict[str, ScenarioRecord]:
        rows = await self._query(
            "select name, state, active, paused, runbook, runbook_kind, reason, last_switch_at,"
            " updated_at from scenarios",
            (),
        )
        return {
            row[0]: ScenarioRecord(
                name=row[0],
                state=row[1],
                active=row[2],
                paused=bool(row[3]),
                runbook=row[4],
                runbook_kind=row[5],
                reason=row[6],
                last_switch_at=row[7],
                updated_at=row[8],
            )
            for row in rows
        }

    async def events(
        self,
        *,
        after: int = 0,
        scenario: str | None = None,
        runbook: str | None = None,
        kinds: tuple[str, ...] = (),
        limit: int = 1000,
    ) -> list[JournalEvent]:
        where = ["id > ?"]
        args: list[Any] = [after]
        if scenario is not None:
            where.append("scenario = ?")
            args.append(scenario)
        if runbook is not None:
            where.append("runbook = ?")
            args.append(runbook)
        if kinds:
            where.append(f"kind in ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        rows = await self._query(
            f"select {_EVENT_COLUMNS} from journal where {' and '.join(where)} order by id limit ?",
            (*args, limit),
        )
        return [_event_of(row) for row in rows]

    async def last_event_id(self) -> int:
        rows = await self._query("select coalesce(max(id), 0) from journal", ())
        return int(rows[0][0])

    async def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        try:
            async with self.db.execute(sql, args) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from exc


@dataclass(slots=True)
class _Write:
    """One caller's atomic write, queued until the writer commits it with the others."""

    records: list[ScenarioRecord]
    events: list[JournalEvent]
    rows: list[tuple[Any, ...]]
    failure: str  # what the caller's StoreError says it could not do
    done: asyncio.Future[list[JournalEvent]] | None  # None: noted, nobody waits


def _record_row(record: ScenarioRecord) -> tuple[Any, ...]:
    return (
        record.name,
        record.state,
        record.active,
        int(record.paused),
        record.runbook,
        record.runbook_kind,
        record.reason,
        record.last_switch_at,
        record.updated_at,
    )


def _event_row(event: JournalEvent) -> tuple[Any, ...]:
    data = _JSON.encode(event.data)
    return (
        event.ts,
        event.kind,
        event.scenario,
        event.actor,
        event.runbook,
        event.step,
        event.message,
        data,
    )


def _event_of(row: Any) -> JournalEvent:
    return JournalEvent(
        id=row[0],
        ts=row[1],
        kind=row[2],
        scenario=row[3],
        actor=row[4],
        runbook=row[5],
        step=row[6],
        message=row[7],
        data=json.loads(row[8]),
    )
