"""The SQLite store: one file, WAL, synchronous=FULL, no server.

All SQLite calls run on aiosqlite's own thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

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

_EVENT_COLUMNS = "id, ts, kind, scenario, actor, runbook, step, message, data"


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

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
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def _insert(self, event: JournalEvent) -> JournalEvent:
        cursor = await self.db.execute(
            "insert into journal (ts, kind, scenario, actor, runbook, step, message, data)"
            " values (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.ts,
                event.kind,
                event.scenario,
                event.actor,
                event.runbook,
                event.step,
                event.message,
                json.dumps(event.data, default=str),
            ),
        )
        assert cursor.lastrowid is not None
        return replace(event, id=cursor.lastrowid)

    async def append(self, event: JournalEvent) -> JournalEvent:
        try:
            saved = await self._insert(event)
            await self.db.commit()
        except sqlite3.Error as exc:
            await self._rollback()
            raise StoreError(f"cannot append to the journal: {exc}") from exc
        return saved

    async def _save(self, record: ScenarioRecord) -> None:
        await self.db.execute(
            "insert or replace into scenarios (name, state, active, paused, runbook,"
            " runbook_kind, reason, last_switch_at, updated_at)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.name,
                record.state,
                record.active,
                int(record.paused),
                record.runbook,
                record.runbook_kind,
                record.reason,
                record.last_switch_at,
                record.updated_at,
            ),
        )

    async def transition(self, record: ScenarioRecord, event: JournalEvent) -> JournalEvent:
        try:
            await self._save(record)
            saved = await self._insert(event)
            await self.db.commit()
        except sqlite3.Error as exc:
            await self._rollback()
            raise StoreError(f"cannot save the state of {record.name}: {exc}") from exc
        return saved

    async def transitions(self, changes: list[tuple[ScenarioRecord, JournalEvent]]) -> None:
        """All of them in one transaction: one durable commit, not one per scenario."""
        try:
            for record, event in changes:
                await self._save(record)
                await self._insert(event)
            await self.db.commit()
        except sqlite3.Error as exc:
            await self._rollback()
            raise StoreError(f"cannot save the state of {len(changes)} scenarios: {exc}") from exc

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
