"""Group commit in the SQLite store: concurrent writes share commits, and each is still durable
when its caller returns, atomic, and journaled in the order the writes were made."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from ha.store import JournalEvent, ScenarioRecord
from ha.store.sqlite import SqliteStore


def wal_frames(path: Path) -> int:
    """Pages written to the write-ahead log: each commit writes every page it changed."""
    wal = path.with_name(path.name + "-wal")
    page = 4096
    return max(0, (wal.stat().st_size - 32) // (page + 24))


async def test_concurrent_appends_share_commits_and_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    before = wal_frames(path)
    saved = await asyncio.gather(
        *(store.append(JournalEvent(kind="step_done", scenario=f"s{n:03}")) for n in range(300))
    )
    frames = wal_frames(path) - before
    await store.close()

    ids = [event.id for event in saved]
    assert ids == list(range(1, 301))  # one id each, in the order the appends were made
    assert frames < 60  # a commit per append would write 300 times the pages it changed
    with sqlite3.connect(path) as db:
        rows = db.execute("select id, scenario from journal order by id").fetchall()
    assert rows == [(n + 1, f"s{n:03}") for n in range(300)]


async def test_each_write_is_durable_when_its_caller_returns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    seen: list[tuple[int, bool]] = []

    async def write(n: int) -> None:
        saved = await store.transition(
            ScenarioRecord(f"s{n}", "switched"), JournalEvent(kind="transition", scenario=f"s{n}")
        )
        with sqlite3.connect(path) as other:  # another connection sees it committed
            found = other.execute("select 1 from journal where id = ?", (saved.id,)).fetchall()
            state = other.execute("select state from scenarios where name = ?", (f"s{n}",))
            seen.append((n, found == [(1,)] and state.fetchall() == [("switched",)]))

    await asyncio.gather(*(write(n) for n in range(50)))
    await store.close()
    assert sorted(seen) == [(n, True) for n in range(50)]


async def test_close_writes_what_was_queued_before_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    writes = [asyncio.ensure_future(store.append(JournalEvent(kind="check"))) for _ in range(40)]
    await asyncio.sleep(0)  # the appends are queued
    await store.close()
    assert all(write.done() for write in writes)

    again = SqliteStore(path)
    await again.open()
    assert len(await again.events()) == 40
    await again.close()


async def test_a_cancelled_caller_does_not_stop_the_others(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    first = asyncio.ensure_future(store.append(JournalEvent(kind="check", message="first")))
    queued = [
        asyncio.ensure_future(store.append(JournalEvent(kind="check", message=str(n))))
        for n in range(5)
    ]
    await asyncio.sleep(0)
    queued[2].cancel()
    await first
    others = await asyncio.gather(*queued[:2], *queued[3:])
    assert [e.message for e in others] == ["0", "1", "3", "4"]
    assert [e.message for e in await store.events()][:2] == ["first", "0"]
    await store.close()


async def test_a_failed_commit_fails_every_write_in_it_and_the_next_ones_go_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await store.open()
    with sqlite3.connect(path) as other:
        other.execute("alter table journal rename to journal_away")
    with capture_logs() as logs:
        store.note(JournalEvent(kind="check", message="noted"))
        failed = await asyncio.gather(
            *(store.append(JournalEvent(kind="check", message=str(n))) for n in range(5)),
            return_exceptions=True,
        )
    with sqlite3.connect(path) as other:
        other.execute("alter table journal_away rename to journal")
    saved = await store.append(JournalEvent(kind="check", message="after"))
    await store.close()

    assert [type(e).__name__ for e in failed] == ["StoreError"] * 5
    lost = [entry for entry in logs if entry["event"] == "journal events lost"]
    assert [(e["events"], e["log_level"]) for e in lost] == [(1, "error")]
    assert "no such table: journal" in lost[0]["error"]
    assert str(failed[0]).startswith("cannot append to the journal: no such table: journal")
    assert [e.message for e in await reopened_events(path)] == ["after"]
    assert saved.message == "after"


async def reopened_events(path: Path) -> list[JournalEvent]:
    store = SqliteStore(path)
    await store.open()
    try:
        return await store.events()
    finally:
        await store.close()
