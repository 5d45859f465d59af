"""The README's first command: the demo protects 127.0.0.2 with 127.0.0.3 and fails over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ha.demo import _pid


def wait_for(condition: object, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}\n{log.read_text()[-3000:]}")


def test_the_demo_fails_over_when_production_is_killed(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    log = tmp_path / "demo.log"
    env = {**os.environ, "HA_CONFIG": str(directory / "ha.yaml")}

    def ha(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "ha", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    with log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "ha", "demo", "--dir", str(directory)], stdout=out, stderr=out
        )
    try:
        wait_for(lambda: "http ok" in ha("status"), 20, "the demo's status shows http ok", log)
        assert "export HA_CONFIG=" in log.read_text()
        assert "demo-web  running  production 127.0.0.2" in ha("status")

        pid = _pid(directory, "production")
        assert pid, "the demo's production is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: "switched" in ha("status"), 20, "the demo fails over", log)
        assert "replica 127.0.0.3" in ha("status")
        assert (directory / "active-address").read_text().strip() == "127.0.0.3"

        demo.send_signal(signal.SIGINT)
        assert demo.wait(15) == 0
        assert _pid(directory, "replica") is None  # the demo stops what it started
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for name in ("production", "replica"):
            subprocess.run(
                [sys.executable, "-m", "ha.demo", "power", "off", name, str(directory)], check=False
            )
