"""Commands started with posix_spawn and awaited through a pidfd: found like a shell would find
them, exit codes and signals as Popen reports them, and many at once."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from ha.process import run_command


async def test_the_program_is_looked_up_in_the_commands_own_path(tmp_path: Path) -> None:
    tool = tmp_path / "power-tool"
    tool.write_text('#!/bin/sh\necho "$1 is on"\n')
    tool.chmod(0o755)
    result = await run_command(["power-tool", "web01"], timeout=5, env={"PATH": str(tmp_path)})
    assert (result.returncode, result.output) == (0, "web01 is on\n")


async def test_a_missing_program_cannot_start() -> None:
    with pytest.raises(FileNotFoundError, match="No such file or directory: 'no-such-tool'"):
        await run_command(["no-such-tool"], timeout=5)
    with pytest.raises(FileNotFoundError):
        await run_command(["/nonexistent/tool"], timeout=5)


async def test_exit_codes_and_signals_are_reported_as_popen_does() -> None:
    exited = await run_command(["sh", "-c", "exit 7"], timeout=5)
    killed = await run_command(["sh", "-c", "kill -9 $$"], timeout=5)
    assert (exited.returncode, exited.describe()) == (7, "exit 7")
    assert killed.returncode == -9


async def test_stdin_and_a_closed_stdin() -> None:
    given = await run_command(["cat"], timeout=5, stdin=b"event\n")
    closed = await run_command(["cat"], timeout=5)
    assert given.output == "event\n"
    assert closed.output == ""


async def test_two_hundred_commands_at_once_each_with_its_own_output() -> None:
    results = await asyncio.gather(
        *(run_command(["sh", "-c", f"echo {n}; exit {n % 3}"], timeout=30) for n in range(200))
    )
    assert [(r.returncode, r.output) for r in results] == [(n % 3, f"{n}\n") for n in range(200)]


async def test_without_pidfd_commands_are_still_awaited_and_timed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def old_kernel(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", old_kernel)
    done = await run_command(["sh", "-c", "echo ok"], timeout=5)
    hung = await run_command(["sleep", "30"], timeout=0.2)
    assert (done.returncode, done.output) == (0, "ok\n")
    assert (hung.timed_out, hung.returncode) == (True, None)
