"""Running user-defined commands: argv (never a shell), env, timeout, captured and truncated output.

A command that outlives its timeout is killed with its whole process group, so that a script that
started children leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OUTPUT_LIMIT = 4096

Command = str | list[str]
"""A command as written in config: a list of arguments, or a string split like a shell would."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int | None  # None when it was killed for its timeout
    output: str  # stdout and stderr interleaved, the last output_limit bytes
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        status = "timed out" if self.timed_out else f"exit {self.returncode}"
        last = self.output.strip().splitlines()[-1:] if self.output.strip() else []
        return f"{status}: {last[0]}" if last else status


def argv_of(command: Command, substitutions: Mapping[str, str] | None = None) -> list[str]:
    """Split a string command like a shell would, then fill ``{name}`` placeholders per argument.

    Placeholders are substituted after splitting, so a value can never add or split arguments.
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("empty command")
    if substitutions:
        argv = [_fill(arg, substitutions) for arg in argv]
    return argv


def _fill(arg: str, substitutions: Mapping[str, str]) -> str:
    for key, value in substitutions.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


async def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: bytes | None = None,
    output_limit: int = OUTPUT_LIMIT,
) -> CommandResult:
    """Run argv with the given extra environment; never raises for the command's own failure.

    Output goes to a temporary file, not a pipe, so that a child that outlives the command (and
    keeps its stdout) cannot hold us past the command's own exit or its timeout.
    ``stdin`` is written to the command's standard input from a temporary file as well.
    Only the last ``output_limit`` bytes of output are kept.
    Raises OSError only when the program cannot be started at all (not found, not executable).
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as given:
        if stdin:
            given.write(stdin)
            given.seek(0)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=given if stdin else asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                await proc.wait()
        size = output.seek(0, os.SEEK_END)
        output.seek(max(0, size - output_limit))
        text = output.read().decode("utf-8", "replace")
    return CommandResult(
        returncode=None if timed_out else proc.returncode, output=text, timed_out=timed_out
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
