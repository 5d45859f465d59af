"""The script check running real commands: exit status, output, target, timeout and cleanup."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from checks.base import DETAIL_LIMIT
from checks.script import ScriptCheck

SPAWNS_A_SLEEPER = """\
sleep 60 &
echo $! > "$1"
echo started a sleeper
wait
"""


def script_check(
    command: str | list[str], target: str = "127.0.0.2", **settings: Any
) -> ScriptCheck:
    config = ScriptCheck.Config.model_validate({"kind": "script", "command": command, **settings})
    return ScriptCheck(config, target)


async def test_exit_zero_is_alive() -> None:
    result = await script_check(["sh", "-c", "echo checking; echo alive"]).probe()

    assert (result.ok, result.detail) == (True, "alive")
    assert result.latency > 0


async def test_exit_zero_without_output() -> None:
    result = await script_check("true").probe()

    assert (result.ok, result.detail) == (True, "exit 0")


async def test_non_zero_exit_is_dead() -> None:
    result = await script_check(["sh", "-c", "echo replica lag 300s >&2; exit 3"]).probe()

    assert (result.ok, result.detail) == (False, "exit 3: replica lag 300s")


async def test_target_as_env_and_placeholder() -> None:
    command = "sh -c 'echo \"env=$HA_TARGET arg=$0\"' {target}"

    result = await script_check(command, target="127.0.0.3").probe()

    assert (result.ok, result.detail) == (True, "env=127.0.0.3 arg=127.0.0.3")


async def test_extra_env() -> None:
    check = script_check(["sh", "-c", 'echo "$GREETING"'], env={"GREETING": "hello there"})

    result = await check.probe()

    assert (result.ok, result.detail) == (True, "hello there")


async def test_long_last_line_is_truncated() -> None:
    result = await script_check(["sh", "-c", "printf 'x%.0s' $(seq 500)"]).probe()

    assert result.ok is True
    assert result.detail == "x" * (DETAIL_LIMIT - 1) + "…"


async def test_missing_program() -> None:
    result = await script_check("/nonexistent/probe --fast").probe()

    expected = "cannot run /nonexistent/probe: No such file or directory"
    assert (result.ok, result.detail) == (False, expected)


async def test_timeout_kills_the_script_and_its_children(tmp_path: Path) -> None:
    script, pid_file = tmp_path / "probe.sh", tmp_path / "sleeper.pid"
    script.write_text(SPAWNS_A_SLEEPER)
    check = script_check(["sh", str(script), str(pid_file)], timeout="500ms")

    result = await check.probe()

    assert (result.ok, result.detail) == (False, "timed out after 0.5s")
    assert result.latency < 1.5
    sleeper = int(pid_file.read_text())
    assert await gone(sleeper), f"the script's child {sleeper} is still running"


async def gone(pid: int, within: float = 2.0) -> bool:
    """The process has exited (a zombie counts: PID 1 here may not reap orphans)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_state(pid) in (None, "Z"):
            return True
        await asyncio.sleep(0.02)
    return False


def process_state(pid: int) -> str | None:
    """The state letter in /proc/PID/stat (R, S, Z...), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "Value error, empty command"),
        ([], "Value error, empty command"),
        ("check --name 'unclosed", "Value error, No closing quotation"),
    ],
)
def test_command_errors(command: str | list[str], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScriptCheck.Config.model_validate({"kind": "script", "command": command})

    assert [(error["loc"], error["msg"]) for error in caught.value.errors()] == [
        (("command",), message)
    ]
