"""The README's first command: the demo protects a three-tier stack (a group) on 127.0.0.2 with
127.0.0.3, rehearses recovery, runs the example playbooks and fails over wave by wave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ha.demo import GROUP, TIERS, _pid

PLAYBOOKS = Path(__file__).parent.parent.parent / "playbooks"


def wait_for(condition: object, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}\n{log.read_text()[-3000:]}")


def test_the_demo_stack_fails_over_together_when_one_production_is_killed(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    log = tmp_path / "demo.log"
    env = {**os.environ, "HA_CONFIG": str(directory / "ha.yaml")}
    machines = [f"{tier}-{side}" for tier in TIERS for side in ("production", "replica")]

    def ha(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ha", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    with log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "ha", "demo", "--dir", str(directory)], stdout=out, stderr=out
        )
    try:
        protected = f"group {GROUP}: protected"
        wait_for(lambda: protected in ha("status").stdout, 20, "the demo's group is protected", log)
        assert "export HA_CONFIG=" in log.read_text()
        assert "demo-web  running  production 127.0.0.2" in ha("status").stdout
        pid = _pid(directory, "web-production")
        again = ha("demo", "--dir", str(directory))  # a second demo there leaves this one be
        assert again.returncode == 1
        assert "is in use by another daemon" in again.stderr
        assert _pid(directory, "web-production") == pid

        # The example playbooks name the demo's group and scenarios: they plan as they are.
        for playbook in sorted(PLAYBOOKS.glob("*.yaml")):
            checked = ha("play", "--check", str(playbook))
            assert checked.returncode == 0, f"{playbook.name}: {checked.stdout}{checked.stderr}"
        # Assured Recovery: the demo's machines are snapshotted and reverted.
        tested = ha("test", "demo-web", "--wait")
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "ar_passed" in tested.stdout
        assert not list((directory / "snapshots").iterdir())

        assert pid, "the demo's web production is not running"
        os.kill(pid, signal.SIGKILL)
        switched = f"group {GROUP}: switched"
        wait_for(lambda: switched in ha("status").stdout, 30, "the stack fails over", log)
        for tier in TIERS:
            assert (directory / f"{tier}.active").read_text().strip() == "127.0.0.3"
        waves = [line for line in ha("events").stdout.splitlines() if "group_wave" in line]
        assert [line.split(": ")[-1].split(" [")[0] for line in waves] == [
            "demo-db",
            "demo-app",
            "demo-web",
        ]

        demo.send_signal(signal.SIGINT)
        assert demo.wait(15) == 0
        assert [m for m in machines if _pid(directory, m)] == []  # the demo stops what it started
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for name in machines:
            subprocess.run(
                [sys.executable, "-m", "ha.demo", "power", "off", name, str(directory)], check=False
            )
