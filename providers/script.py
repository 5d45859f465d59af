"""The script provider: power state and power on/off as user-defined commands.

Each command gets the machine name as ``{machine}`` in its arguments and as ``HA_MACHINE`` in its
environment. ``status`` must print ``on`` or ``off`` (``running``/``stopped`` are accepted too).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ha.duration import Duration
from ha.errors import CommandFailed, NotSupported, ProviderError
from ha.process import Command, argv_of, run_command
from providers.base import PowerState, Provider, ProviderConfig

_STATES = {
    "on": PowerState.ON,
    "running": PowerState.ON,
    "poweredon": PowerState.ON,
    "off": PowerState.OFF,
    "stopped": PowerState.OFF,
    "poweredoff": PowerState.OFF,
    "suspended": PowerState.SUSPENDED,
}


class ScriptProviderConfig(ProviderConfig):
    type: Literal["script"]
    status: Command = Field(description="prints on or off for {machine}")
    power_on: Command
    power_off: Command = Field(description="hard power off (fencing); gets HA_HARD=1")
    shutdown: Command | None = Field(None, description="graceful stop; power_off when unset")
    snapshot: Command | None = Field(None, description="takes snapshot {snapshot}; prints its id")
    revert: Command | None = Field(None, description="reverts {machine} to snapshot {snapshot}")
    delete_snapshot: Command | None = Field(None, description="deletes snapshot {snapshot}")
    timeout: Duration = Field(60.0, gt=0, description="for each command")
    env: dict[str, str] = Field(default_factory=dict)


class ScriptProvider(Provider):
    type = "script"
    Config = ScriptProviderConfig
    config: ScriptProviderConfig

    async def _run(self, action: str, command: Command, machine: str, **extra: str) -> str:
        values = {"machine": machine, **extra}
        env = {
            **self.config.env,
            "HA_MACHINE": machine,
            **{f"HA_{k.upper()}": v for k, v in extra.items()},
        }
        try:
            result = await run_command(
                argv_of(command, values), timeout=self.config.timeout, env=env
            )
        except OSError as exc:
            raise ProviderError(f"{action} {machine}: cannot start command: {exc}") from exc
        if not result.ok:
            raise ProviderError(f"{action} {machine}: {result.describe()}") from CommandFailed(
                result.output
            )
        return result.output.strip()

    async def power_state(self, machine: str) -> PowerState:
        output = await self._run("status", self.config.status, machine)
        word = output.splitlines()[-1].strip().lower().replace(" ", "") if output else ""
        state = _STATES.get(word)
        if state is None:
            raise ProviderError(f"status {machine}: expected on or off, got {output[:60]!r}")
        return state

    async def power_on(self, machine: str) -> None:
        await self._run("power_on", self.config.power_on, machine)

    async def power_off(self, machine: str, *, hard: bool) -> None:
        command = (
            self.config.power_off if hard or self.config.shutdown is None else self.config.shutdown
        )
        await self._run("power_off", command, machine, hard="1" if hard else "0")

    async def snapshot(self, machine: str, name: str) -> str:
        if self.config.snapshot is None:
            raise NotSupported(f"provider {self.name}: no snapshot command configured")
        return await self._run("snapshot", self.config.snapshot, machine, snapshot=name) or name

    async def revert(self, machine: str, snapshot: str) -> None:
        if self.config.revert is None:
            raise NotSupported(f"provider {self.name}: no revert command configured")
        await self._run("revert", self.config.revert, machine, snapshot=snapshot)

    async def delete_snapshot(self, machine: str, snapshot: str) -> None:
        if self.config.delete_snapshot is None:
            raise NotSupported(f"provider {self.name}: no delete_snapshot command configured")
        await self._run("delete_snapshot", self.config.delete_snapshot, machine, snapshot=snapshot)
