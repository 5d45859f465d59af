"""The Store contract, run against every backend: SQLite (a file) and etcd (a real 3-member
cluster).

Each test states one guarantee of the ``Store`` docstring. ``new_store`` makes a fresh handle on
the same underlying state, so a test can close one handle and reopen another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ha.errors import StoreError
from ha.store import JournalEvent, ScenarioRecord, Store
from ha.store.etcd import EtcdStore
from ha.store.etcd_client import EtcdTarget
from ha.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from tests.servers.etcd import EtcdCluster

pytest_plugins = ["tests.servers.etcd"]  # imported by pytest (not above) so asserts are rewritten

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "etcd"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "state.db")
    cluster: EtcdCluster = request.getfixturevalue("etcd")
    target = EtcdTarget.parse(cluster.url)
    return lambda: EtcdStore(target)


@pytest.fixture
async def store(new_store: StoreFactory) -> AsyncIterator[Store]:
    store = new_store()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def event(kind: str = "check", **fields: object) -> JournalEvent:
    return JournalEvent(kind=kind, **fields)  # type: ignore[arg-type]


async def test_an_empty_store_has_nothing(store: Store) -> None:
    assert await store.events() == []
    assert await store.scenarios() == {}
    assert await store.last_event_id() == 0


async def test_append_returns_the_event_with_an_increasing_id(store: Store) -> None:
    sent = [event(scenario="web01", message=str(n)) for n in range(3)]
    saved = [await store.append(e) for e in sent]
    ids = [e.id or 0 for e in saved]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert saved == [replace(e, id=i) for e, i in zip(sent, ids, strict=True)]
    assert await store.last_event_id() == ids[-1]


async def test_append_is_not_idempotent(store: Store) -> None:
    same = event(message="twice")
    await store.append(same)
    await store.append(same)
    assert [e.message for e in await store.events()] == ["twice", "twice"]


async def test_every_field_of_an_event_round_trips(store: Store) -> None:
    sent = JournalEvent(
        kind="step_done",
        scenario="web01",
        message="fenced web01 — ok",
        data={"nested": {"list": [1, 2.5, None, True]}, "ü": "ß"},
        actor="alice",
        runbook="rb1",
        step="fence",
        ts=1700000000.123456,
    )
    saved = await store.append(sent)
    assert await store.events() == [saved]
    assert saved.to_json() == {**sent.to_json(), "id": saved.id}


async def test_transition_saves_the_record_and_the_event(store: Store) -> None:
    record = ScenarioRecord(
        "web01",
        "failing_over",
        active="replica",
        paused=True,
        runbook="rb1",
        runbook_kind="failover",
        reason=None,
        last_switch_at=1700000000.5,
        updated_at=1700000001.25,
    )
    saved = await store.transition(record, event("transition", scenario="web01"))
    assert await store.scenarios() == {"web01": record}
    assert await store.events() == [saved]
    assert await store.last_event_id() == saved.id


async def test_a_transition_replaces_the_previous_record(store: Store) -> None:
    other = ScenarioRecord("db01", "stopped")
    await store.transition(ScenarioRecord("web01", "running"), event("transition"))
    await store.transition(other, event("transition"))
    newer = ScenarioRecord("web01", "switched", active="replica")
    await store.transition(newer, event("transition"))
    assert await store.scenarios() == {"web01": newer, "db01": other}
    assert len(await store.events()) == 3


async def test_a_reader_never_sees_a_record_without_its_event(store: Store) -> None:
    """Atomic transition: the record and its event become visible together."""
    done = asyncio.Event()
    seen: list[str] = []

    async def write() -> None:
        for n in range(15):
            await store.transition(
                ScenarioRecord("web01", f"s{n}"), event("transition", message=f"s{n}")
            )
        done.set()

    async def read() -> None:
        while not done.is_set():
            record = (await store.scenarios()).get("web01")
            if record is not None:
                messages = {e.message for e in await store.events(kinds=("transition",))}
                assert record.state in messages
                seen.append(record.state)
            await asyncio.sleep(0)

    await asyncio.gather(write(), read())
    assert seen


async def test_events_come_oldest_first_with_every_filter(store: Store) -> None:
    sent = [
        event("transition", scenario="web01"),
        event("step_started", scenario="web01", runbook="rb1", step="fence"),
        event("check", scenario="db01"),
        event("step_done", scenario="web01", runbook="rb1", step="fence"),
        event("step_started", scenario="db01", runbook="rb2", step="fence"),
        event("alert", scenario=None),
        event("step_done", scenario="web01", runbook="rb1", step="redirect"),
    ]
    saved = [await store.append(e) for e in sent]
    ids = [e.id or 0 for e in saved]
    assert await store.events() == saved
    assert await store.events(after=ids[2]) == saved[3:]
    assert await store.events(after=ids[-1]) == []
    assert await store.events(scenario="web01") == [saved[i] for i in (0, 1, 3, 6)]
    assert await store.events(runbook="rb1") == [saved[i] for i in (1, 3, 6)]
    assert await store.events(kinds=("check", "alert")) == [saved[2], saved[5]]
    assert await store.events(limit=2) == saved[:2]
    assert await store.events(runbook="rb1", after=ids[1], limit=1) == [saved[3]]
    assert await store.events(scenario="web01", kinds=("step_done",), after=ids[3]) == [saved[6]]
    assert await store.events(scenario="db01", runbook="rb2", kinds=("step_started",)) == [saved[4]]
    assert await store.events(runbook="nope") == []


async def test_ids_stay_unique_and_ordered_with_concurrent_writers(new_store: StoreFactory) -> None:
    first, second = new_store(), new_store()
    await first.open()
    await second.open()
    try:
        saved = await asyncio.gather(
            *(s.append(event(message=f"{n}")) for n in range(10) for s in (first, second))
        )
    finally:
        await first.close()
        await second.close()
    reader = new_store()
    await reader.open()
    try:
        stored = await reader.events()
        assert sorted(e.id or 0 for e in saved) == [e.id for e in stored]
        assert len({e.id for e in stored}) == 20
        assert await reader.last_event_id() == stored[-1].id
    finally:
        await reader.close()


async def test_a_reopened_store_keeps_everything(new_store: StoreFactory) -> None:
    store = new_store()
    await store.open()
    await store.open()  # idempotent
    record = ScenarioRecord("web01", "failing_over", runbook="rb1", runbook_kind="failover")
    saved = [
        await store.transition(record, event("transition", scenario="web01")),
        await store.append(event("step_done", scenario="web01", runbook="rb1", step="fence")),
    ]
    await store.close()
    await store.close()  # idempotent

    again = new_store()
    await again.open()
    try:
        assert await again.scenarios() == {"web01": record}
        assert await again.events() == saved
        assert await again.events(runbook="rb1") == saved[1:]
        assert await again.last_event_id() == saved[-1].id
        after = await again.append(event())
        assert (after.id or 0) > (saved[-1].id or 0)
    finally:
        await again.close()


async def test_a_closed_store_refuses_with_store_error(new_store: StoreFactory) -> None:
    store = new_store()
    await store.open()
    await store.close()
    with pytest.raises(StoreError):
        await store.append(event())
    with pytest.raises(StoreError):
        await store.events()


async def test_a_noted_event_takes_its_place_before_later_writes(
    new_store: StoreFactory,
) -> None:
    store = new_store()
    await store.open()
    try:
        store.note(event(message="noted 1", scenario="s1"))
        store.note(event(message="noted 2", scenario="s1"))
        saved = await store.append(event(message="appended", scenario="s1"))
        store.note(event(message="noted last", scenario="s1"))
        assert saved.id == 3
        assert [e.message for e in await store.events()][:3] == ["noted 1", "noted 2", "appended"]
    finally:
        await store.close()  # writes the last one

    reopened = new_store()
    await reopened.open()
    try:
        found = [(e.id, e.message) for e in await reopened.events()]
    finally:
        await reopened.close()
    assert found == [(1, "noted 1"), (2, "noted 2"), (3, "appended"), (4, "noted last")]


async def test_noting_on_a_closed_store_refuses_with_store_error(store: Store) -> None:
    await store.close()

    with pytest.raises(StoreError, match="not open"):
        store.note(event(message="too late"))
