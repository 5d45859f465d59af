"""The runbook engine: journaled before and after, retried, bounded, resumable."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ha.config import RunbookPolicy
from ha.errors import NotSupported, ProviderError, StepFailed
from ha.runbook import Runbook, Step
from ha.store import JournalEvent
from ha.store.sqlite import SqliteStore

FAST = RunbookPolicy(step_timeout=1, retries=2, retry_delay=0.01)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()


def recorder(calls: list[str], name: str, failures: list[Exception] | None = None) -> Step:
    pending = list(failures or [])

    async def action() -> str:
        calls.append(name)
        if pending:
            raise pending.pop(0)
        return f"{name} done"

    return Step(name, f"do {name}", action)


def runbook(store: SqliteStore, steps: list[Step], policy: RunbookPolicy = FAST) -> Runbook:
    return Runbook(
        id="rb1", kind="failover", scenario="web01", steps=steps, policy=policy, store=store
    )


async def journal(store: SqliteStore) -> list[tuple[str, str | None, str]]:
    return [(e.kind, e.step, e.message) for e in await store.events(runbook="rb1")]


async def test_steps_run_in_order_and_are_journaled_before_and_after(store: SqliteStore) -> None:
    calls: list[str] = []
    await runbook(store, [recorder(calls, "fence"), recorder(calls, "redirect")]).run()
    assert calls == ["fence", "redirect"]
    assert await journal(store) == [
        ("step_started", "fence", "do fence"),
        ("step_done", "fence", "fence done"),
        ("step_started", "redirect", "do redirect"),
        ("step_done", "redirect", "redirect done"),
    ]


async def test_a_resumed_runbook_skips_finished_steps_and_reruns_the_interrupted_one(
    store: SqliteStore,
) -> None:
    for kind, step in [
        ("step_started", "fence"),
        ("step_done", "fence"),
        ("step_started", "redirect"),
    ]:
        await store.append(JournalEvent(kind=kind, scenario="web01", runbook="rb1", step=step))
    calls: list[str] = []
    steps = [recorder(calls, "fence"), recorder(calls, "redirect"), recorder(calls, "verify")]
    await runbook(store, steps).run()
    assert calls == ["redirect", "verify"]
    done = [step for kind, step, _ in await journal(store) if kind == "step_done"]
    assert done == ["fence", "redirect", "verify"]


async def test_transient_errors_are_retried_and_each_retry_journaled(store: SqliteStore) -> None:
    calls: list[str] = []
    flaky = recorder(calls, "fence", [ProviderError("busy"), ProviderError("busy")])
    await runbook(store, [flaky]).run()
    assert calls == ["fence"] * 3
    assert [kind for kind, _, _ in await journal(store)] == [
        "step_started",
        "step_retry",
        "step_retry",
        "step_done",
    ]


async def test_a_step_failing_past_its_retries_stops_the_runbook(store: SqliteStore) -> None:
    calls: list[str] = []
    broken = recorder(calls, "fence", [ProviderError("host unreachable")] * 3)
    with pytest.raises(StepFailed, match="step fence failed: host unreachable"):
        await runbook(store, [broken, recorder(calls, "redirect")]).run()
    assert calls == ["fence"] * 3
    assert (await journal(store))[-1] == ("step_failed", "fence", "host unreachable")


async def test_not_supported_is_not_retried(store: SqliteStore) -> None:
    calls: list[str] = []
    with pytest.raises(StepFailed, match="cannot revert"):
        await runbook(store, [recorder(calls, "revert", [NotSupported("cannot revert")])]).run()
    assert calls == ["revert"]


async def test_each_attempt_has_a_deadline(store: SqliteStore) -> None:
    async def hang() -> str:
        await asyncio.sleep(10)
        return "never"

    policy = RunbookPolicy(step_timeout=0.1, retries=1, retry_delay=0.01)
    with pytest.raises(StepFailed, match="no result within its deadline of 100ms"):
        await runbook(store, [Step("fence", "hang", hang)], policy).run()
    assert [kind for kind, _, _ in await journal(store)] == [
        "step_started",
        "step_retry",
        "step_failed",
    ]


async def test_attempts_back_off_exponentially(store: SqliteStore) -> None:
    starts: list[float] = []

    async def flaky() -> str:
        starts.append(asyncio.get_running_loop().time())
        if len(starts) < 4:
            raise ProviderError("busy")
        return "done"

    policy = RunbookPolicy(step_timeout=1, retries=3, retry_delay=0.1)
    await runbook(store, [Step("fence", "flaky", flaky)], policy).run()
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert [round(gap, 1) for gap in gaps] == [0.1, 0.2, 0.4]
    retries = [message for kind, _, message in await journal(store) if kind == "step_retry"]
    assert retries == [f"attempt {n} failed: busy" for n in (1, 2, 3)]
