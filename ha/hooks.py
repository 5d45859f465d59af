"""Hooks: operators' own scripts and webhooks, told about (and able to veto) what happens.

``pre_failover`` and ``pre_failback`` run synchronously as the first step of their runbook, with a
timeout: a non-zero exit, a 4xx answer, a timeout or an unreachable webhook vetoes the runbook (the
scenario is blocked with the reason, for an operator). ``post_failover``, ``post_failback`` and
``on_state_change`` run in the background and never delay a runbook.

Every hook gets the event as JSON (stdin for a script, the body for a webhook) and the scenario's
names and addresses as ``HA_*`` environment variables or ``X-HA-*`` headers, never a secret.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ha.duration import Duration
from ha.errors import ActionError
from ha.process import Command, argv_of, run_command

log = structlog.get_logger("ha.hooks")

Report = Callable[["HookConfig", Mapping[str, Any], str, bool], Awaitable[None]]


class HookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="label in the journal")
    command: Command | None = Field(None, description="a script: gets the event JSON on stdin")
    url: str | None = Field(None, pattern=r"^https?://", description="a webhook: POSTed the event")
    timeout: Duration = Field(10.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_action(self) -> HookConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command or url")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.url is not None:
            return self.url
        return argv_of(self.command or "hook")[0]


class HooksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pre_failover: list[HookConfig] = Field(default_factory=list)
    post_failover: list[HookConfig] = Field(default_factory=list)
    pre_failback: list[HookConfig] = Field(default_factory=list)
    post_failback: list[HookConfig] = Field(default_factory=list)
    on_state_change: list[HookConfig] = Field(default_factory=list)


class Vetoed(ActionError):
    """A pre-hook said no (or could not say yes in time)."""


async def run_hook(hook: HookConfig, event: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """Run one hook; return what it said. Raise Vetoed when it did not agree."""
    body = json.dumps(event, default=str).encode()
    if hook.command is not None:
        try:
            result = await run_command(
                argv_of(hook.command), timeout=hook.timeout, env={**hook.env, **env}, stdin=body
            )
        except OSError as exc:
            raise Vetoed(f"hook {hook.label} cannot start: {exc.strerror or exc}") from exc
        if not result.ok:
            raise Vetoed(f"hook {hook.label}: {result.describe()}")
        return f"hook {hook.label}: {result.describe()}"
    import aiohttp  # loaded when a webhook runs, not when a config is validated

    assert hook.url is not None
    headers = {"Content-Type": "application/json"}
    headers.update({"X-" + k.replace("_", "-"): v for k, v in env.items()})
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=hook.timeout)) as session,
            session.post(hook.url, data=body, headers=headers) as response,
        ):
            text = (await response.text())[:200].strip()
    except TimeoutError as exc:
        raise Vetoed(f"hook {hook.label}: no answer within {hook.timeout:g}s") from exc
    except aiohttp.ClientError as exc:
        raise Vetoed(f"hook {hook.label}: {exc}") from exc
    if response.status >= 300:
        raise Vetoed(f"hook {hook.label}: HTTP {response.status} {text}".rstrip())
    return f"hook {hook.label}: HTTP {response.status}"


async def run_pre_hooks(
    hooks: list[HookConfig], event: Mapping[str, Any], env: Mapping[str, str]
) -> str:
    """Run pre-hooks in order; the first that does not agree vetoes (raises Vetoed)."""
    said = [await run_hook(hook, event, env) for hook in hooks]
    return "; ".join(said) or "no hooks"


class Background:
    """Post-hooks in the background: never awaited by a runbook; results reported to a callback."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def fire(
        self,
        hooks: list[HookConfig],
        event: Mapping[str, Any],
        env: Mapping[str, str],
        report: Report,
    ) -> None:
        for hook in hooks:
            task = asyncio.create_task(self._run(hook, event, env, report))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, hook: HookConfig, event: Mapping[str, Any], env: Mapping[str, str], report: Report
    ) -> None:
        try:
            said = await run_hook(hook, event, env)
            ok = True
        except Vetoed as exc:
            said, ok = str(exc), False
        try:
            await report(hook, event, said, ok)
        except Exception:
            log.exception("hook result lost", hook=hook.label)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Other background work that must not hold the loop (kept until it ends)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
