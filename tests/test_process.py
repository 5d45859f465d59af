"""User-defined commands: argv without a shell, output kept short, timeouts kill the group."""

from __future__ import annotations

import time

from ha.process import OUTPUT_LIMIT, argv_of, run_command


def test_placeholders_are_filled_after_splitting() -> None:
    argv = argv_of("power-on --vm {machine}", {"machine": "web 01; rm -rf /"})
    assert argv == ["power-on", "--vm", "web 01; rm -rf /"]


async def test_output_is_captured_and_keeps_its_tail() -> None:
    result = await run_command(
        ["sh", "-c", f"head -c {OUTPUT_LIMIT * 3} /dev/zero | tr '\\\\0' x; echo; echo last line"],
        timeout=5,
    )
    assert result.ok
    assert len(result.output) == OUTPUT_LIMIT
    assert result.describe() == "exit 0: last line"


async def test_a_timeout_kills_the_whole_process_group() -> None:
    started = time.monotonic()
    result = await run_command(["sh", "-c", "sleep 30 & sleep 30; echo never"], timeout=0.3)
    assert time.monotonic() - started < 5
    assert result.timed_out
    assert result.returncode is None
    assert result.describe() == "timed out"


async def test_a_child_that_keeps_stdout_does_not_hold_the_command() -> None:
    started = time.monotonic()
    result = await run_command(["sh", "-c", "setsid sleep 3 & echo started"], timeout=10)
    assert time.monotonic() - started < 2
    assert result.ok
    assert result.output.strip() == "started"
