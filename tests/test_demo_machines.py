"""The demo's machines (HTTP services it powers on and off): a machine killed behind the demo's
back is off, also while its process is a zombie the demo has not reaped, so it can be powered on
again; snapshots copy what a machine serves and revert it in place."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from ha.demo import _free_port, _pid, add_machine, power, snapshot


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/", timeout=5) as answer:
        return str(answer.read().decode())


def test_a_killed_machine_is_off_and_powers_on_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port(["127.0.0.2"])
    add_machine(tmp_path, "web-production", "127.0.0.2", port, "first\n")
    try:
        power("on", "web-production", tmp_path)  # a child of this process, as in the demo
        pid = _pid(tmp_path, "web-production")
        assert pid is not None
        assert page(port) == "first\n"
        os.kill(pid, signal.SIGKILL)  # not reaped by anyone but us: a zombie meanwhile
        deadline = time.monotonic() + 5
        while _pid(tmp_path, "web-production") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        capsys.readouterr()
        power("status", "web-production", tmp_path)
        assert capsys.readouterr().out == "off\n"

        assert snapshot("snapshot", "web-production", "s1", tmp_path) == 0
        (tmp_path / "web-production" / "index.html").write_text("changed\n")
        power("on", "web-production", tmp_path)
        assert page(port) == "changed\n"
        assert snapshot("revert", "web-production", "s1", tmp_path) == 0  # while it serves
        assert page(port) == "first\n"
        assert snapshot("delete", "web-production", "s1", tmp_path) == 0
        assert snapshot("revert", "web-production", "s1", tmp_path) == 1
    finally:
        power("off", "web-production", tmp_path)
    assert _pid(tmp_path, "web-production") is None
