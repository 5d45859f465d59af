"""Script check: a user-defined command decides; exit 0 means alive.

The target reaches the command as the ``HA_TARGET`` environment variable and as the ``{target}``
placeholder in its arguments. The command runs without a shell, within the check's timeout; one
that outlives it is killed with its whole process group (see ``ha.process``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from checks.base import Check, CheckConfig, CheckFailed, describe_error
from ha.process import Command, argv_of, run_command


class ScriptConfig(CheckConfig):
    kind: Literal["script"]
    command: Command = Field(description="arguments, or a string split like a shell would")
    env: dict[str, str] = Field({}, description="extra environment variables")

    @field_validator("command")
    @classmethod
    def _splits(cls, command: Command) -> Command:
        argv_of(command)
        return command


class ScriptCheck(Check):
    kind: ClassVar[str] = "script"
    Config: ClassVar[type[CheckConfig]] = ScriptConfig
    config: ScriptConfig

    async def attempt(self) -> str:
        argv = argv_of(self.config.command, {"target": self.target})
        env = {**self.config.env, "HA_TARGET": self.target}
        try:
            result = await run_command(argv, timeout=self.config.timeout, env=env)
        except OSError as exc:
            raise CheckFailed(f"cannot run {argv[0]}: {describe_error(exc)}") from exc
        if not result.ok:
            raise CheckFailed(result.describe())
        lines = result.output.strip().splitlines()
        return lines[-1] if lines else "exit 0"
