"""What the etcd store adds to the contract: writes conditional on leadership, and a cluster that
keeps serving when a member dies. Against a real 3-member cluster on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

import ha.store.etcd
from ha.coordination import Elector
from ha.errors import StoreError
from ha.store import JournalEvent, ScenarioRecord
from ha.store.etcd import EtcdStore
from ha.store.etcd_client import EtcdUnavailable, NotLeader
from ha.store.etcd_target import EtcdTarget
from tests.servers.ports import free_port

if TYPE_CHECKING:
    from tests.servers.etcd import EtcdCluster

pytest_plugins = ["tests.servers.etcd"]  # imported by pytest (not above) so asserts are rewritten

TTL = 2
TIMEOUT = 1.0  # per member and call: a cut-off member costs this much before the next is tried


@dataclass
class FrozenGuard:
    """A leader that has not noticed yet that it was deposed: it still believes in its tenure."""

    key: bytes
    frozen: int | None

    def tenure(self) -> int | None:
        return self.frozen


@pytest.fixture
def target(etcd: EtcdCluster) -> EtcdTarget:
    return EtcdTarget.parse(etcd.url)


@pytest.fixture
async def elector(target: EtcdTarget) -> AsyncIterator[Elector]:
    """An elector that leads (nobody else campaigns)."""
    elector = Elector(target, "alpha", ttl=TTL, timeout=TIMEOUT)
    await elector.start()
    try:
        await asyncio.wait_for(elector.wait_until(True), 5)
        yield elector
    finally:
        await elector.close()


async def opened(target: EtcdTarget, **kwargs: Any) -> EtcdStore:
    store = EtcdStore(target, timeout=TIMEOUT, **kwargs)
    await store.open()
    return store


async def within(seconds: float, condition: Callable[[], Awaitable[bool] | bool]) -> float:
    """Poll until ``condition`` holds; return how long it took, fail after ``seconds``."""
    start = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.02)


def test_a_state_url_names_the_members_and_an_optional_prefix() -> None:
    assert EtcdTarget.parse("etcd://h1:2379,10.0.0.2:2380/ha/prod") == EtcdTarget(
        (("h1", 2379), ("10.0.0.2", 2380)), "/ha/prod/"
    )
    assert EtcdTarget.parse("etcd://127.0.0.1:2379").prefix == "/ha/"


@pytest.mark.parametrize("url", ["sqlite://x:1", "etcd://h1", "etcd://h1:0", "etcd://:2379,h:1"])
def test_a_bad_state_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"etcd|host:port"):
        EtcdTarget.parse(url)


async def test_a_store_with_no_member_reachable_fails_to_open() -> None:
    target = EtcdTarget((("127.0.0.1", free_port()), ("127.0.0.1", free_port())))
    with pytest.raises(EtcdUnavailable, match="cannot open the store"):
        await opened(target)


async def test_a_deposed_leader_cannot_write(
    etcd: EtcdCluster, target: EtcdTarget, elector: Elector
) -> None:
    store = await opened(target, leader=elector)
    record = ScenarioRecord("web01", "failing_over", runbook="rb1", runbook_kind="failover")
    saved = await store.transition(record, JournalEvent(kind="transition", scenario="web01"))
    deposed = await opened(target, leader=FrozenGuard(elector.key, elector.tenure()))
    try:
        assert elector.lease.id is not None
        etcd.etcdctl("lease", "revoke", f"{elector.lease.id:x}")  # its leader key goes with it
        with pytest.raises(NotLeader):
            await deposed.append(JournalEvent(kind="step_done", runbook="rb1", step="fence"))
        with pytest.raises(NotLeader):
            await deposed.transition(record.evolve(state="switched"), JournalEvent(kind="x"))
        assert await store.scenarios() == {"web01": record}
        assert await store.events() == [saved]
    finally:
        await deposed.close()
        await store.close()


async def test_writes_stop_before_the_lease_could_expire(
    etcd: EtcdCluster, target: EtcdTarget, elector: Elector
) -> None:
    store = await opened(target, leader=elector)
    try:
        await store.append(JournalEvent(kind="check"))
        await elector.client.close()  # keep-alives stop, as if the process hung
        stopped = time.monotonic()
        await asyncio.wait_for(elector.wait_until(False), TTL)
        assert time.monotonic() - stopped < TTL - elector.lease.margin + 0.2
        with pytest.raises(NotLeader):
            await store.append(JournalEvent(kind="step_done", step="fence"))
        # etcd expires the lease (and the leader key) only later.
        await within(TTL + 2, lambda: not etcd.etcdctl("get", elector.key.decode()).stdout)
        assert [e.kind for e in await store.events()] == ["check"]
    finally:
        await store.close()


async def test_store_and_election_keep_working_with_one_member_killed(
    etcd: EtcdCluster, target: EtcdTarget, elector: Elector
) -> None:
    changes: list[bool] = []
    elector.on_change(changes.append)
    store = await opened(target, leader=elector)
    try:
        assert store.client.current == elector.client.current == etcd.endpoints[0]
        etcd.kill(0)
        for n in range(8):  # longer than the lease TTL
            await store.append(JournalEvent(kind="check", message=str(n)))
            await asyncio.sleep(TTL / 8)
        assert elector.is_leader
        assert changes == []
        assert store.client.current != etcd.endpoints[0]
        fresh = await opened(target)  # starts with the dead member, moves on
        assert len(await fresh.events()) == 8
        await fresh.close()
        etcd.restart(0)  # blocks the loop a moment: members start from the main thread only
        only_it = await opened(EtcdTarget(target.endpoints[:1]))  # it caught up
        assert len(await only_it.events()) == 8
        await only_it.close()
    finally:
        await store.close()


async def test_the_leader_steps_down_when_etcd_loses_quorum_and_returns_after(
    etcd: EtcdCluster, target: EtcdTarget, elector: Elector
) -> None:
    guarded = await opened(target, leader=elector)
    plain = await opened(target)
    try:
        before = await guarded.append(JournalEvent(kind="check", message="before"))
        with etcd.quorum_lost():
            lost = time.monotonic()
            await asyncio.wait_for(elector.wait_until(False), TTL + 1)
            assert time.monotonic() - lost <= TTL
            with pytest.raises(NotLeader):
                await guarded.append(JournalEvent(kind="step_done", step="fence"))
            with pytest.raises(EtcdUnavailable):
                await plain.append(JournalEvent(kind="check", message="during"))
        await asyncio.wait_for(elector.wait_until(True), 3 * TTL)
        after = await guarded.append(JournalEvent(kind="check", message="after"))
        assert [e.message for e in await plain.events()] == ["before", "after"]
        assert after.id == (before.id or 0) + 1
    finally:
        await guarded.close()
        await plain.close()


async def test_a_write_sent_again_after_a_lost_reply_is_applied_once(
    target: EtcdTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await opened(target)
    real = store.client.call

    async def twice(what: str, operation: Any, **kwargs: Any) -> Any:
        await real(what, operation, **kwargs)  # applied, but the reply is lost...
        return await real(what, operation, **kwargs)  # ...so it goes to the next member

    try:
        monkeypatch.setattr(store.client, "call", twice)
        saved = await store.transition(ScenarioRecord("web01", "running"), JournalEvent(kind="t"))
        monkeypatch.undo()
        assert await store.events() == [saved]
        assert await store.last_event_id() == saved.id
    finally:
        await store.close()


async def test_filters_hold_across_pages(
    target: EtcdTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ha.store.etcd, "PAGE", 3)
    store = await opened(target)
    try:
        for n in range(11):
            await store.append(
                JournalEvent(
                    kind="check" if n % 3 else "alert", scenario=f"s{n % 2}", message=str(n)
                )
            )
        every = await store.events()
        assert [e.message for e in every] == [str(n) for n in range(11)]
        assert await store.events(limit=7) == every[:7]
        assert await store.events(scenario="s1") == every[1::2]
        assert await store.events(kinds=("alert",), limit=3) == [every[0], every[3], every[6]]
        assert await store.events(scenario="s0", after=every[4].id or 0, limit=2) == [
            every[6],
            every[8],
        ]
    finally:
        await store.close()


async def test_a_store_guarded_by_a_non_leader_refuses_before_sending(
    target: EtcdTarget,
) -> None:
    nobody = await opened(target, leader=FrozenGuard(b"/ha/leader", None))
    try:
        with pytest.raises(NotLeader, match="not the leader"):
            await nobody.append(JournalEvent(kind="check"))
        assert await nobody.last_event_id() == 0
    finally:
        await nobody.close()


def test_store_error_is_the_base_of_the_etcd_errors() -> None:
    assert issubclass(NotLeader, StoreError)
    assert issubclass(EtcdUnavailable, StoreError)


def revision(etcd: EtcdCluster) -> int:
    """The cluster's revision: one more for each transaction that wrote."""
    found = json.loads(etcd.etcdctl("get", "revision-probe", "-w", "json").stdout)
    return int(found["header"]["revision"])


async def test_noted_events_are_written_many_to_a_transaction(
    etcd: EtcdCluster, target: EtcdTarget
) -> None:
    store = await opened(target)
    try:
        before = revision(etcd)
        for n in range(120):
            store.note(JournalEvent(kind="check", scenario=f"s{n}", runbook=f"rb{n % 3}"))
        saved = await store.append(JournalEvent(kind="command", scenario="s0"))
        writes = revision(etcd) - before

        assert saved.id == 121
        assert writes == 4, writes  # 50 + 50 + 20 noted, then the append
        events = await store.events(limit=1000)
        assert [e.id for e in events] == list(range(1, 122))
        assert [e.scenario for e in events[:120]] == [f"s{n}" for n in range(120)]
        assert [e.id for e in await store.events(runbook="rb1")] == list(range(2, 121, 3))
    finally:
        await store.close()
