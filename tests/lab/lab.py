"""The whole lab: network, production and replica HTTP servers (and PostgreSQL servers when asked
for), two BIND9 servers, and the daemon (a real subprocess) with a scenario protecting
``web.example.test`` (and ``db.example.test``), all inside the lab.

The daemon, the ``ha`` command and its API calls run in the orchestrator's namespace; so do the
lab's own questions (DNS, HTTP), through a :class:`NamespaceThread`. Production is a machine of a
``script`` provider whose power off (fencing) SIGKILLs the production server by its PID.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from tests.e2e.site import DaemonRunner
from tests.lab.namespaces import LINKS, LabNetwork, NamespaceThread
from tests.lab.services import (
    DNS_PORTS,
    LOOPBACK,
    PG_PORT,
    LabDns,
    LabPostgres,
    Service,
    http_server,
)

NAME = "web"
DB_NAME = "db"
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

    def __init__(self, root: Path, tag: str, postgres: bool = False) -> None:
        self.root = root
        self.with_postgres = postgres
        self.postgres: dict[str, LabPostgres] = {}  # by side, when asked for
        self.pg_password_file = root / "pg.password"
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
        if self.with_postgres:
            self.dns.write(DB_NAME, PRODUCTION)
            password = secrets.token_urlsafe(16)  # the same on both sides, as the check has one
            self.pg_password_file.write_text(password + "\n")
            self.pg_password_file.chmod(0o600)
            for side in ("repl", "prod"):
                self.postgres[side] = LabPostgres(
                    self.network, self.thread, side, self.root, password
                )
                self.postgres[side].start()
            (self.root / "prod-db.pid").write_text(f"{self.postgres['prod'].pid}\n")
        self.daemon = LabDaemon(self.root, self.network, self.thread)

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        for service in [*self.extra, *self.http.values()]:
            service.stop()
        for postgres in self.postgres.values():
            postgres.close()
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

    def database_answer(self, address: str, query: str, timeout: float = 2.0) -> str | None:
        """What a client in the lab gets from the PostgreSQL server at ``address`` for ``query``
        (the first column of the first row, as text), logged in as ``ha``; None if it cannot."""
        side = "prod" if address == PRODUCTION else "repl"
        password = self.postgres[side].password

        async def ask() -> str | None:
            try:
                connection = await asyncpg.connect(
                    host=address,
                    port=PG_PORT,
                    user="ha",
                    password=password,
                    database="postgres",
                    timeout=timeout,
                )
            except (OSError, asyncpg.PostgresError, TimeoutError):
                return None
            try:
                return str(await connection.fetchval(query))
            finally:
                await connection.close()

        assert self.thread is not None
        return self.thread.run(lambda: asyncio.run(ask()))

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
        """The web scenario (an http check); with the lab's PostgreSQL servers, the db scenario
        too (a database check), each with its own DNS name and its own machine to fence."""
        assert self.daemon is not None
        assert self.dns is not None
        pidfile = f"{self.root}/$HA_MACHINE.pid"
        probing = {"interval": interval, "timeout": timeout, "follow_up": follow_up}
        http = {"kind": "http", "port": port, **probing}
        scenarios = [self._scenario(NAME, "prod", http, failures, retries)]
        if self.postgres:
            database = {
                "kind": "database",
                "driver": "postgresql",
                "port": PG_PORT,
                "user": "ha",
                "database": "postgres",
                "password_file": str(self.pg_password_file),
                **probing,
            }
            scenarios.append(self._scenario(DB_NAME, "prod-db", database, failures, retries))
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
            "scenarios": scenarios,
        }
        self.daemon.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    @staticmethod
    def _scenario(
        name: str, machine: str, check: dict[str, Any], failures: int, retries: int
    ) -> dict[str, Any]:
        return {
            "name": name,
            "production": {"address": PRODUCTION, "machine": {"provider": "lab", "name": machine}},
            "replica": {"address": REPLICA},
            "checks": [check],
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
                        "name": name,
                        "ttl": 30,
                        "verify": {"servers": ["lab", "lab2"], "deadline": "5s"},
                    }
                }
            ],
        }


@contextmanager
def running_lab(root: Path, tag: str | None = None, postgres: bool = False) -> Iterator[Lab]:
    """A lab that is up inside the block and completely gone after it, even on failure; with
    ``postgres``, production and replica each run a PostgreSQL server too."""
    lab = Lab(root, tag or str(os.getpid()), postgres)
    try:
        lab.up()
        yield lab
    finally:
        lab.close()
