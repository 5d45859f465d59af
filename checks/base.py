"""The check interface: one probe of one server, with a result
(ok/failed, latency, detail).

A check kind is a subclass of :class:`Check` with a ``kind`` name and a pydantic ``Config`` model
(whose ``kind`` field is ``Literal[<name>]``), registered under the ``ha.checks`` entry point group.
The orchestrator builds one instance per side (production, replica), aimed at its address.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ha.duration import Duration

DETAIL_LIMIT = 200


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one probe saw. ``latency`` in seconds; ``detail`` short and free of secrets."""

    ok: bool
    latency: float
    detail: str
    at: float = field(default_factory=time.time)


class CheckConfig(BaseModel):
    """Settings every check kind has. Subclasses add their own and narrow ``kind`` to a Literal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    name: str | None = Field(None, description="label in status and events; defaults to the kind")
    interval: Duration = Field(1.0, gt=0, description="time between two probes")
    timeout: Duration = Field(1.0, gt=0, description="a probe that takes longer has failed")
    follow_up: Duration | None = Field(
        None,
        gt=0,
        description=(
            "while in doubt (the last probe failed, or one is still unanswered this long), start"
            " the next probe this soon after the previous one, without waiting for it to end,"
            " for at most one interval until a probe passes; failures in a row then span"
            " (failures - 1) x follow_up: a shorter blip is tolerated"
        ),
    )
    side: Literal["both", "production", "replica"] = Field(
        "both", description="which servers of the scenario this check probes"
    )

    @field_validator("follow_up")
    @classmethod
    def _follow_up_within_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval")
        if value is not None and interval is not None and value > interval:
            raise ValueError(f"must not exceed interval ({interval:g}s), got {value:g}s")
        return value

    @property
    def label(self) -> str:
        return self.name or self.kind


class CheckFailed(Exception):
    """Raised by :meth:`Check.attempt` to report a failed probe with a short detail."""


class Check(ABC):
    """One probe of one server.

    ``probe()`` never raises for a failed or unreachable target: it returns ``ok=False`` with a
    short detail. It enforces the config's timeout itself. Subclasses implement ``attempt()``.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[CheckConfig]]

    def __init__(self, config: CheckConfig, target: str) -> None:
        self.config = config
        self.target = target

    @abstractmethod
    async def attempt(self) -> str:
        """Probe once; return a short detail on success, raise (CheckFailed or any error) if not."""

    async def probe(self) -> CheckResult:
        """One probe within the config's timeout."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout):
                return await self.probe_untimed()
        except TimeoutError:
            return self.timed_out(time.monotonic() - started)

    async def probe_untimed(self) -> CheckResult:
        """One probe with no timer of its own: the caller cancels it when ``config.timeout``
        has passed and reports :meth:`timed_out` instead. The monitor does, for all its probes
        with a few shared timers: a timer per probe (``asyncio.timeout``) costs ~10 us, a
        seventh of a tcp probe's CPU. An answer that came later than the timeout has failed
        all the same."""
        started = time.monotonic()
        try:
            detail = await self.attempt()
            ok = True
        except TimeoutError:
            ok, detail = False, self._timed_out_detail()
        except CheckFailed as exc:
            ok, detail = False, str(exc)
        except Exception as exc:
            ok, detail = False, describe_error(exc)
        latency = time.monotonic() - started
        if latency > self.config.timeout:
            ok, detail = False, self._timed_out_detail()
        return CheckResult(ok=ok, latency=latency, detail=_truncate(detail))

    def timed_out(self, latency: float) -> CheckResult:
        """The result of a probe cancelled for its timeout after ``latency`` seconds."""
        return CheckResult(ok=False, latency=latency, detail=self._timed_out_detail())

    def _timed_out_detail(self) -> str:
        return f"timed out after {self.config.timeout:g}s"

    async def close(self) -> None:
        """Release what the check holds (sessions, pools). Idempotent."""


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text


def _truncate(detail: str) -> str:
    detail = " ".join(detail.split())
    return detail if len(detail) <= DETAIL_LIMIT else detail[: DETAIL_LIMIT - 1] + "…"
