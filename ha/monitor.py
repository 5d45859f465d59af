"""The monitor: every check of every scenario on its own schedule, all in one asyncio loop.

No task per check sits waiting: each check has a timer (``loop.call_at``); when it fires, one task
runs the probe, hands the result on and sets the next timer. Start times are spread at random over
the first interval and each next time gets a little jitter, so checks never fire in lockstep.
Scheduling lag (how late a probe started against its due time) is counted for the benchmark.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

from checks import Check, CheckResult
from ha.store import Side

log = structlog.get_logger("ha.monitor")

JITTER = 0.05  # each next due time moves by up to ±5% of the interval

ResultHandler = Callable[[str, Side, str, CheckResult], Awaitable[None]]


class _Job:
    __slots__ = ("check", "due", "handle", "label", "scenario", "side", "task")

    def __init__(self, scenario: str, side: Side, label: str, check: Check) -> None:
        self.scenario = scenario
        self.side = side
        self.label = label
        self.check = check
        self.due = 0.0
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None


@dataclass
class LagStats:
    """Scheduling lag, for the benchmark: count, and a bounded sample of lags in seconds."""

    count: int = 0
    samples: list[float] = field(default_factory=list)
    keep: int = 200_000

    def add(self, lag: float) -> None:
        self.count += 1
        if len(self.samples) < self.keep:
            self.samples.append(lag)
        else:
            self.samples[random.randrange(self.keep)] = lag


class Monitor:
    def __init__(self, on_result: ResultHandler) -> None:
        self.on_result = on_result
        self.jobs: dict[str, list[_Job]] = {}
        self.lag = LagStats()
        self._loop = asyncio.get_running_loop()

    def watch(self, scenario: str, checks: Iterable[tuple[Side, str, Check]]) -> None:
        """Start probing a scenario's checks. Idempotent."""
        if scenario in self.jobs:
            return
        jobs = [_Job(scenario, side, label, check) for side, label, check in checks]
        self.jobs[scenario] = jobs
        for job in jobs:
            self._schedule(job, random.uniform(0, job.check.config.interval))

    def unwatch(self, scenario: str) -> None:
        """Stop probing a scenario. Idempotent; a probe in flight is cancelled."""
        for job in self.jobs.pop(scenario, []):
            if job.handle is not None:
                job.handle.cancel()
            if job.task is not None:
                job.task.cancel()

    def close(self) -> None:
        for scenario in list(self.jobs):
            self.unwatch(scenario)

    def _schedule(self, job: _Job, delay: float) -> None:
        job.due = self._loop.time() + delay
        job.handle = self._loop.call_at(job.due, self._fire, job)

    def _fire(self, job: _Job) -> None:
        job.handle = None
        self.lag.add(self._loop.time() - job.due)
        job.task = self._loop.create_task(self._probe(job))

    async def _probe(self, job: _Job) -> None:
        result = await job.check.probe()
        job.task = None
        if job not in self.jobs.get(job.scenario, ()):
            return
        interval = job.check.config.interval
        next_due = job.due + interval * (1 + random.uniform(-JITTER, JITTER))
        self._schedule(job, max(0.0, next_due - self._loop.time()))
        try:
            await self.on_result(job.scenario, job.side, job.label, result)
        except Exception:
            log.exception("check result lost", scenario=job.scenario, check=job.label)
