"""The steps of each runbook kind, built from a scenario's config and the parts it acts on.

failover:   confirm_failure, fence_production, activate_replica, wait_replica_healthy,
            redirect, verify
switchover: stop_production, activate_replica, wait_replica_healthy, redirect, verify
failback:   activate_production, wait_production_healthy, redirect, verify, stop_replica
recover-S:  fence the other side, activate_S, wait_S_healthy, redirect, verify
failback of a database pair (PostgreSQL, MariaDB): rebuild_production, drain_replica,
            activate_production, wait_production_healthy, redirect, verify, rebuild_replica

Each kind starts with its pre-hooks (pre_failover, or pre_failback for a failback) when any.

Steps that cannot apply (no machine to fence or power on) are left out, so a dry run shows only
what will really happen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checks import CheckResult
from ha.duration import format_duration
from ha.errors import ActionError
from ha.hooks import HookConfig, run_pre_hooks
from ha.redirect import Redirector
from ha.runbook import RunbookCancelled, Step, StepError
from ha.scenario import Scenario
from ha.store import Side
from ha.wave import redirect_together
from providers import PowerState, Promotable, Provider, promotable

Probe = Callable[[Side], Awaitable[dict[str, CheckResult]]]
ProposalOf = Callable[[str], Awaitable[dict[str, Any]]]


def summary(results: Mapping[str, CheckResult]) -> str:
    return ", ".join(
        f"{label} {'ok' if r.ok else 'failed'} ({r.detail})" for label, r in results.items()
    )


@dataclass(frozen=True)
class Parts:
    """What a runbook acts on for one scenario."""

    scenario: Scenario
    providers: Mapping[str, Provider]
    redirectors: Sequence[Redirector]
    probe: Probe  # probes a side's checks once, now
    proposal: ProposalOf  # the proposal a runbook carries, by the runbook's id

    def machine(self, side: Side) -> tuple[Provider, str] | None:
        server = getattr(self.scenario.config, side)
        if server.machine is None:
            return None
        return self.providers[server.machine.provider], server.machine.name


def hook_env(scenario: Scenario, action: str) -> dict[str, str]:
    """What hooks learn of a scenario from their environment: names and addresses, no secret."""
    config = scenario.config
    return {
        "HA_SCENARIO": scenario.name,
        "HA_ACTION": action,
        "HA_ACTIVE": scenario.record.active,
        "HA_PRODUCTION_ADDRESS": config.production.address,
        "HA_REPLICA_ADDRESS": config.replica.address,
        "HA_PRODUCTION_MACHINE": config.production.machine.name
        if config.production.machine
        else "",
        "HA_REPLICA_MACHINE": config.replica.machine.name if config.replica.machine else "",
    }


def build_steps(
    kind: str,
    parts: Parts,
    *,
    force: bool = False,
    runbook: str = "",
    force_promotion: bool = False,
) -> list[Step]:
    """``force``: fail over even though production still answers; ``force_promotion``: promote
    a database standby even above its lag bound (accepting the loss the journal records)."""
    scenario = parts.scenario.config
    pre_hooks = scenario.hooks.pre_failback if kind == "failback" else scenario.hooks.pre_failover
    steps = [_pre_hooks(parts, kind, runbook, pre_hooks)] if pre_hooks else []
    if kind == "failover":
        steps += [_confirm_failure(parts, force)]
        if scenario.fence != "off":
            steps.append(_fence(parts, best_effort=scenario.fence == "best_effort"))
        steps += _take_over(parts, "replica", force_promotion)
    elif kind == "switchover":
        steps += _optional(
            _power_step(parts, "production", "stop_production", on=False, hard=False)
        )
        steps += _take_over(parts, "replica", force_promotion)
    elif kind == "failback" and _database_pair(parts):
        steps += _database_failback(parts, force_promotion)
    elif kind == "failback":
        steps += _take_over(parts, "production", force_promotion)
        if scenario.replica.standby:
            steps += _optional(_power_step(parts, "replica", "stop_replica", on=False, hard=False))
    elif kind in ("recover-production", "recover-replica"):
        keep: Side = "production" if kind == "recover-production" else "replica"
        other: Side = "replica" if keep == "production" else "production"
        steps += _optional(_power_step(parts, other, f"fence_{other}", on=False, hard=True))
        steps += _take_over(parts, keep, force_promotion)
    else:
        raise ValueError(f"unknown runbook kind {kind!r}")
    return steps


def _database_pair(parts: Parts) -> bool:
    production = parts.machine("production")
    return production is not None and promotable(production[0])


def _database_failback(parts: Parts, force_promotion: bool) -> list[Step]:
    """Lossless, never two primaries: production rebuilt as a standby of the replica and caught
    up, the replica drained (stops writes, production replays its last position), production
    promoted, users redirected, then the replica rebuilt as production's standby."""
    production, replica = parts.machine("production"), parts.machine("replica")
    assert production is not None
    assert replica is not None
    steps = [
        _rebuild(production, replica[1], "rebuild_production"),
        _power(parts, "replica", "drain_replica", on=False, hard=False),
    ]
    steps += _take_over(parts, "production", force_promotion)
    steps.append(_rebuild(replica, production[1], "rebuild_replica"))
    return steps


def _rebuild(machine: tuple[Provider, str], primary: str, name: str) -> Step:
    provider, instance = machine
    assert isinstance(provider, Promotable)

    async def action() -> str:
        return await provider.rebuild(instance, primary)

    plan = f"rebuild {instance} as a standby of {primary} via {provider.name}; wait until caught up"
    return Step(name, plan, action, retries=0)


def _optional(step: Step | None) -> list[Step]:
    return [step] if step is not None else []


def _take_over(parts: Parts, side: Side, force_promotion: bool = False) -> list[Step]:
    activate = _power_step(
        parts, side, f"activate_{side}", on=True, hard=False, force=force_promotion
    )
    steps = _optional(activate)
    steps.append(_wait_healthy(parts, side))
    steps.append(_redirect(parts, side))
    steps.append(_verify(parts, side))
    return steps


def _pre_hooks(parts: Parts, kind: str, runbook: str, hooks: list[HookConfig]) -> Step:
    moment = "pre_failback" if kind == "failback" else "pre_failover"

    async def action() -> str:
        event = {"moment": moment, "scenario": parts.scenario.name, **await parts.proposal(runbook)}
        return await run_pre_hooks(hooks, event, hook_env(parts.scenario, kind))

    names = ", ".join(hook.label for hook in hooks)
    return Step(f"{moment}_hooks", f"ask {names}; any of them may veto", action, retries=0)


def _confirm_failure(parts: Parts, force: bool) -> Step:
    policy = parts.scenario.config.failover

    async def action() -> str:
        # Fresh results showing production dead are enough: a hung server would take a whole
        # timeout to tell it again.
        checks = parts.scenario.detectors["production"].checks
        fresh = _fresh_results(parts)
        failed = {label: r for label, r in fresh.items() if not r.ok}
        if checks and policy.dead(len(failed), len(checks)):
            return f"production failed its latest probes ({_age(failed)} ago): {summary(failed)}"
        if force and checks and len(fresh) == len(checks):
            # Forced, what production answers decides nothing: a probe now would only wait
            # (a whole timeout, were it hung).
            return (
                f"forced: production's latest probes ({_age(fresh)} ago) do not show it dead:"
                f" {summary(fresh)}"
            )
        results = await parts.probe("production")
        if policy.dead(sum(not r.ok for r in results.values()), len(results)):
            return f"production fails: {summary(results)}"
        if force:
            return f"forced: production still answers: {summary(results)}"
        raise RunbookCancelled(
            f"production answers ({summary(results)}); "
            "use switchover for a planned move, or failover --force"
        )

    return Step(
        "confirm_failure",
        "production's latest probes, or one more if they are older than a probe spacing;"
        " cancel if it answers",
        action,
        retries=0,
    )


def _fresh_results(parts: Parts) -> dict[str, CheckResult]:
    """The monitor's latest result of each of production's checks that is not older than its
    check's probe spacing (``follow_up`` or ``interval``): a probe now would tell no more."""
    now = time.time()
    fresh = {}
    for label, state in parts.scenario.detectors["production"].checks.items():
        config = parts.scenario.labels[label]
        spacing = config.follow_up or config.interval
        if state.last is not None and now - state.last.at <= spacing:
            fresh[label] = state.last
    return fresh


def _age(results: Mapping[str, CheckResult]) -> str:
    """How long ago the newest of ``results`` was probed, to the millisecond."""
    return format_duration(round(time.time() - max(r.at for r in results.values()), 3))


def _power_step(
    parts: Parts, side: Side, name: str, *, on: bool, hard: bool, force: bool = False
) -> Step | None:
    if parts.machine(side) is None:
        return None
    return _power(parts, side, name, on=on, hard=hard, force=force)


def _power(
    parts: Parts, side: Side, name: str, *, on: bool, hard: bool, force: bool = False
) -> Step:
    target = parts.machine(side)
    assert target is not None
    provider, machine = target
    want = PowerState.ON if on else PowerState.OFF
    verb = "power on" if on else ("power off (hard)" if hard else "shut down")
    if on and promotable(provider):
        verb = "promote" + (" (forced past the lag bound)" if force else "")

    async def action() -> str:
        lag: dict[str, Any] = {}
        if on and promotable(provider):
            lag = await provider.promote(machine, force=force)
        elif on:
            await provider.power_on(machine)
        else:
            await provider.power_off(machine, hard=hard)
        state = await provider.power_state(machine)
        if state != want:
            raise StepError(f"{machine} is {state} after {verb}, expected {want}")
        if lag:  # what may be lost: the journal keeps it
            forced = " (FORCED past the bound)" if lag.get("forced") else ""
            return (
                f"{machine} is {state}; lag at promotion: {lag.get('bytes')} bytes,"
                f" {lag.get('seconds')}s{forced}"
            )
        return f"{machine} is {state}"

    return Step(name, f"{provider.describe(verb, machine)}; verify it is {want}", action)


def _fence(parts: Parts, *, best_effort: bool) -> Step:
    """Power production off, hard. Best effort: a production that cannot be reached at all is
    journaled as not fenced and the runbook goes on; required: the failover blocks."""
    step = _power(parts, "production", "fence_production", on=False, hard=True)
    if not best_effort:
        return step

    async def action() -> str:
        try:
            return await step.action()
        except ActionError as exc:
            return f"NOT fenced ({exc}); going on: fence is best_effort"

    return Step(step.name, step.plan + " (best effort: go on if it cannot)", action, retries=0)


def _wait_healthy(parts: Parts, side: Side) -> Step:
    runbook = parts.scenario.config.runbook
    deadline = runbook.healthy_timeout
    interval = min(
        (parts.scenario.labels[label].interval for label in parts.scenario.side_labels(side)),
        default=1.0,
    )

    async def action() -> str:
        give_up = time.monotonic() + deadline
        while True:
            results = await parts.probe(side)
            if all(r.ok for r in results.values()):
                return f"{side} passes: {summary(results)}"
            if time.monotonic() + interval > give_up:
                raise StepError(
                    f"{side} did not pass its checks within {format_duration(deadline)}: "
                    + summary({label: r for label, r in results.items() if not r.ok})
                )
            await asyncio.sleep(interval)

    plan = f"wait up to {format_duration(deadline)} until {side} passes all its checks"
    return Step(f"wait_{side}_healthy", plan, action, timeout=deadline + 30, retries=0)


def _redirect(parts: Parts, side: Side) -> Step:
    address = parts.scenario.address(side)

    async def action() -> str:
        await redirect_together(parts.scenario)  # with the rest of its group wave, if any
        for redirector in parts.redirectors:
            await redirector.point_to(address)
        return (
            "; ".join(r.describe(address) for r in parts.redirectors) or "no redirection configured"
        )

    plan = "; ".join(r.describe(address) for r in parts.redirectors) or "no redirection configured"
    return Step("redirect", plan, action)


def _verify(parts: Parts, side: Side) -> Step:
    address = parts.scenario.address(side)

    async def action() -> str:
        seen = []
        for redirector in parts.redirectors:
            current = await redirector.current()
            if current is not None and current != address:
                raise StepError(f"users are still sent to {current}, expected {address}")
            seen.append(current or "unreadable")
        results = await parts.probe(side)
        if not all(r.ok for r in results.values()):
            raise StepError(f"{side} fails after redirect: {summary(results)}")
        sent = f"users sent to {', '.join(seen)}" if seen else "no redirection to read back"
        return f"{sent}; {side} passes: {summary(results)}"

    return Step("verify", f"read back every redirection ({address}) and probe {side}", action)
