"""Metrics: scraped from a real daemon through a failover and parsed with prometheus_client's own
parser; Assured Recovery's age from the journal."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ha.metrics import Metrics
from ha.store import JournalEvent
from ha.store.sqlite import SqliteStore
from tests.e2e.api_site import ApiFleet

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_a_failover_seen_in_the_metrics(tmp_path: Path) -> None:
    fleet = ApiFleet(tmp_path, 1)
    try:
        fleet.write_config()
        fleet.start_daemon()
        fleet.wait_until(
            lambda: all(
                fleet.call("GET", "/v1/scenarios/s1").json()[side]["checks"][0]["ok"]
                for side in ("production", "replica")
            ),
            5,
            "both sides probed and passing",
        )
        fleet.kill("s1")
        fleet.wait_state("switched", name="s1")
        time.sleep(0.5)  # the feed reads the journal every 150 ms
        answer = fleet.call("GET", "/metrics", token="viewer")
    finally:
        fleet.stop()
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    samples = parse(answer.body.decode())
    assert value(samples, "ha_scenario_state", scenario="s1", state="switched") == 1
    assert value(samples, "ha_scenario_state", scenario="s1", state="running") == 0
    assert value(samples, "ha_scenario_active", scenario="s1", side="replica") == 1
    assert value(samples, "ha_scenario_paused", scenario="s1") == 0
    finished = {"scenario": "s1", "kind": "failover", "outcome": "finished"}
    assert value(samples, "ha_runbooks_total", **finished) == 1
    for step in ("confirm_failure", "redirect", "verify"):
        labels = {"scenario": "s1", "step": step, "outcome": "done"}
        assert value(samples, "ha_runbook_step_duration_seconds_count", **labels) == 1, step
    check = {"scenario": "s1", "side": "production", "check": "script"}
    failures = value(samples, "ha_check_failures_total", **check) or 0
    assert failures >= 2  # the failover needed two failed probes in a row
    probes = value(samples, "ha_check_latency_seconds_count", **check) or 0
    assert probes > failures  # every result, the passing ones before the kill too
    assert value(samples, "ha_check_up", **check) == 0
    replica = {**check, "side": "replica"}
    assert value(samples, "ha_check_up", **replica) == 1
    latency = value(samples, "ha_check_last_latency_seconds", **replica)
    assert latency is not None
    assert 0 < latency < 1


async def test_assured_recovery_age_from_the_journal_and_the_feed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    try:
        now = time.time()
        await store.append(JournalEvent(kind="ar_passed", scenario="s1", ts=now - 3600))
        metrics = Metrics({})
        await metrics.restore(store)
    finally:
        await store.close()
    metrics.on_event(JournalEvent(kind="ar_passed", scenario="s2", ts=now - 60))
    metrics.on_event(JournalEvent(kind="ar_failed", scenario="s2", ts=now))
    samples = parse(metrics.exposition().decode())
    age = "ha_assured_recovery_last_success_age_seconds"
    assert 3600 <= (value(samples, age, scenario="s1") or 0) < 3660
    assert 60 <= (value(samples, age, scenario="s2") or 0) < 120
