"""Assured Recovery in the daemon: schedules, the concurrency limit, manual tests, aborting a test
for a failover, and rolling back a test that a crash interrupted.

A scheduled test may start up to ``window`` after its time; past that it is journaled as missed
(also for times that passed while the daemon was down), never run late in a burst. Tests above
``recovery_tests.max_concurrent`` wait in a queue; a queued test that can no longer start when
its turn comes (production died, the scenario failed over) ends ``ar_aborted`` with the reason.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from checks import Check, CheckResult, check_kinds
from ha.assured import RecoveryTest, restore, snapshot_name
from ha.config import Config
from ha.scenario import Scenario
from ha.store import JournalEvent, Store
from providers import Provider

log = structlog.get_logger("ha.ar")

ENDED = ("ar_passed", "ar_failed", "ar_aborted", "ar_rolled_back")
Verdict = tuple[str, str]  # how a test ended: its kind (one of ENDED) and its message
ReplicaProbe = Callable[[str], Awaitable[dict[str, CheckResult]]]


def _next(schedule: str, after: float) -> float:
    from croniter import croniter

    return float(croniter(schedule, after).get_next(float))


def _previous(schedule: str, before: float) -> float:
    from croniter import croniter

    return float(croniter(schedule, before).get_prev(float))


class RecoveryTests:
    def __init__(
        self,
        config: Config,
        store: Store,
        scenarios: Mapping[str, Scenario],
        providers: Mapping[str, Provider],
        probe_replica: ReplicaProbe,
    ) -> None:
        self.config = config
        self.store = store
        self.scenarios = scenarios
        self.providers = providers
        self.probe_replica = probe_replica
        self.running: dict[str, asyncio.Task[None]] = {}
        self.queue: deque[tuple[str, str]] = deque()  # scenario, trigger
        self.due: dict[str, float] = {}
        self.waiting: dict[str, list[asyncio.Future[Verdict]]] = {}
        self.extra: dict[str, list[tuple[str, Check]]] = {}
        kinds = check_kinds()
        for scenario in config.scenarios:
            ar = scenario.assured_recovery
            if ar is None:
                continue
            self.extra[scenario.name] = [
                (f"ar:{spec.label}", kinds[spec.kind](spec, scenario.replica.address))
                for spec in ar.checks
            ]

    # Start-up.

    async def restore(self, now: float) -> None:
        """Roll back tests a crash interrupted; report scheduled times missed while down."""
        events = await self.store.events(kinds=("ar_started", "ar_snapshot", *ENDED), limit=10**9)
        ended = {e.data.get("test") for e in events if e.kind in ENDED}
        snapshots = {e.data.get("test"): e for e in events if e.kind == "ar_snapshot"}
        last_start: dict[str, float] = {}
        for event in events:
            if event.kind != "ar_started":
                continue
            last_start[event.scenario or ""] = event.ts
            if event.data.get("test") not in ended:
                await self._roll_back(event, snapshots.get(event.data.get("test")))
        for scenario in self.config.scenarios:
            ar = scenario.assured_recovery
            if ar is None or ar.schedule is None:
                continue
            previous = _previous(ar.schedule, now)
            if last_start.get(scenario.name, 0.0) < previous and now - previous > ar.window:
                await self._missed(scenario.name, previous)
            started_since = last_start.get(scenario.name, 0.0) >= previous
            self.due[scenario.name] = (
                _next(ar.schedule, now) if started_since or now - previous > ar.window else previous
            )

    async def _roll_back(self, started: JournalEvent, snapshot: JournalEvent | None) -> None:
        name, test = started.scenario or "", str(started.data.get("test"))
        machine = str(started.data.get("machine"))
        scenario = self.config.scenarios[[s.name for s in self.config.scenarios].index(name)]
        assert scenario.replica.machine is not None
        provider = self.providers[scenario.replica.machine.provider]
        try:
            if snapshot is not None:
                await restore(
                    provider,
                    machine,
                    str(snapshot.data["snapshot"]),
                    power_off=snapshot.data.get("was") == "off",
                    revert=True,
                    keep=False,
                )
                message = (
                    f"test {test} interrupted by a restart: replica reverted, snapshot deleted"
                )
            else:
                message = f"test {test} interrupted before its snapshot: nothing to undo"
                try:
                    await provider.delete_snapshot(machine, snapshot_name(test))
                    message = f"test {test} interrupted while snapshotting: snapshot deleted"
                except Exception:
                    log.info("no snapshot of the interrupted test", test=test)
        except Exception as exc:
            message = f"test {test} interrupted by a restart; rolling back failed: {exc}"
        await self._journal("ar_rolled_back", name, message, runbook=test, test=test)

    async def _missed(self, name: str, when: float) -> None:
        message = f"scheduled test of {time.ctime(when)} missed (daemon down or busy)"
        await self._journal("ar_missed", name, message, due=when)

    async def _journal(
        self, kind: str, name: str, message: str, runbook: str | None = None, **data: Any
    ) -> None:
        await self.store.append(
            JournalEvent(kind=kind, scenario=name, runbook=runbook, message=message, data=data)
        )

    # Running.

    def conflict(self, scenario: Scenario) -> str | None:
        if scenario.config.assured_recovery is None:
            return "no assured_recovery configured for this scenario"
        if scenario.name in self.running:
            return "a test of this scenario is running"
        if scenario.state != "running" or scenario.record.paused:
            return f"a test needs the scenario running normally; it is {scenario.state}"
        if scenario.detectors["production"].is_dead(time.time()):
            return "production is down: no test now"
        return None

    def verdict(self, name: str) -> asyncio.Future[Verdict]:
        """How the scenario's next test to end ends (the running one, else the queued one, else
        the next one started). Ask before requesting the test: a test may end quickly."""
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        waiting = [f for f in self.waiting.get(name, []) if not f.done()]  # not the given up
        self.waiting[name] = [*waiting, future]
        return future

    def _ended(self, name: str, verdict: Verdict) -> None:
        for future in self.waiting.pop(name, []):
            if not future.done():
                future.set_result(verdict)

    def request(self, scenario: Scenario, trigger: str) -> str:
        """Start a test now, or queue it (first come, first served) behind the concurrency
        limit; what happened, in words."""
        if not self.queue and len(self.running) < self.config.recovery_tests.max_concurrent:
            test = self._start(scenario, trigger)
            return f"test {test} started"
        if all(name != scenario.name for name, _ in self.queue):
            self.queue.append((scenario.name, trigger))
        return f"queued behind {len(self.running)} running and {len(self.queue) - 1} waiting"

    def _start(self, scenario: Scenario, trigger: str) -> str:
        ar = scenario.config.assured_recovery
        machine = scenario.config.replica.machine
        assert ar is not None
        assert machine is not None
        test = uuid.uuid4().hex[:12]
        extra = self.extra.get(scenario.name, [])

        async def probe() -> dict[str, CheckResult]:
            results = await self.probe_replica(scenario.name)
            extra_results = await asyncio.gather(*(check.probe() for _, check in extra))
            results.update({label: r for (label, _), r in zip(extra, extra_results, strict=True)})
            return results

        run = RecoveryTest(
            id=test,
            scenario=scenario.name,
            config=ar,
            provider=self.providers[machine.provider],
            machine=machine.name,
            probe=probe,
            store=self.store,
            trigger=trigger,
        )
        task = asyncio.create_task(run.run())
        self.running[scenario.name] = task

        def ended(_: asyncio.Task[None]) -> None:
            self.running.pop(scenario.name, None)
            self._ended(scenario.name, run.outcome or ("ar_aborted", f"test {test} stopped"))

        task.add_done_callback(ended)
        return test

    async def _not_started(self, name: str, trigger: str, why_not: str) -> None:
        message = f"queued test ({trigger}) not started: {why_not}"
        await self._journal("ar_aborted", name, message, test=None, trigger=trigger)
        self._ended(name, ("ar_aborted", message))

    async def abort(self, name: str, why: str) -> None:
        """Stop a scenario's test (a failover is coming) and wait for its cleanup; a queued one
        will not start (``why`` says so in the journal)."""
        queued = [trigger for scenario, trigger in self.queue if scenario == name]
        if queued:
            self.queue = deque(item for item in self.queue if item[0] != name)
            await self._not_started(name, queued[0], why)
        task = self.running.get(name)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def tick(self, now: float) -> None:
        """The queue (within the concurrency limit), then due schedules."""
        while self.queue and len(self.running) < self.config.recovery_tests.max_concurrent:
            name, trigger = self.queue.popleft()
            why_not = self.conflict(self.scenarios[name])
            if why_not is None:
                self._start(self.scenarios[name], trigger)
            else:
                await self._not_started(name, trigger, why_not)
        for name, due in list(self.due.items()):
            if now < due:
                continue
            scenario = self.scenarios[name]
            ar = scenario.config.assured_recovery
            assert ar is not None
            assert ar.schedule is not None
            why_not = self.conflict(scenario)
            if why_not is None:
                self.request(scenario, "schedule")
            elif now - due <= ar.window:
                continue  # try again next cycle, within the window
            else:
                await self._missed(name, due)
            self.due[name] = _next(ar.schedule, now)

    async def close(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
