"""The script provider: power state and power on/off as user-defined commands.

Each command gets the machine name as ``{machine}`` in its arguments and as ``HA_MACHINE`` in its
environment. ``status`` must print ``on`` or ``off`` (``running``/``stopped`` are accepted too).

Many machines per command: ``status``, ``power_on``, ``power_off`` and ``shutdown`` may take
``{machines}`` instead, as a whole argument: it becomes one argument per machine (and
``HA_MACHINES``, one name per line). Calls that arrive while such a command runs wait for it to
end and then go together in its next run (a lone call runs at once), so a group failover of 100
members fences them with a few commands, not 100. Such a ``status`` prints one line per machine,
``NAME STATE``. A ``power_*`` command that exits 0 has acted on every machine it was given; one
that fails for several machines is run again for each machine alone (the actions are
idempotent), so that each caller learns its own machine's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import Field, model_validator

from ha.duration import Duration
from ha.errors import CommandFailed, NotSupported, ProviderError
from ha.process import OUTPUT_LIMIT, Command, argv_of, run_command
from providers.base import PowerState, Provider, ProviderConfig

MACHINES = "{machines}"
MAX_MACHINES = 500  # per run of a {machines} command; more wait for the next run
OUTPUT_PER_MACHINE = 256  # bytes of output kept per machine, on top of OUTPUT_LIMIT
BATCHABLE = ("status", "power_on", "power_off", "shutdown")

_STATES = {
    "on": PowerState.ON,
    "running": PowerState.ON,
    "poweredon": PowerState.ON,
    "off": PowerState.OFF,
    "stopped": PowerState.OFF,
    "poweredoff": PowerState.OFF,
    "suspended": PowerState.SUSPENDED,
}

Outcome = str | ProviderError  # a machine's output, or its error
RunMany = Callable[[list[str]], Awaitable[dict[str, Outcome]]]


def _batched(command: Command) -> bool:
    return MACHINES in argv_of(command)


class ScriptProviderConfig(ProviderConfig):
    type: Literal["script"]
    status: Command = Field(
        description="prints on or off for {machine} (NAME STATE per line for {machines})"
    )
    power_on: Command
    power_off: Command = Field(description="hard power off (fencing); gets HA_HARD=1")
    shutdown: Command | None = Field(None, description="graceful stop; power_off when unset")
    snapshot: Command | None = Field(None, description="takes snapshot {snapshot}; prints its id")
    revert: Command | None = Field(None, description="reverts {machine} to snapshot {snapshot}")
    delete_snapshot: Command | None = Field(None, description="deletes snapshot {snapshot}")
    timeout: Duration = Field(60.0, gt=0, description="for each command")
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _machines_only_where_batched(self) -> ScriptProviderConfig:
        for name in ("snapshot", "revert", "delete_snapshot"):
            command = getattr(self, name)
            if command is not None and any(MACHINES in arg for arg in argv_of(command)):
                raise ValueError(f"{name}: {MACHINES} is for {', '.join(BATCHABLE)} only")
        for name in BATCHABLE:
            command = getattr(self, name)
            if command is None:
                continue
            argv = argv_of(command)
            if any(MACHINES in arg and arg != MACHINES for arg in argv):
                raise ValueError(f"{name}: {MACHINES} must be a whole argument")
            if MACHINES in argv and any("{machine}" in arg for arg in argv):
                raise ValueError(f"{name}: use {{machine}} or {MACHINES}, not both")
        return self


class ScriptProvider(Provider):
    type = "script"
    Config = ScriptProviderConfig
    config: ScriptProviderConfig

    def __init__(self, name: str, config: ScriptProviderConfig) -> None:
        super().__init__(name, config)
        self._queued: dict[tuple[str, str], list[tuple[str, asyncio.Future[str]]]] = {}
        self._senders: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def _run_for(
        self, action: str, command: Command, machines: list[str], **extra: str
    ) -> str:
        values = {"machine": machines[0], **extra} if len(machines) == 1 else dict(extra)
        argv = [
            m for arg in argv_of(command, values) for m in (machines if arg == MACHINES else [arg])
        ]
        env = {
            **self.config.env,
            "HA_MACHINES": "\n".join(machines),
            **({"HA_MACHINE": machines[0]} if len(machines) == 1 else {}),
            **{f"HA_{k.upper()}": v for k, v in extra.items()},
        }
        who = " ".join(machines)
        try:
            result = await run_command(
                argv,
                timeout=self.config.timeout,
                env=env,
                output_limit=OUTPUT_LIMIT + OUTPUT_PER_MACHINE * (len(machines) - 1),
            )
        except OSError as exc:
            raise ProviderError(f"{action} {who}: cannot start command: {exc}") from exc
        if not result.ok:
            raise ProviderError(f"{action} {who}: {result.describe()}") from CommandFailed(
                result.output
            )
        return result.output.strip()

    async def _run(self, action: str, command: Command, machine: str, **extra: str) -> str:
        if not _batched(command):
            return await self._run_for(action, command, [machine], **extra)

        async def run_many(machines: list[str]) -> dict[str, Outcome]:
            if action == "status":
                return await self._status_many(command, machines)
            return await self._act_many(action, command, machines, **extra)

        key = (action, " ".join(f"{k}={v}" for k, v in sorted(extra.items())))
        return await self._join(key, machine, run_many)

    async def _join(self, key: tuple[str, str], machine: str, run_many: RunMany) -> str:
        """Queue ``machine`` for the next run of the batched command ``key``; its outcome."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(key, []).append((machine, future))
        sender = self._senders.get(key)
        if sender is None or sender.done():
            self._senders[key] = asyncio.create_task(self._send(key, run_many))
        return await future

    async def _send(self, key: tuple[str, str], run_many: RunMany) -> None:
        while self._queued.get(key):
            queued = [(m, f) for m, f in self._queued.pop(key) if not f.done()]
            machines = list(dict.fromkeys(m for m, _ in queued))[:MAX_MACHINES]
            chosen = set(machines)
            batch = [(m, f) for m, f in queued if m in chosen]
            rest = [(m, f) for m, f in queued if m not in chosen]
            if rest:
                self._queued[key] = rest
            if not machines:
                continue
            try:
                outcomes = await run_many(machines)
            except asyncio.CancelledError:  # the provider closes: its callers stop waiting
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # a bug: let every caller see it rather than hang
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for machine, future in batch:
                outcome = outcomes[machine]
                if future.done():
                    continue
                if isinstance(outcome, ProviderError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _status_many(self, command: Command, machines: list[str]) -> dict[str, Outcome]:
        try:
            output = await self._run_for("status", command, machines)
        except ProviderError as exc:
            return dict.fromkeys(machines, exc)
        said: dict[str, str] = {}
        for line in output.splitlines():
            parts = line.strip().rsplit(None, 1)
            if len(parts) == 2:
                said[parts[0]] = parts[1]
        return {
            machine: said.get(machine)
            or ProviderError(f"status {machine}: not in the status command's output")
            for machine in machines
        }

    async def _act_many(
        self, action: str, command: Command, machines: list[str], **extra: str
    ) -> dict[str, Outcome]:
        try:
            await self._run_for(action, command, machines, **extra)
        except ProviderError as exc:
            if len(machines) == 1:
                return {machines[0]: exc}
            alone = await asyncio.gather(
                *(self._act_many(action, command, [m], **extra) for m in machines)
            )
            return {machine: outcome for each in alone for machine, outcome in each.items()}
        return dict.fromkeys(machines, "")

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

    async def close(self) -> None:
        senders = list(self._senders.values())
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        self._senders.clear()
        for queued in self._queued.values():
            for _, future in queued:
                future.cancel()
        self._queued.clear()
