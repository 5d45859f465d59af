"""Leader election and observer quorum: the pure decision first, then electors and views against a
real 3-member etcd cluster on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from ha.cluster import Cluster
from ha.config import ClusterConfig
from ha.coordination import Elector
from ha.coordination_quorum import Verdict, View, decide
from ha.coordination_views import ObserverBoard, cluster_status
from ha.store.etcd_client import EtcdUnavailable
from ha.store.etcd_target import EtcdTarget

if TYPE_CHECKING:
    from tests.servers.etcd import EtcdCluster

pytest_plugins = ["tests.servers.etcd"]  # imported by pytest (not above) so asserts are rewritten

TTL = 2
NOW = 1_700_000_000.0

# The quorum decision (no etcd).


def view(observer: str, dead: bool, *, age: float = 0.0, scenario: str = "web01") -> View:
    return View(observer, scenario, dead, ("tcp:443",) if dead else (), NOW - age)


def test_a_majority_of_observers_seeing_production_dead_makes_it_dead() -> None:
    views = [view("a", True), view("b", True), view("c", False)]
    assert decide("web01", views, now=NOW, max_age=5) == Verdict(
        "web01", dead=True, needed=2, dead_by=("a", "b"), alive_by=("c",), stale=()
    )


def test_an_isolated_observer_cannot_win_and_is_named() -> None:
    views = [view("a", False), view("b", False), view("isolated", True)]
    verdict = decide("web01", views, now=NOW, max_age=5)
    assert not verdict.dead
    assert verdict.disagree == ("isolated",)
    assert verdict.describe() == (
        "production of web01 is alive by quorum: 1 of 3 observers see it dead, 2 needed;"
        " isolated disagrees"
    )


def test_stale_views_do_not_count_and_the_majority_is_of_fresh_ones() -> None:
    views = [view("a", True), view("b", False, age=10), view("c", False, age=10)]
    verdict = decide("web01", views, now=NOW, max_age=5)
    assert (verdict.dead, verdict.needed, verdict.stale) == (True, 1, ("b", "c"))
    assert verdict.describe().endswith("not counted (stale): b, c")


def test_an_explicit_quorum_overrides_the_majority() -> None:
    views = [view("a", True), view("b", False), view("c", False)]
    assert decide("web01", views, now=NOW, max_age=5, quorum=1).dead
    assert decide("web01", views, now=NOW, max_age=5, quorum=1).disagree == ("b", "c")
    assert not decide("web01", views[:1], now=NOW, max_age=5, quorum=2).dead


def test_only_each_observers_latest_view_of_that_scenario_counts() -> None:
    views = [
        view("a", True, age=3),
        view("a", False, age=1),
        view("b", True, scenario="db01"),
    ]
    verdict = decide("web01", views, now=NOW, max_age=5)
    assert (verdict.dead, verdict.alive_by, verdict.dead_by) == (False, ("a",), ())


def test_nobody_watching_means_not_dead() -> None:
    assert decide("web01", [], now=NOW, max_age=5) == Verdict("web01", False, 1, (), (), ())


def test_a_view_round_trips_through_json() -> None:
    sent = view("a", True)
    assert View.from_json(sent.to_json()) == sent


# Election and views on etcd.


@pytest.fixture
def target(etcd: EtcdCluster) -> EtcdTarget:
    return EtcdTarget.parse(etcd.url)


@asynccontextmanager
async def electors(target: EtcdTarget, *names: str) -> AsyncIterator[list[Elector]]:
    started = [Elector(target, name, ttl=TTL, timeout=1.0) for name in names]
    try:
        for elector in started:
            await elector.start()
        yield started
    finally:
        for elector in started:
            await elector.close()


async def one_leader(candidates: list[Elector], within: float) -> Elector:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        leaders = [e for e in candidates if e.is_leader]
        assert len(leaders) <= 1, f"two leaders: {[e.name for e in leaders]}"
        if leaders:
            return leaders[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no leader within {within} s")


def recorder(elector: Elector) -> list[tuple[float, bool]]:
    changes: list[tuple[float, bool]] = []
    elector.on_change(lambda leading: changes.append((time.monotonic(), leading)))
    return changes


async def test_of_two_electors_one_leads_and_the_other_knows_who(target: EtcdTarget) -> None:
    async with electors(target, "alpha", "beta") as both:
        leader = await one_leader(both, 5)
        follower = next(e for e in both if e is not leader)
        await asyncio.sleep(TTL)  # several keep-alives later, nothing changed
        assert leader.is_leader
        assert not follower.is_leader
        assert follower.status().leader == leader.name
        assert await follower.current_leader() == leader.name
        assert leader.status().to_json()["is_leader"] is True
        assert sorted(await leader.members()) == ["alpha", "beta"]


async def test_when_the_leader_hangs_it_stops_leading_before_another_takes_over(
    target: EtcdTarget,
) -> None:
    async with electors(target, "alpha", "beta") as both:
        old = await one_leader(both, 5)
        new = next(e for e in both if e is not old)
        lost, gained = recorder(old), recorder(new)
        await old.client.close()  # no more keep-alives: a hung or cut-off process
        hung = time.monotonic()
        await asyncio.wait_for(new.wait_until(True), TTL + 3)
        took = time.monotonic() - hung
        assert lost == [(lost[0][0], False)]
        assert gained == [(gained[0][0], True)]
        assert lost[0][0] < gained[0][0], "the old leader stepped down before the new one led"
        assert lost[0][0] - hung <= TTL - old.lease.margin + 0.3
        assert took <= TTL + 1.5
        assert not old.is_leader


async def test_a_leader_that_resigns_is_replaced_at_once(target: EtcdTarget) -> None:
    async with electors(target, "alpha", "beta") as both:
        old = await one_leader(both, 5)
        new = next(e for e in both if e is not old)
        await old.close()
        resigned = time.monotonic()
        await asyncio.wait_for(new.wait_until(True), TTL)
        assert time.monotonic() - resigned < 1.0


async def test_a_revoked_lease_ends_leadership_and_the_elector_campaigns_again(
    etcd: EtcdCluster, target: EtcdTarget
) -> None:
    async with electors(target, "alpha") as (alone,):
        await asyncio.wait_for(alone.wait_until(True), 5)
        changes = recorder(alone)
        first, tenure = alone.lease.id, alone.tenure()
        assert first is not None
        etcd.etcdctl("lease", "revoke", f"{first:x}")
        await asyncio.wait_for(alone.wait_until(False), 1.0)
        await asyncio.wait_for(alone.wait_until(True), 2 * TTL)
        assert [leading for _, leading in changes] == [False, True]
        assert alone.lease.id != first
        assert (alone.tenure() or 0) > (tenure or 0)


async def test_the_quorum_comes_from_every_instances_published_view(target: EtcdTarget) -> None:
    async with electors(target, "a", "b", "isolated") as group:
        await one_leader(group, 5)
        for elector in group:
            await asyncio.wait_for(elector.lease.wait_alive(), 5)
            dead = elector.name == "isolated"
            await ObserverBoard(elector).publish([View(elector.name, "web01", dead)])
        board = ObserverBoard(group[0])
        verdicts = await board.verdicts(["web01", "db01"], max_age=5)
        assert not verdicts["web01"].dead
        assert verdicts["web01"].disagree == ("isolated",)
        assert verdicts["db01"] == Verdict("db01", False, 1, (), (), ())

        deadline = time.monotonic() + 5
        while len(await group[0].members()) < 3:  # each announces itself when it first campaigns
            assert time.monotonic() < deadline, "not every instance announced itself"
            await asyncio.sleep(0.02)
        status = await cluster_status(board)
        assert status["leader"] in ("a", "b", "isolated")
        assert status["instances"] == ["a", "b", "isolated"]
        assert len(status["etcd"]) == 3
        assert sorted(status["views"]["web01"]) == ["a", "b", "isolated"]

        await group[2].close()  # its lease is revoked: its views vanish with it
        assert [v.observer for v in await board.read()] == ["a", "b"]


async def test_views_need_a_live_lease_and_belong_to_their_observer(target: EtcdTarget) -> None:
    async with electors(target, "a") as (alone,):
        board = ObserverBoard(alone)
        await asyncio.wait_for(alone.wait_until(True), 5)
        with pytest.raises(ValueError, match="cannot publish the view of b"):
            await board.publish([View("b", "web01", False)])
        await alone.client.close()
        await asyncio.wait_for(alone.wait_until(False), TTL)
        with pytest.raises(EtcdUnavailable, match="no live lease"):
            await board.publish([View("a", "web01", False)])


def test_a_lease_ttl_below_two_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="need TTL >= 2"):
        Elector(EtcdTarget((("127.0.0.1", 2379),)), "a", ttl=1)


def test_the_leader_journals_who_disagrees_once_per_change() -> None:
    cluster = Cluster(EtcdTarget.parse("etcd://127.0.0.1:1"), ClusterConfig(name="a"), print)
    views = [view("a", False), view("b", False), view("c", True)]
    one_off = decide("web01", views, now=NOW, max_age=5)
    event = cluster.disagreement(one_off)
    assert event is not None
    assert (event.kind, event.scenario, event.message) == (
        "observers_disagree",
        "web01",
        "production of web01 is alive by quorum: 1 of 3 observers see it dead, 2 needed;"
        " c disagrees",
    )
    assert (event.data["observers"], event.data["verdict"]) == (["c"], "alive")
    assert cluster.disagreement(one_off) is None  # the same disagreement: journaled once
    agreed = decide("web01", [view("a", False), view("c", False)], now=NOW, max_age=5)
    assert cluster.disagreement(agreed) is None  # all agree: nothing to say
    assert cluster.disagreement(one_off) is not None  # c disagrees again
