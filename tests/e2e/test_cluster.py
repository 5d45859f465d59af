"""Three orchestrators on a real 3-member etcd cluster: one leads and acts, all observe.

Kill the leader (idle, or between two steps of a runbook): another takes over and the runbook
completes exactly once. An observer that cannot reach production is outvoted and named. etcd
keeps working with one member down; without a quorum the leader steps down and writes nothing.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.cluster_site import Orchestrators
from tests.e2e.site import NAME, Site
from tests.e2e.test_failover import FAILOVER_STEPS
from tests.servers.ports import free_port

if TYPE_CHECKING:
    from tests.servers.etcd import EtcdCluster

pytest_plugins = ["tests.servers.etcd"]  # imported by pytest (not above) so asserts are rewritten

WITHIN = 60  # a takeover needs the lease TTL (3 s) plus a check interval; generous under load


@pytest.fixture
def trio(site: Site, etcd: EtcdCluster) -> Iterator[Orchestrators]:
    trio = Orchestrators(site, etcd)
    try:
        yield trio
    finally:
        trio.stop()


def test_a_follower_takes_over_from_a_killed_idle_leader_and_acts(
    site: Site, trio: Orchestrators
) -> None:
    site.write_config()

    def budgeted(_: str, config: dict[str, Any]) -> None:
        config["safety"] = {"budget": {"failovers": 3, "window": "10m"}}

    trio.write_configs(change=budgeted)
    trio.start()
    first = trio.wait_leader()
    trio.kill(first)

    second = trio.wait_leader(WITHIN, other_than=first)
    trio.production(signal.SIGKILL)
    trio.wait_until(lambda: trio.state() == ("switched", "replica"), WITHIN, "failed over")

    assert trio.transitions() == ["running -> failing_over", "failing_over -> switched"]
    assert trio.steps() == FAILOVER_STEPS
    assert trio.tenures() == [first, second]
    assert site.active.read_text().strip() == "127.0.0.3"
    follower = next(r for n, r in trio.runners.items() if n not in (first, second))
    trio.wait_until(
        lambda: follower.api("GET", "/v1/scenarios/web")[1]["state"] == "switched",
        WITHIN,
        "the follower shows the leader's state",
    )
    budget = "1 of 3 automatic failovers in 600s; armed"  # as the leader keeps it
    assert follower.api("GET", "/v1/status")[1]["budget"] == budget
    assert trio.runners[second].api("GET", "/v1/status")[1]["budget"] == budget
    status, answer = follower.api("POST", "/v1/scenarios/web/failback", {})
    reason = f"{follower.dir.name} is not the leader; ask {second}"
    assert (status, answer) == (503, {"error": reason})

    shown = trio.runners[second].ha("cluster", "status")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"leader: {second}"
    assert lines[1].startswith(f"this instance: {second}, leader, lease ")
    assert lines[2] == f"instances: {', '.join(sorted([second, follower.dir.name]))}"
    assert lines[3].startswith("etcd members: m0 (http://127.0.0.1:")


def test_a_runbook_between_steps_completes_once_after_the_leader_is_killed(
    site: Site, trio: Orchestrators
) -> None:
    site.write_config(delay=0.6)
    trio.write_configs()
    trio.start()
    first = trio.wait_leader()
    trio.production(signal.SIGSTOP)  # hung production
    trio.wait_until(lambda: "fence_production" in trio.steps(), WITHIN, "production fenced")
    trio.kill(first)
    done_before = trio.steps()

    second = trio.wait_leader(WITHIN, other_than=first)
    trio.wait_until(lambda: trio.state() == ("switched", "replica"), WITHIN, "failed over")

    assert trio.steps() == FAILOVER_STEPS  # each step done once, in order, none skipped
    for step in done_before:
        assert trio.steps("step_started").count(step) == 1, f"{step} ran again"
    assert trio.transitions() == ["running -> failing_over", "failing_over -> switched"]
    resumed = [e for e in trio.journal() if e["kind"] == "runbook_resumed"]
    assert {e["message"] for e in resumed} == {"resuming failover after a takeover"}
    assert trio.tenures() == [first, second]
    assert site.active.read_text().strip() == "127.0.0.3"
    assert site.pid("production") is None


def test_a_follower_shows_the_leaders_group_command_in_progress_then_its_report(
    site: Site, trio: Orchestrators
) -> None:
    """Only the leader runs group commands; a follower asked for its status reads them from
    the journal: the command while it runs, then its report."""
    site.write_config(delay=0.6)  # the failover takes seconds: long enough to be seen

    def grouped(_: str, config: dict[str, Any]) -> None:
        config["groups"] = [{"name": "farm", "scenarios": [NAME]}]

    trio.write_configs(change=grouped)
    trio.start()
    leader = trio.wait_leader()
    follower = next(r for n, r in trio.runners.items() if n != leader)
    status, answer = trio.runners[leader].api("POST", "/v1/groups/farm/failover", {})
    assert status == 202, answer

    def farm() -> dict[str, Any]:
        status, answer = follower.api("GET", "/v1/status")
        assert status == 200, answer
        return dict(answer["groups"][0])

    trio.wait_until(
        lambda: (farm()["operation"], farm()["state"]) == ("failover", "failover in progress"),
        WITHIN,
        "the follower shows the group failover in progress",
    )
    status, answer = follower.api("POST", "/v1/groups/farm/cancel", {"dry_run": True})
    assert (status, answer) == (
        503,
        {"error": f"{follower.dir.name} is not the leader; ask {leader}"},
    )
    status, answer = trio.runners[leader].api("POST", "/v1/groups/farm/cancel", {})
    assert status == 202, answer  # the only member is in flight: it finishes
    trio.wait_until(
        lambda: str(farm()["cancelled_by"]).startswith("api:local:"),
        WITHIN,
        "the follower shows who cancelled it",
    )
    trio.wait_until(
        lambda: farm()["last_report"] is not None, WITHIN, "the follower shows the report"
    )
    shown = farm()
    assert shown["operation"] is None
    assert shown["cancelled_by"] is None
    assert shown["last_report"]["ok"] is True  # nothing was left to start: done
    expected = f"group farm: failover done: {NAME}: switched, replica active"
    assert shown["last_report"]["message"] == expected
    printed = follower.ha("status")
    assert printed.returncode == 0, printed.stderr
    assert f"group farm: switched ({NAME} switched)" in printed.stdout


def test_an_observer_that_cannot_reach_production_is_outvoted_and_named(
    site: Site, trio: Orchestrators
) -> None:
    site.write_config()

    def cut_off(name: str, config: dict[str, Any]) -> None:
        if name == "c":  # nothing listens there: c sees production (and replica) dead
            config["scenarios"][0]["checks"][0]["port"] = free_port()

    trio.write_configs(change=cut_off)
    trio.start()
    trio.wait_leader()

    def disagreement() -> list[dict[str, Any]]:
        return [e for e in trio.journal() if e["kind"] == "observers_disagree"]

    trio.wait_until(lambda: bool(disagreement()), WITHIN, "the leader names the disagreeing c")
    event = disagreement()[0]
    assert event["data"]["observers"] == ["c"]
    assert event["data"]["verdict"] == "alive"
    assert event["message"].endswith("2 needed; c disagrees")
    status, views = trio.runners["a"].api("GET", "/v1/cluster")
    assert status == 200
    assert {n: v["dead"] for n, v in views["views"]["web"].items()} == {
        "a": False,
        "b": False,
        "c": True,
    }

    def views_of_c_since(ts: float) -> bool:  # the leader had cycles to act on them
        status, answer = trio.runners["a"].api("GET", "/v1/cluster")
        return status == 200 and answer["views"]["web"]["c"]["at"] > ts

    trio.wait_until(lambda: views_of_c_since(event["ts"] + 3), WITHIN, "c's views are 3 s newer")
    assert trio.state() == ("running", "production")
    assert [e for e in trio.journal() if e["kind"] in ("proposal", "transition")] == []


def test_a_leader_that_reaches_production_neither_fails_over_nor_back_against_the_quorum(
    site: Site, trio: Orchestrators
) -> None:
    site.write_config()

    def two_cut_off(name: str, config: dict[str, Any]) -> None:
        config["scenarios"][0]["failback"] = {"mode": "automatic", "stable_for": "1s"}
        if name != "a":
            config["scenarios"][0]["checks"][0]["port"] = free_port()

    trio.write_configs(change=two_cut_off)
    trio.runners["a"].start_daemon()
    assert trio.wait_leader() == "a"
    trio.runners["b"].start_daemon()
    trio.runners["c"].start_daemon()

    def disagreements(verdict: str) -> list[dict[str, Any]]:
        return [
            e
            for e in trio.journal()
            if e["kind"] == "observers_disagree" and e["data"]["verdict"] == verdict
        ]

    trio.wait_until(lambda: bool(disagreements("dead")), WITHIN, "the quorum sees it dead")
    assert disagreements("dead")[0]["message"].endswith("2 needed; a disagrees")
    assert trio.state() == ("running", "production")  # a still reaches it: no failover

    trio.production(signal.SIGKILL)
    trio.wait_until(lambda: trio.state() == ("switched", "replica"), WITHIN, "failed over")
    site.power("on", "production")
    repaired = time.time()

    def healthy_for_a_while() -> bool:  # well past stable_for, in a's own view
        status, answer = trio.runners["a"].api("GET", "/v1/cluster")
        view = answer["views"]["web"]["a"] if status == 200 else {"dead": True, "at": 0}
        return not view["dead"] and not view["failing"] and view["at"] > repaired + 3

    trio.wait_until(healthy_for_a_while, WITHIN, "a sees production healthy for 3 s")
    assert trio.state() == ("switched", "replica")  # the quorum still sees production dead
    assert trio.transitions() == ["running -> failing_over", "failing_over -> switched"]


def test_with_one_etcd_member_killed_the_cluster_still_fails_over(
    site: Site, trio: Orchestrators, etcd: EtcdCluster
) -> None:
    site.write_config()
    trio.write_configs()
    trio.start()
    trio.wait_leader()
    etcd.kill(0)  # the member every orchestrator talks to first

    trio.production(signal.SIGKILL)
    trio.wait_until(lambda: trio.state() == ("switched", "replica"), WITHIN, "failed over")
    assert trio.transitions() == ["running -> failing_over", "failing_over -> switched"]
    assert trio.steps() == FAILOVER_STEPS


def test_without_an_etcd_quorum_the_leader_steps_down_and_writes_no_step(
    site: Site, trio: Orchestrators, etcd: EtcdCluster
) -> None:
    site.write_config(delay=0.6)
    trio.write_configs()
    trio.start()
    trio.wait_leader()
    trio.production(signal.SIGSTOP)
    trio.wait_until(lambda: "fence_production" in trio.steps(), WITHIN, "production fenced")

    with etcd.quorum_lost():

        def nobody_leads() -> bool:
            answers = [r.api("GET", "/v1/cluster") for r in trio.alive()]
            return all(status == 200 and not a["self"]["is_leader"] for status, a in answers)

        trio.wait_until(nobody_leads, WITHIN, "every orchestrator knows it does not lead")
        stepped_down = time.time()

    trio.wait_until(lambda: trio.state() == ("switched", "replica"), WITHIN, "failed over")
    since = [e for e in trio.journal() if e["ts"] >= stepped_down]
    kinds = [e["kind"] for e in since if e["kind"].startswith(("step_", "leader"))]
    assert kinds[0] == "leader", f"a step was written before a leader took charge again: {kinds}"
    assert trio.steps() == FAILOVER_STEPS
    assert trio.transitions() == ["running -> failing_over", "failing_over -> switched"]


def test_one_orchestrator_on_sqlite_has_no_cluster_to_show(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    status, answer = site.api("GET", "/v1/cluster")
    reason = "not a cluster: the state is a SQLite file (state: etcd://... is one)"
    assert (status, answer) == (404, {"error": reason})
    shown = site.ha("cluster", "status")
    assert shown.returncode != 0
    assert reason in shown.stderr
    doc = site.api("GET", "/v1/openapi.json")[1]
    operation = doc["paths"]["/v1/cluster"]["get"]
    assert (operation["x-role"], sorted(operation["responses"])) == ("viewer", ["200", "404"])
