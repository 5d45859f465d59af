"""The monitor: every check of every scenario on its own schedule, all in one asyncio loop.

No task per check sits waiting: each check has a timer (``loop.call_at``); when it fires, one task
runs the probe, hands the result on and sets the next timer. Start times are spread at random over
the first interval and each next time gets a little jitter, so checks never fire in lockstep.
A check whose next time has passed already because the loop was held (not because its probe was
slow) skips the probes it missed and keeps its place in the interval: were it probed at once,
every check held up by a stalled loop would fire together from then on, a bunch that jitter
takes minutes to spread and that keeps the loop late (after a 1 s stall at 10,000 checks a
second: p99 lag 150-250 ms for as long as measured, instead of back under 5 ms within 2 s).
Scheduling lag (how late a probe started against its due time) is counted for the benchmark.

Timers are shared: a due time is rounded up to the next ``SLOT`` (2 ms), and each slot has one
loop timer and a list of the checks due in it, so that ten thousand checks a second cost a few
hundred loop timers a second, not ten thousand (each a handle, a libuv timer and a context that
live for an interval and that the garbage collector walks again and again). Timeouts too: a
probe runs without a timer of its own (``Check.probe_untimed``); the slot its timeout falls in
cancels it if it is still running, and it reports that it timed out.

A check with ``follow_up`` is probed faster while it is in doubt: when its newest result failed,
or when a probe is still unanswered ``follow_up`` after it started (a hung server or a cut link
answers nothing until the timeout), the next probe starts ``follow_up`` after the previous one,
without waiting for it to end. The burst lasts at most one interval from the first doubt: a
server that stays dead is then probed at the interval again (a site-wide outage must not turn
every check into a flood), until a probe passes and a later doubt may burst again. Several
probes may be in flight; results are handed on in the
order they arrive, except that a result arriving after that of a probe started later is dropped,
so that the detector counts failures in a row as the probes saw them.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

from checks import Check, CheckResult
from ha.store import Side

log = structlog.get_logger("ha.monitor")

JITTER = 0.05  # each next due time moves by up to ±5% of the interval
SLOT = 0.002  # due times are rounded up to a multiple of this: checks due together share a timer

ResultHandler = Callable[[str, Side, str, CheckResult], Awaitable[None]]


class _Job:
    __slots__ = (
        "check",
        "checkpoint",
        "doubt",
        "due",
        "label",
        "newest",
        "scenario",
        "side",
        "slot",
        "started",
        "tasks",
        "until",
    )

    def __init__(self, scenario: str, side: Side, label: str, check: Check) -> None:
        self.scenario = scenario
        self.side = side
        self.label = label
        self.check = check
        self.due = 0.0  # when the next probe (or checkpoint) is due
        self.slot: int | None = None  # the timer slot it waits in; None: none (unwatched)
        self.tasks: dict[asyncio.Task[None], float] = {}  # probes in flight: when each started
        self.started = 0.0  # when the latest probe started
        self.newest = 0.0  # when the probe of the latest result handed on started
        self.doubt = False  # the latest result handed on failed
        self.checkpoint = False  # the timer looks for doubt, rather than starting a probe
        self.until: float | None = None  # follow-ups may start until then (a burst in progress)


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
        self._slots: dict[int, list[_Job]] = {}  # slot: the jobs due in it
        self._deadlines: dict[int, list[_Job]] = {}  # slot: jobs with a probe timing out in it
        self._expired: set[asyncio.Task[None]] = set()  # probes cancelled for their timeout

    def watch(self, scenario: str, checks: Iterable[tuple[Side, str, Check]]) -> None:
        """Start probing a scenario's checks. Idempotent."""
        if scenario in self.jobs:
            return
        jobs = [_Job(scenario, side, label, check) for side, label, check in checks]
        self.jobs[scenario] = jobs
        for job in jobs:
            self._schedule(job, random.uniform(0, job.check.config.interval))

    def unwatch(self, scenario: str) -> None:
        """Stop probing a scenario. Idempotent; probes in flight are cancelled."""
        for job in self.jobs.pop(scenario, []):
            job.slot = None  # its slot, when it fires, passes it over
            for task in list(job.tasks):
                task.cancel()

    def close(self) -> None:
        for scenario in list(self.jobs):
            self.unwatch(scenario)

    def _schedule(self, job: _Job, delay: float) -> None:
        job.due = self._loop.time() + delay
        slot = math.ceil(job.due / SLOT)
        if job.slot == slot:
            return
        job.slot = slot
        jobs = self._slots.get(slot)
        if jobs is None:
            jobs = self._slots[slot] = []
            self._loop.call_at(slot * SLOT, self._fire_slot, slot)
        jobs.append(job)

    def _fire_slot(self, slot: int) -> None:
        for job in self._slots.pop(slot):
            if job.slot == slot:  # else unwatched, or moved to another slot since
                self._fire(job)

    def _fire(self, job: _Job) -> None:
        job.slot = None
        config = job.check.config
        now = self._loop.time()
        if job.checkpoint:
            if not job.doubt and not job.tasks:
                job.until = None  # all answered and well: a later doubt may burst again
            elif job.until is None:
                job.until = now + config.interval  # the first doubt: a burst begins
            if job.until is None or now >= job.until:
                job.checkpoint = False  # back to the regular interval
                next_due = job.started + config.interval * (1 + random.uniform(-JITTER, JITTER))
                self._schedule(job, max(0.0, next_due - now))
                return
        self.lag.add(now - job.due)
        job.started = now
        task = self._loop.create_task(self._probe(job, now))
        job.tasks[task] = now
        slot = _deadline_slot(now, config.timeout)
        jobs = self._deadlines.get(slot)
        if jobs is None:
            jobs = self._deadlines[slot] = []
            self._loop.call_at(slot * SLOT, self._expire_slot, slot)
        jobs.append(job)
        if config.follow_up is not None:
            job.checkpoint = True
            self._schedule(job, min(config.follow_up, config.interval))

    def _expire_slot(self, slot: int) -> None:
        """Cancel the probes whose timeout ran out by this slot; each reports it timed out."""
        for job in self._deadlines.pop(slot):
            timeout = job.check.config.timeout
            for task, started in job.tasks.items():
                if _deadline_slot(started, timeout) <= slot and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    async def _probe(self, job: _Job, started: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            result = await job.check.probe_untimed()
        except asyncio.CancelledError:
            if task not in self._expired:
                raise  # unwatched, or the loop is closing
            result = job.check.timed_out(self._loop.time() - started)
        if task in self._expired:  # also when the check went on regardless of the cancel
            self._expired.discard(task)
            task.uncancel()
        del job.tasks[task]  # answered: handing it on is not being late
        if job not in self.jobs.get(job.scenario, ()):
            return
        if job.check.config.follow_up is None:
            interval = job.check.config.interval
            next_due = job.due + interval * (1 + random.uniform(-JITTER, JITTER))
            now = self._loop.time()
            if next_due < now and now - started < interval:
                next_due += math.ceil((now - next_due) / interval) * interval  # see above
            self._schedule(job, max(0.0, next_due - now))
        if started < job.newest:
            return  # overtaken: a probe started later has answered already
        job.newest = started
        job.doubt = not result.ok
        try:
            await self.on_result(job.scenario, job.side, job.label, result)
        except Exception:
            log.exception("check result lost", scenario=job.scenario, check=job.label)


def _deadline_slot(started: float, timeout: float) -> int:
    """The slot a probe started at ``started`` times out in. Compared as slot numbers, never as
    times: with uvloop's millisecond clock a deadline often falls on a slot boundary, where
    ``slot * SLOT`` may come out a hair below ``started + timeout`` in floating point, and a
    probe of a hung server compared that way was never cancelled (its check went silent)."""
    return math.ceil((started + timeout) / SLOT)
