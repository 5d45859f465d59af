"""The monitor's schedule, with the real http check against a real aiohttp server on loopback: how
often a calm, a failing and a hung server are probed, and which results reach the detector."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

from checks import Check, CheckConfig, CheckResult
from checks.http import HttpCheck
from ha.monitor import Monitor
from ha.store import Side
from tests.servers.web import Reply, WebServer, serve_web


@pytest.fixture
async def web() -> AsyncIterator[WebServer]:
    async with serve_web() as server:
        yield server


Results = list[CheckResult]


def collecting() -> tuple[Monitor, Results]:
    """A monitor and the list its handed-on results go to."""
    results: Results = []

    async def on_result(scenario: str, side: Side, label: str, result: CheckResult) -> None:
        results.append(result)

    return Monitor(on_result), results


@pytest.fixture
async def watch() -> AsyncIterator[Callable[..., Results]]:
    """Watches one http check of a server; returns the list its handed-on results go to."""
    monitor, results = collecting()
    checks: list[HttpCheck] = []

    def start(server: WebServer, **settings: Any) -> Results:
        config = HttpCheck.Config.model_validate({"kind": "http", "port": server.port, **settings})
        check = HttpCheck(config, server.host)
        checks.append(check)
        monitor.watch("s1", [("production", "http", check)])
        return results

    yield start
    monitor.close()
    for check in checks:
        await check.close()


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    assert condition(), what


async def test_a_calm_check_is_probed_at_its_interval_even_with_follow_up(
    web: WebServer, watch: Callable[..., Results]
) -> None:
    results = watch(web, interval="200ms", timeout="1s", follow_up="20ms")
    await asyncio.sleep(1.0)

    assert 3 <= len(web.hosts) <= 7  # every 200 ms, not every 20 ms
    assert results
    assert all(r.ok for r in results)


async def test_a_hung_server_gets_overlapping_follow_ups(
    web: WebServer, watch: Callable[..., Results]
) -> None:
    results = watch(web, interval="1s", timeout="400ms", follow_up="50ms")
    await wait_for(lambda: len(results) == 1, 3, "the first probe answered")
    web.reply = Reply(delay=5.0)  # hung: accepts and never answers within the timeout
    await wait_for(lambda: len(web.hosts) >= 2, 3, "the next regular probe started")
    await asyncio.sleep(0.3)

    # Without follow-ups the next probe would wait for this one's timeout and the interval;
    # with them one starts every 50 ms while none answers.
    assert len(web.hosts) >= 5
    await wait_for(lambda: len(results) >= 4, 1, "the hung probes timed out one after another")
    assert [r.ok for r in results[1:4]] == [False, False, False]
    assert all(r.detail == "timed out after 0.4s" for r in results[1:4])


async def test_a_server_that_stays_hung_gets_one_burst_then_the_interval(
    web: WebServer, watch: Callable[..., Results]
) -> None:
    results = watch(web, interval="250ms", timeout="3s", follow_up="25ms")
    await wait_for(lambda: len(results) == 1, 3, "the first probe answered")
    web.reply = Reply(delay=10.0)
    await wait_for(lambda: len(web.hosts) >= 2, 3, "the next regular probe started")
    seen = len(web.hosts)
    await asyncio.sleep(1.5)

    # A burst of follow-ups for one interval (~10), then one probe per interval (~5 more);
    # not one every 25 ms for as long as the server stays hung (60).
    assert 8 <= len(web.hosts) - seen <= 22


async def test_without_follow_up_one_probe_at_a_time(
    web: WebServer, watch: Callable[..., Results]
) -> None:
    results = watch(web, interval="100ms", timeout="400ms")
    await wait_for(lambda: len(results) == 1, 3, "the first probe answered")
    web.reply = Reply(delay=5.0)
    seen = len(web.hosts)
    await asyncio.sleep(0.35)

    assert len(web.hosts) - seen <= 1  # the hung probe is awaited before the next one


async def test_a_failure_overtaken_by_a_newer_success_is_dropped(
    web: WebServer, watch: Callable[..., Results]
) -> None:
    web.reply = Reply(delay=5.0)  # the first probe hangs until its timeout ...
    results = watch(web, interval="1s", timeout="300ms", follow_up="50ms")
    await wait_for(lambda: len(web.hosts) == 1, 3, "the first probe started")
    web.reply = Reply()  # ... and the follow-up started 50 ms later answers at once
    await wait_for(lambda: len(results) >= 1, 1, "the follow-up answered")
    await asyncio.sleep(0.4)  # past the first probe's timeout

    assert results
    assert all(r.ok for r in results)  # its late failure never counted


class Stuck(Check):
    """A check whose probe never ends by itself (no timer of its own either): only a cancel
    ends it. It counts the probes started and cancelled."""

    kind: ClassVar[str] = "stuck"
    Config: ClassVar[type[CheckConfig]] = CheckConfig
    started = 0
    cancelled = 0

    async def attempt(self) -> str:
        self.started += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled += 1
        return "never"


async def test_the_monitor_cancels_a_probe_at_its_timeout_and_reports_it() -> None:
    monitor, results = collecting()
    check = Stuck(CheckConfig(kind="stuck", interval=0.2, timeout=0.15), "127.0.0.2")
    monitor.watch("s1", [("production", "stuck", check)])
    try:
        await wait_for(lambda: len(results) >= 3, 3, "three probes timed out")
    finally:
        monitor.close()

    assert {(r.ok, r.detail) for r in results} == {(False, "timed out after 0.15s")}
    assert all(0.15 <= r.latency < 0.25 for r in results), [r.latency for r in results]
    assert check.cancelled >= 3


class HandClock:
    """The running loop with its clock and timers driven by hand: ``time()`` says what the test
    set, ``call_at`` only records. Not a mock of a server: uvloop's millisecond clock reads
    such times now and then (a deadline exactly on a slot boundary: 0.2-1.6% of probes,
    depending on the time since boot), and the test needs one every time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        self.loop = loop
        self.now = now
        self.timers: list[tuple[float, Callable[..., None], tuple[Any, ...]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> None:
        self.timers.append((when, callback, args))

    def create_task(self, coro: Any) -> asyncio.Task[None]:
        return self.loop.create_task(coro)

    def fire_next(self, now: float) -> None:
        """Run the earliest timer, with the clock reading ``now``."""
        self.timers.sort(key=lambda timer: timer[0])
        _, callback, args = self.timers.pop(0)
        self.now = now
        callback(*args)


async def test_a_timeout_ending_on_a_slot_boundary_still_cancels_the_probe() -> None:
    monitor, results = collecting()
    clock = HandClock(asyncio.get_running_loop(), 40000.0)
    monitor._loop = clock  # type: ignore[assignment]
    check = Stuck(CheckConfig(kind="stuck", interval=10, timeout=0.15), "127.0.0.2")
    monitor.watch("s1", [("production", "stuck", check)])
    try:
        # 40000.122 + 0.15 is 40000.272000000004, and its slot's time 136000136 * 0.002 is
        # 40000.272: a deadline compared as a time would never come.
        clock.fire_next(40000.122)  # the probe starts
        await wait_for(lambda: check.started, 1, "the probe is under way")
        clock.fire_next(40000.272)  # the slot of its timeout
        await wait_for(lambda: bool(results), 1, "the probe timed out")
    finally:
        monitor.close()

    assert [(r.ok, r.detail) for r in results] == [(False, "timed out after 0.15s")]
    assert check.cancelled == 1


async def test_unwatching_cancels_the_probe_in_flight_and_hands_nothing_on() -> None:
    monitor, results = collecting()
    check = Stuck(CheckConfig(kind="stuck", interval=0.05, timeout=5), "127.0.0.2")
    monitor.watch("s1", [("production", "stuck", check)])
    # In flight: its probe runs (a task made but not yet stepped would be cancelled unstarted).
    await wait_for(lambda: check.started == 1, 1, "a probe started")
    monitor.unwatch("s1")
    await asyncio.sleep(0.05)

    assert check.cancelled == 1
    assert results == []


class Instant(Check):
    """A check that answers at once and notes when each of its probes started."""

    kind: ClassVar[str] = "instant"
    Config: ClassVar[type[CheckConfig]] = CheckConfig

    def __init__(self, config: CheckConfig, target: str, starts: list[float]) -> None:
        super().__init__(config, target)
        self.starts = starts

    async def attempt(self) -> str:
        self.starts.append(asyncio.get_running_loop().time())
        return "at once"


async def test_checks_held_up_by_a_stalled_loop_do_not_fire_together_from_then_on() -> None:
    starts: list[float] = []

    async def on_result(scenario: str, side: Side, label: str, result: CheckResult) -> None:
        await asyncio.sleep(0.1)  # results take a while to hand on: the next dues pass meanwhile

    monitor = Monitor(on_result)
    config = CheckConfig(kind="instant", interval=0.2, timeout=1)
    for n in range(200):
        monitor.watch(f"s{n}", [("production", "instant", Instant(config, "127.0.0.2", starts))])
    try:
        await asyncio.sleep(0.5)
        time.sleep(0.5)  # noqa: ASYNC251 (the point: the loop is held, every check misses its time)
        await asyncio.sleep(0.65)
        since = asyncio.get_running_loop().time()
        await asyncio.sleep(0.4)
    finally:
        monitor.close()

    # Two intervals after the stall, in 20 ms bins: spread (~10 per bin), not in one bunch.
    window = [t for t in starts if since <= t < since + 0.4]
    busiest = max(Counter(int((t - since) / 0.02) for t in window).values())
    assert len(window) >= 300, len(window)
    assert busiest < len(window) * 0.2, (busiest, len(window))
