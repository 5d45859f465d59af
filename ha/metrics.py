"""Prometheus metrics at ``/metrics`` (any valid token, viewer or operator).

Three sources. Every check result, from the daemon: its latency and whether it failed, tallied
per check. The journal feed counts what happens: runbook outcomes, step durations and Assured
Recovery passes. A scrape reads the present: each scenario's state, pause and active side, and the
latest result of every check (its latency and whether it passed), straight from the daemon's
detectors.

Check results come thousands of times per second, so their tallies are not prometheus_client
children (a labelled histogram child holds a lock and a value object per bucket: 30 objects per
check for the garbage collector to walk, ~5 us per result) but one unboxed array per check, turned
into the histogram and counter families at scrape time.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from checks import CheckResult
from ha.machine import RUNBOOK_STATES, STATES
from ha.scenario import SIDES, Scenario
from ha.store import JournalEvent, Store

OUTCOMES = {"finish": "finished", "block": "blocked", "cancel": "cancelled"}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A check's tally: results per latency bucket (the last one above every bound), then the sum of
# latencies, then the failed results.
_SUM = len(LATENCY_BUCKETS) + 1
_FAILED = _SUM + 1
STEP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    def __init__(self, scenarios: Mapping[str, Scenario]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.checks: dict[tuple[str, str, str], array[float]] = {}  # check -> its tally
        self.runbooks = Counter(
            "ha_runbooks",
            "Runbooks ended, by kind (failover, switchover, failback, recover) and outcome",
            ["scenario", "kind", "outcome"],
            registry=self.registry,
        )
        self.step_duration = Histogram(
            "ha_runbook_step_duration_seconds",
            "Duration of runbook steps, retries included",
            ["scenario", "step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.ar_passed: dict[str, float] = {}  # scenario -> time of its last passed AR test
        self.registry.register(_Present(scenarios, self.ar_passed))
        self.registry.register(_CheckTallies(self.checks))

    async def restore(self, store: Store) -> None:
        """What the journal says from before the feed started: the last AR pass per scenario."""
        for event in await store.events(kinds=("ar_passed",), limit=10**9):
            self.ar_passed[event.scenario or ""] = event.ts

    def observe_result(self, scenario: str, side: str, label: str, result: CheckResult) -> None:
        """Every check result, from the daemon (not only the changes the journal keeps)."""
        tally = self.checks.get((scenario, side, label))
        if tally is None:
            tally = self.checks[scenario, side, label] = array("d", bytes(8 * (_FAILED + 1)))
        tally[bisect_left(LATENCY_BUCKETS, result.latency)] += 1
        tally[_SUM] += result.latency
        if not result.ok:
            tally[_FAILED] += 1

    def on_event(self, event: JournalEvent) -> None:
        scenario = event.scenario or ""
        data = event.data
        if event.kind == "transition" and data.get("trigger") in OUTCOMES:
            kind = RUNBOOK_STATES.get(data.get("from", ""))
            if kind is not None:
                self.runbooks.labels(scenario, kind, OUTCOMES[data["trigger"]]).inc()
        elif event.kind in ("step_done", "step_failed") and "seconds" in data:
            outcome = "done" if event.kind == "step_done" else "failed"
            self.step_duration.labels(scenario, event.step or "", outcome).observe(data["seconds"])
        elif event.kind == "ar_passed":
            self.ar_passed[scenario] = event.ts

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _CheckTallies(Collector):
    """The check results' histogram and failure counter, from the tallies."""

    def __init__(self, checks: dict[tuple[str, str, str], array[float]]) -> None:
        self.checks = checks

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        labels = ["scenario", "side", "check"]
        latency = HistogramMetricFamily(
            "ha_check_latency_seconds", "Latency of every check result", labels=labels
        )
        failures = CounterMetricFamily("ha_check_failures", "Failed check results", labels=labels)
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
        for key, tally in sorted(self.checks.items()):
            counts, running = [], 0.0
            for bound, count in zip(bounds, tally[:_SUM], strict=True):
                running += count
                counts.append((bound, running))
            latency.add_metric(list(key), counts, tally[_SUM])
            failures.add_metric(list(key), tally[_FAILED])
        yield from (latency, failures)


class _Present(Collector):
    """Gauges read from the daemon at scrape time."""

    def __init__(self, scenarios: Mapping[str, Scenario], ar_passed: dict[str, float]) -> None:
        self.scenarios = scenarios
        self.ar_passed = ar_passed

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check for duplicates

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        state = GaugeMetricFamily(
            "ha_scenario_state", "1 for the state the scenario is in", labels=["scenario", "state"]
        )
        active = GaugeMetricFamily(
            "ha_scenario_active", "1 for the side serving users", labels=["scenario", "side"]
        )
        paused = GaugeMetricFamily("ha_scenario_paused", "1 when paused", labels=["scenario"])
        up = GaugeMetricFamily(
            "ha_check_up",
            "1 when the check's latest result passed",
            labels=["scenario", "side", "check"],
        )
        latency = GaugeMetricFamily(
            "ha_check_last_latency_seconds",
            "Latency of the check's latest result",
            labels=["scenario", "side", "check"],
        )
        for scenario in self.scenarios.values():
            name = scenario.name
            for each in STATES:
                state.add_metric([name, each], float(scenario.state == each))
            for side in SIDES:
                active.add_metric([name, side], float(scenario.record.active == side))
                for label, check in scenario.detectors[side].checks.items():
                    if check.last is not None:
                        up.add_metric([name, side, label], float(check.last.ok))
                        latency.add_metric([name, side, label], check.last.latency)
            paused.add_metric([name], float(scenario.record.paused))
        age = GaugeMetricFamily(
            "ha_assured_recovery_last_success_age_seconds",
            "Seconds since the scenario's last passed Assured Recovery test",
            labels=["scenario"],
        )
        for name, ts in sorted(self.ar_passed.items()):
            age.add_metric([name], now - ts)
        yield from (state, active, paused, up, latency, age)


METRICS = web.AppKey("metrics", Metrics)


async def metrics_page(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
