"""Assured Recovery: a rehearsal of recovery on the replica that never touches production or
redirection.

record the replica's power state -> snapshot it -> power it on (and start the application) ->
run the AR checks until all pass (the rehearsed recovery time: from power on to all passing) ->
power it off again if it was off -> revert to the snapshot -> delete the snapshot (or keep it as
a known-good recovery point). Every step is journaled (``ar_step``), and the result too
(``ar_passed``, ``ar_failed``, ``ar_aborted``). Cleanup always runs: a failed check, a cancelled
test (production failed: the failover waits for the revert) and a daemon restart (``roll_back``)
all end with the replica as it was and no snapshot of ours left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from checks import CheckResult
from ha.config import AssuredRecoveryConfig
from ha.duration import format_duration
from ha.process import argv_of, run_command
from ha.store import JournalEvent, Store
from providers import PowerState, Provider

log = structlog.get_logger("ha.assured")

CLEANUP_DEADLINE = 600.0
ProbeReplica = Callable[[], Awaitable[dict[str, CheckResult]]]


def snapshot_name(test: str) -> str:
    return f"ha-ar-{test}"


class RecoveryTest:
    def __init__(
        self,
        *,
        id: str,
        scenario: str,
        config: AssuredRecoveryConfig,
        provider: Provider,
        machine: str,
        probe: ProbeReplica,
        store: Store,
        trigger: str,
    ) -> None:
        self.id = id
        self.scenario = scenario
        self.config = config
        self.provider = provider
        self.machine = machine
        self.probe = probe
        self.store = store
        self.trigger = trigger
        self.timings: dict[str, float] = {}
        self.was: PowerState | None = None
        self.snapshot: str | None = None
        self.outcome: tuple[str, str] | None = None  # the result's kind and message, once ended

    async def _journal(self, kind: str, message: str, **data: Any) -> None:
        await self.store.append(
            JournalEvent(
                kind=kind,
                scenario=self.scenario,
                runbook=self.id,
                message=message,
                data={"test": self.id, **data},
            )
        )

    async def _step(self, name: str, work: Callable[[], Awaitable[str]]) -> None:
        started = time.monotonic()
        detail = await work()
        self.timings[name] = round(time.monotonic() - started, 3)
        await self._journal("ar_step", f"{name}: {detail}", step=name, seconds=self.timings[name])

    async def run(self) -> None:
        """The whole test. Cancelling it (a failover) aborts it after cleanup."""
        await self._journal(
            "ar_started",
            f"Assured Recovery test ({self.trigger}) of {self.machine}",
            machine=self.machine,
            trigger=self.trigger,
        )
        outcome: tuple[str, str, dict[str, Any]] = ("ar_failed", "not run", {})
        try:
            outcome = await self._rehearse()
        except asyncio.CancelledError:
            outcome = ("ar_aborted", "production failed during the test", {})
            await self._cleanup(aborted=True, passed=False)
            await self._end(*outcome)
            raise
        except Exception as exc:
            outcome = ("ar_failed", str(exc) or type(exc).__name__, {})
        await self._cleanup(aborted=False, passed=outcome[0] == "ar_passed")
        await self._end(*outcome)

    async def _rehearse(self) -> tuple[str, str, dict[str, Any]]:
        async def record() -> str:
            self.was = await self.provider.power_state(self.machine)
            return f"{self.machine} is {self.was}"

        async def snapshot() -> str:
            self.snapshot = await self.provider.snapshot(self.machine, snapshot_name(self.id))
            await self._journal(
                "ar_snapshot",
                f"snapshot {self.snapshot}",
                snapshot=self.snapshot,
                machine=self.machine,
                was=str(self.was),
            )
            return f"took snapshot {self.snapshot}"

        async def start() -> str:
            if self.was != PowerState.ON:
                await self.provider.power_on(self.machine)
            if self.config.start is not None:
                result = await run_command(argv_of(self.config.start), timeout=self.config.timeout)
                if not result.ok:
                    raise RuntimeError(f"start command: {result.describe()}")
            return f"{self.machine} is on" + (", application started" if self.config.start else "")

        await self._step("record", record)
        await self._step("snapshot", snapshot)
        await self._step("start", start)
        results = await self._wait_for_checks()
        self.timings["recovery"] = round(self.timings["start"] + self.timings["checks"], 3)
        failing = {label: r.detail for label, r in results.items() if not r.ok}
        summary = ", ".join(f"{label}: {detail}" for label, detail in failing.items())
        if failing:
            return "ar_failed", f"checks fail on the replica: {summary}", {"failing": failing}
        recovery = self.timings["recovery"]
        return "ar_passed", f"recovered in {format_duration(recovery)}", {"recovery_time": recovery}

    async def _wait_for_checks(self) -> dict[str, CheckResult]:
        started = time.monotonic()
        deadline = started + self.config.timeout
        while True:
            results = await self.probe()
            done = all(r.ok for r in results.values()) or time.monotonic() + 0.5 > deadline
            if done:
                self.timings["checks"] = round(time.monotonic() - started, 3)
                passing = sum(r.ok for r in results.values())
                await self._journal(
                    "ar_step",
                    f"checks: {passing} of {len(results)} pass",
                    step="checks",
                    seconds=self.timings["checks"],
                    results={
                        label: {"ok": r.ok, "detail": r.detail} for label, r in results.items()
                    },
                )
                return results
            await asyncio.sleep(0.5)

    async def _cleanup(self, *, aborted: bool, passed: bool) -> None:
        """Leave the replica as it was: powered off if it was off, reverted, our snapshot gone.
        A failover that keeps the replica up (on_production_failure: keep) skips both."""
        if self.snapshot is None and self.was is None:
            return
        keep_up = aborted and self.config.on_production_failure == "keep"
        try:
            async with asyncio.timeout(CLEANUP_DEADLINE):
                await restore(
                    self.provider,
                    self.machine,
                    self.snapshot,
                    power_off=self.was == PowerState.OFF and not keep_up,
                    revert=not keep_up,
                    keep=passed and self.config.keep_snapshots > 0,
                )
        except Exception as exc:
            log.exception("cleanup failed", scenario=self.scenario, test=self.id)
            await self._journal(
                "ar_cleanup_failed", f"cleanup failed: {exc}", snapshot=self.snapshot
            )
            return
        await self._journal(
            "ar_step",
            "cleanup: " + ("kept up for the failover" if keep_up else "reverted"),
            step="cleanup",
            kept=passed and self.config.keep_snapshots > 0,
        )

    async def _end(self, kind: str, message: str, data: dict[str, Any]) -> None:
        kept = self.snapshot if kind == "ar_passed" and self.config.keep_snapshots else None
        await self._journal(
            kind, message, timings=self.timings, machine=self.machine, kept_snapshot=kept, **data
        )
        self.outcome = (kind, message)
        if kept is not None:
            await self._prune_kept()
        log.info("assured recovery test ended", scenario=self.scenario, result=kind, detail=message)

    async def _prune_kept(self) -> None:
        """Keep the newest ``keep_snapshots`` known-good snapshots; delete the older ones."""
        events = await self.store.events(
            scenario=self.scenario, kinds=("ar_passed", "ar_snapshot_deleted"), limit=10**9
        )
        deleted = {e.data.get("snapshot") for e in events if e.kind == "ar_snapshot_deleted"}
        kept = [
            e.data["kept_snapshot"]
            for e in events
            if e.kind == "ar_passed" and e.data.get("kept_snapshot") not in (None, *deleted)
        ]
        for snapshot in kept[: -self.config.keep_snapshots]:
            try:
                await self.provider.delete_snapshot(self.machine, snapshot)
            except Exception as exc:
                log.warning(
                    "old known-good snapshot not deleted", snapshot=snapshot, error=str(exc)
                )
                continue
            await self._journal(
                "ar_snapshot_deleted",
                f"known-good snapshot {snapshot} deleted (keeping the last "
                f"{self.config.keep_snapshots})",
                snapshot=snapshot,
            )


async def restore(
    provider: Provider,
    machine: str,
    snapshot: str | None,
    *,
    power_off: bool,
    revert: bool,
    keep: bool,
) -> None:
    """Undo a test on the replica (also after a crash): each part idempotent but the deletion."""
    if power_off:
        await provider.power_off(machine, hard=True)
    if snapshot is not None:
        if revert:
            await provider.revert(machine, snapshot)
            if power_off and await provider.power_state(machine) != PowerState.OFF:
                await provider.power_off(machine, hard=True)  # a revert may restore a powered state
        if not keep:
            await provider.delete_snapshot(machine, snapshot)
