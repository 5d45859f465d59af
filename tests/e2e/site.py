"""Protected sites for end-to-end tests: a config, the daemon as a real subprocess, and the
journal read straight from the SQLite state file.

:class:`DaemonRunner`: the config file, the daemon and what an operator sees of it.
:class:`Site`: two real HTTP services on 127.0.0.2 and 127.0.0.3, run as the demo's machines.
(:class:`tests.e2e.fleet.Fleet`: many file-backed scenarios at once.)"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ha.demo import SERVERS, _free_port, _pid, add_machine
from tests.servers.ports import free_port

NAME = "web"


class DaemonRunner:
    """A config file, the daemon as a real subprocess, and what an operator sees of it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.api_port = free_port()
        self.daemon: subprocess.Popen[bytes] | None = None
        self.config_path = directory / "ha.yaml"
        self.state_path = directory / "ha-state.db"  # the config's state (its default)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.kill()
            self.daemon.wait()
            self.daemon = None

    def ha(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run the ha command as an operator would."""
        return subprocess.run(
            [sys.executable, "-m", "ha", *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_daemon(self) -> None:
        with (self.dir / "daemon.log").open("ab") as log:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "ha", "daemon", "-c", str(self.config_path)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        self.wait_until(lambda: self.api("GET", "/v1/status")[0] == 200, 15, "the API answers")

    def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        if self.daemon is None:
            return None
        daemon, self.daemon = self.daemon, None
        if daemon.poll() is None:
            daemon.send_signal(sig)
        return daemon.wait(timeout)

    def log(self) -> str:
        return (self.dir / "daemon.log").read_text(errors="replace")

    # Reading what a user would see.

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = "file"
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token == "file":
            token_path = self.dir / "ha-token"
            token = token_path.read_text().strip() if token_path.exists() else None
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return 0, None

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.state_path}?mode=ro", uri=True, timeout=5)

    def journal(self) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "select id, kind, step, runbook, message, data, actor, scenario"
                " from journal order by id"
            ).fetchall()
        return [
            {
                "id": r[0],
                "kind": r[1],
                "step": r[2],
                "runbook": r[3],
                "message": r[4],
                "data": json.loads(r[5]),
                "actor": r[6],
                "scenario": r[7],
            }
            for r in rows
        ]

    def state(self, name: str = NAME) -> tuple[str, str]:
        with self._db() as db:
            row = db.execute(
                "select state, active from scenarios where name = ?", (name,)
            ).fetchone()
        return (row[0], row[1]) if row else ("", "")

    def transitions(self, name: str | None = None) -> list[str]:
        return [
            e["message"].split(" (")[0]
            for e in self.journal()
            if e["kind"] == "transition" and (name is None or e["scenario"] == name)
        ]

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.daemon is not None and self.daemon.poll() is not None:
                raise AssertionError(
                    f"the daemon exited while waiting until {what}:\n{self.log()[-3000:]}"
                )
            time.sleep(0.05)
        raise AssertionError(f"not within {timeout}s: {what}\n{self.log()[-3000:]}")

    def wait_state(self, state: str, timeout: float = 15, name: str = NAME) -> None:
        self.wait_until(lambda: self.state(name)[0] == state, timeout, f"{name} is {state}")


class Site(DaemonRunner):
    """Two real HTTP services on 127.0.0.2 (production) and 127.0.0.3 (replica), run as the demo's
    machines, and one scenario protecting them."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = _free_port(list(SERVERS.values()))
        for name, address in SERVERS.items():
            add_machine(directory, name, address, self.port, f"{name}\n")
        self.active = directory / "active-address"
        self.active.write_text(SERVERS["production"] + "\n")

    # Servers.

    def power(self, action: str, name: str) -> None:
        """Power a demo machine on or off the way the daemon's script provider does."""
        subprocess.run(
            [sys.executable, "-m", "ha.demo", "power", action, name, str(self.dir)], check=True
        )

    def pid(self, name: str) -> int | None:
        return _pid(self.dir, name)

    def running_pid(self, name: str) -> int:
        """The PID of a server that must be running: never None or 0, which os.kill would take
        for this test's own process group."""
        pid = self.pid(name)
        assert pid, f"{name} is not running"
        return pid

    def start_servers(self) -> None:
        for name in SERVERS:
            self.power("on", name)

    # Config and daemon.

    def write_config(
        self,
        *,
        mode: str = "automatic",
        failures: int = 2,
        interval: str = "200ms",
        hold_down: str = "0s",
        delay: float = 0.0,
        fence: bool = True,
        gate: bool = False,
        dead_after: str | None = None,
    ) -> Path:
        """``delay``: power and redirect commands take this long; ``gate``: redirecting fails
        until the file ``redirect-allowed`` exists; ``dead_after``: the is-alive timeout."""

        def slow(command: list[str]) -> list[str]:
            if not delay:
                return command
            return ["sh", "-c", f'sleep {delay}; exec "$0" "$@"', *command]

        power_cmd = [sys.executable, "-m", "ha.demo", "power"]
        gate_check = f"test -e {self.dir / 'redirect-allowed'} || exit 1; " if gate else ""
        set_active = f'echo "$HA_ADDRESS" > {self.active}'
        config = {
            "api": {"port": self.api_port},
            "log": {"format": "json", "level": "info"},
            "providers": {
                "lab": {
                    "type": "script",
                    "status": [*power_cmd, "status", "{machine}", str(self.dir)],
                    "power_on": slow([*power_cmd, "on", "{machine}", str(self.dir)]),
                    "power_off": slow([*power_cmd, "off", "{machine}", str(self.dir)]),
                    "timeout": "10s",
                }
            },
            "scenarios": [
                {
                    "name": NAME,
                    "production": {
                        "address": SERVERS["production"],
                        "machine": {"provider": "lab", "name": "production"},
                    },
                    "replica": {
                        "address": SERVERS["replica"],
                        "machine": {"provider": "lab", "name": "replica"},
                    },
                    "checks": [
                        {
                            "kind": "http",
                            "port": self.port,
                            "interval": interval,
                            "timeout": "150ms",
                        }
                    ],
                    "failover": {
                        "mode": mode,
                        "failures": failures,
                        "hold_down": hold_down,
                        **({"dead_after": dead_after} if dead_after else {}),
                    },
                    "fence": fence,
                    "runbook": {
                        "healthy_timeout": "10s",
                        "step_timeout": "10s",
                        "retry_delay": "100ms",
                    },
                    "redirect": [
                        {
                            "script": {
                                "set": slow(
                                    [
                                        "sh",
                                        "-c",
                                        gate_check + set_active,
                                    ]
                                ),
                                "get": slow(["cat", str(self.active)]),
                            }
                        }
                    ],
                }
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.config_path

    def close(self) -> None:
        self.stop()
        for name in SERVERS:
            pid = self.pid(name)
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            self.power("off", name)
