"""`ha ... | head`: the CLI stops quietly when the reader of its output goes away."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "ha", "schema"],  # 88 KB of output, no daemon needed
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    ) as command:
        assert command.stdout is not None
        assert command.stderr is not None
        assert command.stdout.read(10)
        command.stdout.close()  # as `head` does once it has its lines
        errors = command.stderr.read().decode()
        assert command.wait(timeout=30) == 141, errors  # 128 + SIGPIPE, as a shell tool's
    assert errors == ""  # no traceback
