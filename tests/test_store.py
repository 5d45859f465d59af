"""The SQLite store: durable state and an append-only journal that survive a reopen."""

from __future__ import annotations

from pathlib import Path

from ha.store import JournalEvent, ScenarioRecord
from ha.store.sqlite import SqliteStore


async def test_state_and_journal_survive_a_reopen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    record = ScenarioRecord("web01", "failing_over", runbook="rb1", runbook_kind="failover")
    saved = await store.transition(
        record, JournalEvent(kind="transition", scenario="web01", message="running -> failing_over")
    )
    await store.append(
        JournalEvent(kind="step_done", scenario="web01", runbook="rb1", step="fence")
    )
    await store.append(JournalEvent(kind="check", scenario="db01", data={"ok": False}))
    await store.close()

    again = SqliteStore(tmp_path / "state.db")
    await again.open()
    assert (await again.scenarios())["web01"] == record
    events = await again.events()
    assert [e.kind for e in events] == ["transition", "step_done", "check"]
    assert events[0].id == saved.id
    assert [e.step for e in await again.events(runbook="rb1")] == ["fence"]
    assert [e.data for e in await again.events(scenario="db01")] == [{"ok": False}]
    assert [e.kind for e in await again.events(after=saved.id or 0, limit=1)] == ["step_done"]
    assert await again.last_event_id() == 3
    await again.close()


async def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    async with store.db.execute("pragma journal_mode") as cursor:
        assert await cursor.fetchone() == ("wal",)
    await store.close()


async def test_many_transitions_are_one_write(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    changes = [
        (ScenarioRecord(f"s{i}", "running"), JournalEvent(kind="registered", scenario=f"s{i}"))
        for i in range(2000)
    ]
    await store.transitions(changes)
    assert len(await store.scenarios()) == 2000
    assert [e.scenario for e in await store.events(limit=3)] == ["s0", "s1", "s2"]
    await store.close()
