"""The script redirector: user-defined commands that repoint users and read back where they go.

``set`` gets the new address as ``{address}`` and ``HA_ADDRESS``; ``get`` prints the address users
are sent to now (its last line). Both get ``HA_SCENARIO``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ha.duration import Duration
from ha.errors import RedirectError
from ha.process import Command, argv_of, run_command
from ha.redirect import Redirector, Target


class ScriptRedirectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    set: Command = Field(description="points users at {address}")
    get: Command | None = Field(None, description="prints the address users are sent to now")
    timeout: Duration = Field(30.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)


class ScriptRedirector(Redirector):
    def __init__(self, target: Target, config: ScriptRedirectConfig) -> None:
        self.scenario = target.scenario
        self.config = config

    async def _run(self, action: str, command: Command, address: str = "") -> str:
        env = {**self.config.env, "HA_SCENARIO": self.scenario, "HA_ADDRESS": address}
        try:
            result = await run_command(
                argv_of(command, {"address": address, "scenario": self.scenario}),
                timeout=self.config.timeout,
                env=env,
            )
        except OSError as exc:
            raise RedirectError(f"redirect {action}: cannot start command: {exc}") from exc
        if not result.ok:
            raise RedirectError(f"redirect {action}: {result.describe()}")
        return result.output.strip()

    async def point_to(self, address: str) -> None:
        await self._run("set", self.config.set, address)

    async def current(self) -> str | None:
        if self.config.get is None:
            return None
        output = await self._run("get", self.config.get)
        lines = output.splitlines()
        return lines[-1].strip() if lines else None

    def describe(self, address: str) -> str:
        return f"script redirect: point users at {address}"
