"""The whole lab: network, production and replica HTTP servers, two BIND9 servers, and the daemon
(a real subprocess) with a scenario protecting ``web.example.test``, all inside the lab.

The daemon, the ``ha`` command and its API calls run in the orchestrator's namespace; so do the
lab's own questions (DNS, HTTP), through a :class:`NamespaceThread`. Production is a machine of a
``script`` provider whose power off (fencing) SIGKILLs the production server by its PID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.site import DaemonRunner
from tests.lab.namespaces import LINKS, LabNetwork, NamespaceThread
from tests.lab.services import DNS_PORTS, LOOPBACK, LabDns, Service, http_server

NAME = "web"
HTTP_PORT = 8080
PRODUCTION, REPLICA = LINKS["prod"].address, LINKS["repl"].address
# on, unless the process is gone or a zombie (the lab, its parent, reaps it only when it stops it)
STATUS = (
    's=$(sed "s/.*) //" /proc/$(cat {pidfile})/stat 2>/dev/null | cut -d" " -f1);'
    ' case "$s" in ""|Z|X) echo off;; *) echo on;; esac'
)


class LabDaemon(DaemonRunner):
    """The daemon, the ``ha`` command and the API, all run inside the orchestrator's namespace."""

    def __init__(self, directory: Path, network: LabNetwork, thread: NamespaceThread) -> None:
        super().__init__(directory)
        self.network, self.thread = network, thread

    def start_daemon(self) -> None:
        argv = [sys.executable, "-m", "ha", "daemon", "-c", str(self.config_path)]
        with (self.dir / "daemon.log").open("ab") as log:
            self.daemon = subprocess.Popen(
                self.network.argv(self.network.orch, argv),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        self.wait_until(lambda: self.api("GET", "/v1/status")[0] == 200, 15, "the API answers")

    def ha(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "ha", *args, "-c", str(self.config_path)]
        return subprocess.run(
            self.network.argv(self.network.orch, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = "file"
    ) -> tuple[int, Any]:
        return self.thread.run(lambda: super(LabDaemon, self).api(method, path, body, token))


class Lab:
    """Everything up; :meth:`close` stops what was started by PID and deletes the namespaces."""

    def __init__(self, root: Path, tag: str) -> None:
        self.root = root
        self.network = LabNetwork(tag)
        self.thread: NamespaceThread | None = None
        self.http: dict[str, Service] = {}
        self.extra: list[Service] = []  # started by a user of the lab, stopped with it
        self.dns: LabDns | None = None
        self.daemon: LabDaemon | None = None

    def up(self) -> None:
        self.network.up()
        self.thread = self.network.thread(self.network.orch)
        self.dns = LabDns(self.network, self.thread)
        for role in DNS_PORTS:
            self.dns.start(role)
        self.dns.write(NAME, PRODUCTION)
        self.http["repl"] = http_server(self.network, self.thread, "repl", HTTP_PORT, self.root)
        self.start_production()
        self.daemon = LabDaemon(self.root, self.network, self.thread)

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        for service in [*self.extra, *self.http.values()]:
            service.stop()
        if self.dns is not None:
            self.dns.close()
        if self.thread is not None:
            self.thread.close()
        self.network.down()

    def start_production(self) -> None:
        """Production's HTTP server; again after a fault (repair): the old one is stopped first."""
        assert self.thread is not None
        if "prod" in self.http:
            self.http["prod"].stop()
        self.http["prod"] = http_server(self.network, self.thread, "prod", HTTP_PORT, self.root)
        (self.root / "prod.pid").write_text(f"{self.http['prod'].pid}\n")

    def fetch(self, address: str, timeout: float = 1.0) -> str | None:
        """What a client in the lab gets from ``http://address/``; None if it cannot connect."""

        def get() -> str | None:
            try:
                with urllib.request.urlopen(
                    f"http://{address}:{HTTP_PORT}/", timeout=timeout
                ) as response:
                    return str(response.read().decode().strip())
            except OSError:
                return None

        assert self.thread is not None
        return self.thread.run(get)

    def write_config(
        self,
        *,
        interval: str = "100ms",
        timeout: str = "200ms",
        failures: int = 2,
        follow_up: str | None = None,
        retries: int = 1,
        port: int = HTTP_PORT,
    ) -> None:
        assert self.daemon is not None
        assert self.dns is not None
        pidfile = self.root / "prod.pid"
        config = {
            "api": {"port": self.daemon.api_port},
            "log": {"format": "json", "level": "info"},
            "dns_servers": {
                "lab": {
                    "address": LOOPBACK,
                    "port": DNS_PORTS["primary"],
                    "tsig": {"secret_file": str(self.dns.key_file)},
                    "timeout": "1s",
                },
                "lab2": {"address": LOOPBACK, "port": DNS_PORTS["secondary"], "timeout": "1s"},
            },
            "providers": {
                "lab": {
                    "type": "script",
                    "status": ["sh", "-c", STATUS.format(pidfile=pidfile)],
                    # the lab repairs production itself (start_production); power on verifies
                    "power_on": ["true"],
                    "power_off": ["sh", "-c", f'kill -KILL "$(cat {pidfile})" 2>/dev/null; true'],
                    "timeout": "5s",
                }
            },
            "scenarios": [
                {
                    "name": NAME,
                    "production": {
                        "address": PRODUCTION,
                        "machine": {"provider": "lab", "name": "prod"},
                    },
                    "replica": {"address": REPLICA},
                    "checks": [
                        {
                            "kind": "http",
                            "port": port,
                            "interval": interval,
                            "timeout": timeout,
                            "follow_up": follow_up,
                        }
                    ],
                    "failover": {"mode": "automatic", "failures": failures, "hold_down": "0s"},
                    "fence": True,
                    "runbook": {
                        "step_timeout": "5s",
                        "retries": retries,
                        "retry_delay": "200ms",
                        "healthy_timeout": "10s",
                    },
                    "redirect": [
                        {
                            "dns": {
                                "server": "lab",
                                "zone": "example.test",
                                "name": NAME,
                                "ttl": 30,
                                "verify": {"servers": ["lab", "lab2"], "deadline": "5s"},
                            }
                        }
                    ],
                }
            ],
        }
        self.daemon.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


@contextmanager
def running_lab(root: Path, tag: str | None = None) -> Iterator[Lab]:
    """A lab that is up inside the block and completely gone after it, even on failure."""
    lab = Lab(root, tag or str(os.getpid()))
    try:
        lab.up()
        yield lab
    finally:
        lab.close()
