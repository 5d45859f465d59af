"""Runbooks: ordered, idempotent steps, each with a deadline and retries, journaled before and
after.

A runbook resumes from the journal: a step with a ``step_done`` entry is never run again; the
step that was in flight when the daemon died is run again (steps are idempotent); no step is
skipped. A step that fails past its retries raises :class:`StepFailed` (the scenario is blocked).

The retries are a plain loop (the pause doubles from the policy's ``retry_delay``): tenacity's
machinery around each attempt took a quarter of the CPU of a 100-member group failover, for the
first attempt that nearly always succeeds.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from ha.config import RunbookPolicy
from ha.duration import format_duration
from ha.errors import ActionError, NotSupported, StepFailed
from ha.store import JournalEvent, Store

log = structlog.get_logger("ha.runbook")

MAX_PAUSE = 30.0  # seconds between two attempts of a step, at most (the pause doubles)


class RunbookCancelled(Exception):
    """The runbook found nothing to do (production answered at confirmation): back to running."""


class StepError(Exception):
    """A step saw a wrong outcome that may change if tried again (not yet off, not yet healthy)."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    plan: str  # what it will do, in one line (dry run, journal)
    action: Callable[[], Awaitable[str]]  # does it; returns what it did, in one line
    timeout: float | None = None  # overrides the policy's step_timeout
    retries: int | None = None  # overrides the policy's retries


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ActionError | StepError | TimeoutError | OSError) and not isinstance(
        exc, NotSupported
    )


class Runbook:
    def __init__(
        self,
        *,
        id: str,
        kind: str,
        scenario: str,
        steps: Sequence[Step],
        policy: RunbookPolicy,
        store: Store,
    ) -> None:
        self.id = id
        self.kind = kind
        self.scenario = scenario
        self.steps = list(steps)
        self.policy = policy
        self.store = store

    async def done_steps(self) -> set[str]:
        events = await self.store.events(runbook=self.id, limit=100_000)
        return {e.step for e in events if e.kind == "step_done" and e.step}

    async def run(self, *, resume: bool = True) -> None:
        """Run every step not yet done, in order. Raises StepFailed or RunbookCancelled.
        ``resume=False``: the runbook was just started under a new id, so no step is done yet
        (no journal query: a group failover starts a hundred runbooks at once)."""
        done = await self.done_steps() if resume else set()
        for step in self.steps:
            if step.name in done:
                continue
            await self._run_step(step)

    async def _journal(self, kind: str, step: Step, message: str, **data: object) -> None:
        await self.store.append(
            JournalEvent(
                kind=kind,
                scenario=self.scenario,
                runbook=self.id,
                step=step.name,
                message=message,
                data=dict(data),
            )
        )

    async def _run_step(self, step: Step) -> None:
        timeout = step.timeout if step.timeout is not None else self.policy.step_timeout
        retries = step.retries if step.retries is not None else self.policy.retries
        await self._journal("step_started", step, step.plan, timeout=timeout, retries=retries)
        log.info("step started", scenario=self.scenario, runbook=self.id, step=step.name)
        started = time.monotonic()

        async def attempt() -> str:
            try:
                async with asyncio.timeout(timeout):
                    return await step.action()
            except TimeoutError as exc:
                raise StepError(
                    f"no result within its deadline of {format_duration(timeout)}"
                ) from exc

        try:
            for number in itertools.count(1):
                try:
                    detail = await attempt()
                    break
                except Exception as exc:
                    if number > retries or not _retryable(exc):
                        raise
                    await self._journal(
                        "step_retry", step, f"attempt {number} failed: {_describe(exc)}"
                    )
                    await asyncio.sleep(min(self.policy.retry_delay * 2 ** (number - 1), MAX_PAUSE))
        except RunbookCancelled as exc:
            await self._journal("step_done", step, f"cancelled: {exc}", cancelled=True)
            raise
        except Exception as exc:
            reason = _describe(exc)
            await self._journal(
                "step_failed", step, reason, seconds=round(time.monotonic() - started, 3)
            )
            log.warning("step failed", scenario=self.scenario, step=step.name, reason=reason)
            raise StepFailed(step.name, reason) from exc
        seconds = round(time.monotonic() - started, 3)
        await self._journal("step_done", step, detail, seconds=seconds)
        log.info(
            "step done", scenario=self.scenario, step=step.name, detail=detail, seconds=seconds
        )


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return str(exc) or type(exc).__name__
