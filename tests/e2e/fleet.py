"""A fleet for end-to-end tests: several scenarios whose servers are alive while a file exists,
probed by real ``script`` checks, with a script provider and a script redirector; for what needs
many scenarios at once (groups, playbooks, the API and the dashboard)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ha.demo import SERVERS
from tests.e2e.site import DaemonRunner


class Fleet(DaemonRunner):
    """Scenarios s1..sN: server ADDRESS of scenario NAME is alive while ``NAME@ADDRESS.alive``
    exists; redirection writes ``NAME.active``."""

    def __init__(self, directory: Path, count: int) -> None:
        super().__init__(directory)
        self.names = [f"s{i}" for i in range(1, count + 1)]
        for name in self.names:
            for address in SERVERS.values():
                self.alive(name, address, True)

    def alive(self, name: str, address: str, alive: bool) -> None:
        _flag(self.dir / f"{name}@{address}.alive", alive)

    def replica_seen(self, name: str, alive: bool) -> None:
        """Make ``name``'s replica answer or not, and wait until the daemon sees it so."""
        self.alive(name, SERVERS["replica"], alive)
        self.wait_until(
            lambda: self.api("GET", f"/v1/scenarios/{name}")[1]["replica"]["dead"] is not alive,
            10,
            f"{name}'s replica {'alive' if alive else 'dead'}",
        )

    def kill(self, name: str) -> None:
        self.alive(name, SERVERS["production"], False)

    def revive(self, name: str) -> None:
        self.alive(name, SERVERS["production"], True)

    def active(self, name: str) -> str:
        path = self.dir / f"{name}.active"
        return path.read_text().strip() if path.exists() else ""

    def primary(self, name: str, address: str, primary: bool) -> None:
        """Make ``address`` of scenario ``name`` answer (or not) as active to its active_check."""
        _flag(self.dir / f"{name}@{address}.primary", primary)

    def fenced(self, machine: str) -> bool:
        return (self.dir / f"{machine}.off").exists()

    def gate(self, name: str) -> dict[str, Any]:
        """Hooks that hold ``name``'s failovers and switchovers at their first step until
        open_gate (for ``hooks=``)."""
        wait = f"test {{name}} != {name} || until test -e {self.dir}/gate; do sleep 0.05; done"
        return {"pre_failover": [{"name": "gate", "command": ["sh", "-c", wait], "timeout": "30s"}]}

    def open_gate(self) -> None:
        (self.dir / "gate").touch()

    def ha_interrupted(self, *args: str, once: str) -> subprocess.CompletedProcess[str]:
        """Run the ha command and press Ctrl-C (SIGINT) once ``once``'s runbook started."""
        argv = [sys.executable, "-m", "ha", *args, "-c", str(self.config_path)]
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as command:
            try:
                self.wait_runbook(once)
                command.send_signal(signal.SIGINT)
                out, err = command.communicate(timeout=10)
            finally:
                command.kill()
        return subprocess.CompletedProcess(argv, command.returncode, out, err)

    def wait_runbook(self, name: str) -> None:
        """Until a runbook of ``name`` started a step."""
        self.wait_until(
            lambda: any(
                e["kind"] == "step_started" and e["scenario"] == name for e in self.journal()
            ),
            10,
            f"{name}'s runbook started",
        )

    def write_config(
        self,
        safety: dict[str, Any] | None = None,
        groups: list[dict[str, Any]] | None = None,
        fence_fails: bool = False,
        active_check: bool = False,
        **scenario: Any,
    ) -> Path:
        """``scenario`` entries (failover, failback, hooks, fence...) apply to every scenario.
        Fencing powers a machine off by creating MACHINE.off, or fails with ``fence_fails``."""
        failover = {"failures": 2, "hold_down": "0s", **scenario.pop("failover", {})}
        off = f"{self.dir}/{{machine}}.off"
        power_off = ["sh", "-c", "echo host unreachable; exit 1"] if fence_fails else ["touch", off]
        if active_check:
            primary = ["test", "-e", f"{self.dir}/{{name}}@{{target}}.primary"]
            scenario["split"] = {"active_check": {"kind": "script", "command": primary}}
        config: dict[str, Any] = {
            "api": {"port": self.api_port},
            "log": {"format": "json"},
            "safety": safety or {},
            "groups": groups or [],
            "providers": {
                "lab": {
                    "type": "script",
                    "status": ["sh", "-c", f"test -e {off} && echo off || echo on"],
                    "power_on": ["rm", "-f", off],
                    "power_off": power_off,
                }
            },
            "scenarios": [
                {
                    "name": name,
                    "production": {
                        "address": SERVERS["production"],
                        "machine": {"provider": "lab", "name": f"{name}-prod"},
                    },
                    "replica": {"address": SERVERS["replica"]},
                    "checks": [
                        {
                            "kind": "script",
                            "command": ["test", "-e", f"{self.dir}/{name}@{{target}}.alive"],
                            "interval": "200ms",
                            "timeout": "1s",
                        }
                    ],
                    "failover": failover,
                    "runbook": {"retry_delay": "100ms", "healthy_timeout": "5s"},
                    "redirect": [
                        {
                            "script": {
                                "set": [
                                    "sh",
                                    "-c",
                                    f'echo "$HA_ADDRESS" > {self.dir}/{name}.active',
                                ],
                                "get": [
                                    "sh",
                                    "-c",
                                    f"cat {self.dir}/{name}.active 2>/dev/null || true",
                                ],
                            }
                        }
                    ],
                    **_fill_name(scenario, name),
                }
                for name in self.names
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.config_path


def _flag(path: Path, on: bool) -> None:
    if on:
        path.touch()
    else:
        path.unlink(missing_ok=True)


def _fill_name(value: Any, name: str) -> Any:
    """``{name}`` in the strings of per-scenario settings becomes the scenario's name."""
    if isinstance(value, str):
        return value.replace("{name}", name)
    if isinstance(value, list):
        return [_fill_name(v, name) for v in value]
    if isinstance(value, dict):
        return {k: _fill_name(v, name) for k, v in value.items()}
    return value
