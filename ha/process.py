"""Running user-defined commands: argv (never a shell), env, timeout, captured and truncated output.

A command that outlives its timeout is killed with its whole process group, so that a script that
started children leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shlex
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OUTPUT_LIMIT = 4096
POLL = 0.01  # seconds between two looks at a command that has not ended, without pidfd

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
    stdin: bytes | None = None,
    output_limit: int = OUTPUT_LIMIT,
) -> CommandResult:
    """Run argv with the given extra environment; never raises for the command's own failure.

    Output goes to a temporary file, not a pipe, so that a child that outlives the command (and
    keeps its stdout) cannot hold us past the command's own exit or its timeout.
    ``stdin`` is written to the command's standard input from a temporary file as well.
    Only the last ``output_limit`` bytes of output are kept.
    Raises OSError only when the program cannot be started at all (not found, not executable).

    Started with posix_spawn (vfork and exec: no copy of this process's memory) in a new session,
    and awaited through a pidfd on the event loop (no thread per command): a group failover may
    run hundreds of commands at once.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as given:
        if stdin:
            given.write(stdin)
            given.seek(0)
        pid = _spawn(argv, full_env, given.fileno() if stdin else None, output.fileno())
        code: int | None = None
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                code = await _wait(pid)
        except TimeoutError:
            timed_out = True
        finally:
            if code is None:
                _kill_group(pid)
                code = await _wait(pid)
        size = output.seek(0, os.SEEK_END)
        output.seek(max(0, size - output_limit))
        text = output.read().decode("utf-8", "replace")
    return CommandResult(returncode=None if timed_out else code, output=text, timed_out=timed_out)


def _spawn(argv: Sequence[str], env: dict[str, str], stdin: int | None, output: int) -> int:
    """Start argv (looked up in ``env``'s PATH, as a shell would) with stdin (or /dev/null) and
    stdout and stderr to ``output``, in a new session; its pid."""
    program = argv[0]
    if os.sep not in program:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        program = found
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_DUP2, output, 1),
        (os.POSIX_SPAWN_DUP2, output, 2),
    ]
    if stdin is None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    else:
        actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
    return os.posix_spawn(program, list(argv), env, file_actions=actions, setsid=True)


async def _wait(pid: int) -> int:
    """Wait for ``pid`` to end and reap it; its exit code (-N: killed by signal N)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # a kernel before Linux 5.3
        return await _wait_polling(pid)
    try:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(pidfd, _set_done, exited)
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)
    code = _reap(pid)
    assert code is not None  # its pidfd said it ended
    return code


async def _wait_polling(pid: int) -> int:
    """Without a pidfd: look every POLL seconds."""
    while True:
        code = _reap(pid)
        if code is not None:
            return code
        await asyncio.sleep(POLL)


def _reap(pid: int) -> int | None:
    """The exit code of ``pid`` if it has ended (and reap it), else None; never blocks."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
