"""The daemon: one loop that reads a snapshot, decides, acts and reports, once per cycle.

Checks feed detectors from the monitor; operator commands arrive as intents; runbooks run as
background tasks and report back. Only the loop triggers transitions, so two operators and the
detector cannot race each other. A cycle evaluates the scenarios its agenda names (``ha.agenda``),
not all of them. Status is logged once per cycle, and only when it changed.

With an etcd state (``ha.cluster``) several daemons share the store: every one checks and
publishes its views each cycle; only the leader acts (runbooks, autopilot, groups, Assured
Recovery), on the observers' verdict. A follower reads the scenarios' state from the store and
answers commands 503. Taking charge resumes the runbooks in flight from the journal; losing the
lease cancels them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from checks import Check, CheckResult
from ha.agenda import Agenda
from ha.ar_runner import RecoveryTests
from ha.autopilot import Autopilot
from ha.cluster import Cluster
from ha.commands import RUNBOOK_COMMANDS, Intent
from ha.config import ClusterConfig, Config
from ha.coordination_quorum import Verdict
from ha.decide import evaluate
from ha.discovery import Discovery
from ha.errors import ActionError, StoreError
from ha.groups import GroupRunner
from ha.hooks import Background, HookConfig
from ha.intents import apply_intent, refuse_waiting
from ha.lanes import intent_lane, side_by_side
from ha.machine import RUNBOOK_STATES, build_machine
from ha.machines import protected_by
from ha.monitor import Monitor
from ha.parts import build_checks, build_providers, build_redirectors
from ha.readback import ReadBack
from ha.redirect import Redirector
from ha.runbook import Runbook, RunbookCancelled
from ha.scenario import ACTIVE_CHECK, Scenario
from ha.steps import Parts, build_steps, hook_env
from ha.store import JournalEvent, ScenarioRecord, Side, Store
from ha.store.etcd_target import EtcdTarget
from ha.store.sqlite import SqliteStore
from ha.takeover import lead, resume_runbooks, take_charge

log = structlog.get_logger("ha.daemon")

TICK = 1.0
# A cycle gives the loop back this often while it evaluates (10,000 scenarios marked at once
# after a start take ~55 ms): probes due meanwhile start late by this much at most, not by all.
TURN = 0.005


class Daemon:
    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        self.cluster: Cluster | None = None
        if isinstance(config.state, EtcdTarget):
            cluster = config.cluster or ClusterConfig()
            self.cluster = Cluster(config.state, cluster, self._leadership_changed)
            store = store or self.cluster.store
        elif store is None:
            store = SqliteStore(config.state)
        self.store = store
        self.in_charge = self.cluster is None  # we act: always with SQLite; with etcd, if we lead
        self.deposed = False  # leadership was lost since we took charge (etcd)
        self.store_error: str | None = None  # why the last cycle was cut short, until it works
        self._store_failed_at = 0.0
        self.interrupted = False  # a runbook stopped on a failed write: resume it when writes work
        self.machine = build_machine()
        self.providers = build_providers(config)
        self.scenarios: dict[str, Scenario] = {}
        self.parts: dict[str, Parts] = {}
        self.checks: dict[str, list[tuple[Side, str, Check]]] = {}
        self.runbooks: dict[str, asyncio.Task[None]] = {}
        self.forced: set[str] = set()
        self.force_promotion: set[str] = set()
        # scenario, trigger, reason, and the active side the report assumes (None: any)
        self.reports: deque[tuple[str, str, str, str | None]] = deque()
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.intents: asyncio.Queue[Intent] = asyncio.Queue()
        self._status = ""
        self._recount = True  # a scenario changed state: count the states again for the log
        self.agenda = Agenda()
        self.position: dict[str, int] = {}  # scenario: its place in the config (evaluation order)
        self.monitor = Monitor(self._on_result)
        # Told every check result (metrics); each must be quick and must not block.
        self.result_listeners: list[Callable[[str, Side, str, CheckResult], None]] = []
        self.autopilot = Autopilot(config, self.store)
        self.background = Background()
        self.readback = ReadBack(self.parts, self._report)
        self.discovery = Discovery(
            config.discovery,
            self.providers,
            {name: set(protected_by(config, name)) for name in config.discovery.providers},
            self.store,
        )
        self.tests = RecoveryTests(
            config, self.store, self.scenarios, self.providers, self.probe_replica
        )
        # self.tests is made again on taking charge: the group runner asks the current one.
        self.groups = GroupRunner(self.scenarios, self.submit, self.store, lambda: self.tests)

    # Start and stop.

    async def start(self) -> None:
        await self.store.open()
        records = await self.store.scenarios()
        for config in self.config.scenarios:
            record = records.get(config.name)
            scenario = Scenario(
                config, record or ScenarioRecord(config.name, config.start), self.store
            )
            self.machine.add_model(scenario, initial=scenario.record.state)
            scenario.on_transition = self._after_transition
            self.scenarios[config.name] = scenario
            self.position[config.name] = len(self.position)
            self.checks[config.name] = build_checks(config)
            self.parts[config.name] = Parts(
                scenario=scenario,
                providers=self.providers,
                redirectors=build_redirectors(config, self.providers, self.config.dns_servers),
                probe=self._prober(config.name),
                proposal=self._proposal_of(config.name),
            )
            self.readback.watch(self.parts[config.name])
        self.agenda.mark(*self.scenarios)
        if self.cluster is None:
            await take_charge(self, records, "after a restart")
        else:
            await self.cluster.start()
        log.info("daemon started", scenarios=len(self.scenarios), state=str(self.config.state))

    async def stop(self) -> None:
        self.monitor.close()
        await self.groups.close()
        await self.tests.close()
        await self.readback.close()
        await self.background.close()
        tasks = list(self.runbooks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.cluster is not None:
            await self.cluster.close()
        for checks in self.checks.values():
            for _, _, check in checks:
                await check.close()
        for parts in self.parts.values():
            for redirector in parts.redirectors:
                await redirector.close()
        for provider in self.providers.values():
            await provider.close()
        await self.store.close()
        log.info("daemon stopped")

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def serve(self) -> None:
        """Start probing, then run cycles until ``request_stop``.

        Probing starts here, not in ``start``: what comes between (building 10,000 scenarios
        takes seconds, the service then freezes the heap out of the garbage collector, ~1 s)
        holds the loop, and probes started before would all be overdue together afterwards and
        stay bunched interval after interval (±5% jitter spreads them slowly): a congested loop
        that never catches up. The loop reads its clock again first (uvloop's stands still while
        the loop is held), so that first probes spread over the interval from now."""
        await asyncio.sleep(0)
        for name, scenario in self.scenarios.items():
            if scenario.state != "stopped":
                self.monitor.watch(name, self.checks[name])
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self.wake.wait()
            self.wake.clear()
            try:
                if self.store_error is not None and self.cluster is None:
                    await self._store_recovered()
                await self.cycle()
            except StoreError as exc:
                self._store_failed(exc)
            else:
                if self.cluster is not None:
                    self.store_error = None

    def _store_failed(self, exc: StoreError) -> None:
        """A write failed (a full disk, etcd without a quorum, a lost lead): what the cycle did
        not do, the next one does. Nothing acts meanwhile: each transition, step and command is
        written before it happens. The daemon keeps checking and answering (``store_error``)."""
        if str(exc) != self.store_error:  # once per kind of outage
            log.warning("cycle cut short: the state store failed", error=str(exc))
        if self.store_error is None:
            self._store_failed_at = time.time()
        self.store_error = str(exc)
        self.interrupted = True
        self.agenda.mark(*self.scenarios)
        refuse_waiting(self, f"the state store failed: {exc}")

    async def _store_recovered(self) -> None:
        """The first write after an outage (SQLite; raises StoreError while it lasts): the
        journal says when the store failed and why, which it could not say then."""
        since = time.strftime("%H:%M:%S", time.localtime(self._store_failed_at))
        await self.store.append(
            JournalEvent(
                kind="store_recovered",
                message=f"the state store takes writes again; it failed since {since}:"
                f" {self.store_error}",
                data={"since": self._store_failed_at, "error": self.store_error},
            )
        )
        log.info("the state store takes writes again", error=self.store_error)
        self.store_error = None

    # One cycle.

    async def cycle(self) -> None:
        now = time.time()
        verdicts: dict[str, Verdict] = {}
        if self.cluster is not None:
            await self.cluster.publish(self.scenarios.values(), now)
            if not await lead(self, self.cluster):
                return
            verdicts = await self.cluster.verdicts(self.scenarios)
            for verdict in verdicts.values():
                event = self.cluster.disagreement(verdict)
                if event is not None:
                    await self.store.append(event)
        while self.reports:  # scenarios side by side: their journal writes share commits
            reports = [self.reports.popleft() for _ in range(len(self.reports))]
            await side_by_side(reports, lambda r: r[0], lambda r: self._apply_report(*r))
        while not self.intents.empty():
            intents = [self.intents.get_nowait() for _ in range(self.intents.qsize())]
            self.agenda.mark(*(i.scenario for i in intents if i.scenario in self.scenarios))
            await side_by_side(intents, intent_lane, lambda i: apply_intent(self, i))
        unsettled = self.scenarios if self.cluster is not None else self.autopilot.unsettled()
        turn_ends = time.monotonic() + TURN
        for name in sorted(self.agenda.take(now, unsettled), key=self.position.__getitem__):
            await evaluate(self, self.scenarios[name], now, verdicts.get(name))
            if time.monotonic() >= turn_ends:
                await asyncio.sleep(0)
                turn_ends = time.monotonic() + TURN
        if self.cluster is not None or self.interrupted:
            await resume_runbooks(self, "after an interrupted write")
            self.interrupted = False
        self.readback.schedule(now)
        await self.tests.tick(now)
        if self.discovery.is_due(now):
            self.background.spawn(self.discovery.run())
        self._report_status()

    # Leadership (etcd state only).

    def _leadership_changed(self, leading: bool) -> None:
        """From the elector, the moment leadership is won or lost: runbooks stop at once."""
        if not leading:
            self.deposed = True
            for task in self.runbooks.values():
                task.cancel()
        self.wake.set()

    async def pull(self, scenario: Scenario, trigger: str, **kwargs: Any) -> bool:
        """Pull a trigger; True when the state changed (read the state, not transitions' answer)."""
        before = scenario.state
        if trigger in RUNBOOK_COMMANDS and scenario.state == "blocked":
            kwargs["runbook"] = scenario.record.runbook
        await scenario.trigger(trigger, **kwargs)
        return scenario.state != before

    async def _after_transition(self, scenario: Scenario, trigger: str, source: str) -> None:
        self.autopilot.forget(scenario)
        self.state_changed(scenario.name)
        if scenario.state == "stopped":
            self.monitor.unwatch(scenario.name)
        else:
            self.monitor.watch(scenario.name, self.checks[scenario.name])
        if scenario.state in RUNBOOK_STATES:  # a new runbook, unless a blocked one goes on
            self.start_runbook(scenario, resume=source == "blocked")
        hooks = scenario.config.hooks
        event = {
            "scenario": scenario.name,
            "from": source,
            "to": scenario.state,
            "trigger": trigger,
            "active": scenario.record.active,
            "runbook": scenario.record.runbook,
            "reason": scenario.record.reason,
        }
        env = hook_env(scenario, trigger)
        self.background.fire(hooks.on_state_change, event, env, self._hook_report)
        if trigger == "finish" and scenario.state == "running":
            self.prepare([scenario])
        if trigger == "finish":
            after = hooks.post_failback if source == "failing_back" else hooks.post_failover
            self.background.fire(after, event, env, self._hook_report)

    def state_changed(self, name: str) -> None:
        """A scenario's state changed (a transition, or the leader's word): evaluate it next
        cycle, and count the states again for the status line."""
        self.agenda.mark(name)
        self.agenda.at(name, None)
        self._recount = True

    def prepare(self, scenarios: Iterable[Scenario]) -> None:
        """In the background: redirectors of scenarios with production active get ready for a
        failover (DNS reads its records, lowers TTLs); together, so their updates share
        messages."""
        redirectors = [(s.name, r) for s in scenarios for r in self.parts[s.name].redirectors]

        async def prepare(name: str, redirector: Redirector) -> None:
            try:
                said = await redirector.prepare()
            except ActionError as exc:
                log.warning("redirection not prepared", scenario=name, error=str(exc))
                return
            if said:
                await self.store.append(
                    JournalEvent(kind="redirect_prepared", scenario=name, message=said)
                )

        async def all_of_them() -> None:
            await asyncio.gather(*(prepare(name, r) for name, r in redirectors))

        if redirectors:
            self.background.spawn(all_of_them())

    async def _hook_report(
        self, hook: HookConfig, event: Mapping[str, Any], said: str, ok: bool
    ) -> None:
        await self.store.append(
            JournalEvent(
                kind="hook",
                scenario=event.get("scenario"),
                message=said,
                data={"hook": hook.label, "ok": ok, "to": event.get("to")},
            )
        )

    # Runbooks.

    def start_runbook(self, scenario: Scenario, *, resume: bool = True) -> None:
        """Run the scenario's runbook; ``resume``: some of its steps may be done already (after
        a restart, a change of leader, or a block)."""
        record = scenario.record
        assert record.runbook is not None
        assert record.runbook_kind is not None
        steps = build_steps(
            record.runbook_kind,
            self.parts[scenario.name],
            force=scenario.name in self.forced,
            runbook=record.runbook,
            force_promotion=scenario.name in self.force_promotion,
        )
        self.forced.discard(scenario.name)
        self.force_promotion.discard(scenario.name)
        runbook = Runbook(
            id=record.runbook,
            kind=record.runbook_kind,
            scenario=scenario.name,
            steps=steps,
            policy=scenario.config.runbook,
            store=self.store,
        )
        task = asyncio.create_task(self._run_runbook(runbook, resume))
        self.runbooks[scenario.name] = task

    async def _run_runbook(self, runbook: Runbook, resume: bool) -> None:
        structlog.contextvars.bind_contextvars(scenario=runbook.scenario, runbook=runbook.id)
        try:
            # A rehearsal never holds a runbook up.
            await self.tests.abort(runbook.scenario, f"a {runbook.kind} runbook started")
            await runbook.run(resume=resume)
            report = ("finish", "")
        except RunbookCancelled as exc:
            report = ("cancel", str(exc))
        except Exception as exc:
            if isinstance(exc, StoreError):
                # Not the runbook's fault: it resumes once the store takes writes again (or, on
                # etcd, a deposed leader stops here and the next one resumes it).
                log.warning("runbook stopped: the state store refused a write", error=str(exc))
                self.runbooks.pop(runbook.scenario, None)
                self.interrupted = True
                return
            log.exception("runbook failed")
            report = ("block", str(exc))
        self.runbooks.pop(runbook.scenario, None)
        self._report(runbook.scenario, *report, None)

    def _report(self, scenario: str, trigger: str, reason: str, assumes: str | None) -> None:
        """From background work to the loop: pull ``trigger`` on ``scenario``."""
        self.reports.append((scenario, trigger, reason, assumes))
        self.wake.set()

    async def _apply_report(
        self, name: str, trigger: str, reason: str, assumes: str | None
    ) -> None:
        scenario = self.scenarios[name]
        if assumes is not None and (
            scenario.state not in ("running", "switched") or scenario.record.active != assumes
        ):
            return  # found in a state that has changed since: stale
        await self.pull(scenario, trigger, reason=reason)

    # Commands.

    def submit(self, intent: Intent) -> None:
        self.intents.put_nowait(intent)
        self.wake.set()

    # Checks.

    def _proposal_of(self, name: str) -> Any:
        async def proposal(runbook: str) -> dict[str, Any]:
            found = await self.store.events(scenario=name, runbook=runbook, kinds=("proposal",))
            return {"proposal": found[-1].id, **found[-1].data} if found else {"runbook": runbook}

        return proposal

    async def probe_replica(self, name: str) -> dict[str, CheckResult]:
        return await self.parts[name].probe("replica")

    def _prober(self, name: str) -> Any:
        async def probe(side: Side) -> dict[str, CheckResult]:
            checks = [
                (label, check)
                for s, label, check in self.checks[name]
                if s == side and label != ACTIVE_CHECK
            ]
            results = await asyncio.gather(*(check.probe() for _, check in checks))
            return {label: result for (label, _), result in zip(checks, results, strict=True)}

        return probe

    async def _on_result(self, name: str, side: Side, label: str, result: CheckResult) -> None:
        for listener in self.result_listeners:
            listener(name, side, label, result)
        scenario = self.scenarios[name]
        if label == ACTIVE_CHECK:
            scenario.acting[side] = result
            self.agenda.mark(name)
            if result.ok:
                self.wake.set()
            return
        detector = scenario.detectors[side]
        was_dead = detector.is_dead(result.at)
        changed = detector.record(label, result)
        dead = detector.is_dead(result.at)
        if changed or dead != was_dead:
            self.agenda.mark(name)
        if changed and self.in_charge and not self.deposed:
            self.store.note(
                JournalEvent(
                    kind="check",
                    scenario=name,
                    message=f"{side} {label} {'ok' if result.ok else 'failed'}: {result.detail}",
                    data={"side": side, "check": label, "ok": result.ok, "latency": result.latency},
                )
            )
        if dead != was_dead:
            self.wake.set()

    # Status.

    def _report_status(self) -> None:
        if not self._recount:
            return
        self._recount = False
        states = Counter(s.state for s in self.scenarios.values())
        status = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        if status != self._status:
            self._status = status
            log.info("status", scenarios=status or "none", runbooks=len(self.runbooks))
