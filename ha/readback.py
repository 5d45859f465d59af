"""Reading redirections back, now and then: users sent to the standby side is a split.

Runs in the background (a redirector may be slow); what it finds goes to the daemon's loop as a
report, and the loop checks that the scenario is still in the state it was read in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog

from ha.errors import ActionError
from ha.scenario import Scenario
from ha.steps import Parts

log = structlog.get_logger("ha.readback")

READ_DEADLINE = 10.0


class ReadBack:
    def __init__(
        self, parts: Mapping[str, Parts], report: Callable[[str, str, str, str | None], None]
    ) -> None:
        self.parts = parts
        self.report = report  # (scenario, trigger, reason, the active side it was read against)
        self.due: dict[str, float] = {}  # the scenarios watched: the next read
        self.tasks: set[asyncio.Task[None]] = set()

    def watch(self, parts: Parts) -> None:
        """Read a scenario's redirections back every ``split.redirect_interval``, if it has both."""
        if parts.scenario.config.split.redirect_interval is not None and parts.redirectors:
            self.due[parts.scenario.name] = 0.0

    def schedule(self, now: float) -> None:
        for name, due in self.due.items():
            scenario = self.parts[name].scenario
            interval = scenario.config.split.redirect_interval
            if now < due or scenario.state not in ("running", "switched") or interval is None:
                continue
            self.due[name] = now + interval
            task = asyncio.create_task(self._read(scenario))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _read(self, scenario: Scenario) -> None:
        standby, active = scenario.standby, scenario.record.active
        wrong = scenario.address(standby)
        for redirector in self.parts[scenario.name].redirectors:
            try:
                async with asyncio.timeout(READ_DEADLINE):
                    current = await redirector.current()
            except (ActionError, TimeoutError) as exc:
                log.warning("cannot read redirection back", scenario=scenario.name, error=str(exc))
                continue
            if current == wrong:
                reason = f"users are sent to {current} ({standby}) while {active} is active"
                self.report(scenario.name, "split", reason, active)
                return

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
