"""A real PostgreSQL server for tests: a throwaway cluster on 127.0.0.1 with password auth over TCP.

initdb and postgres refuse to run as root, so (as CI runs as root) the cluster lives in a temp dir
under /tmp owned by the ``postgres`` user and every server command runs through ``runuser``.
"""

from __future__ import annotations

import glob
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.ports import free_port

OWNER = "postgres"
AS_OWNER = ["runuser", "-u", OWNER, "--"]
HBA = """\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
"""


@dataclass
class PostgresServer:
    """Connection facts for the ``ha`` role, and start/stop for tests that need the server down."""

    host: str
    port: int
    user: str
    password: str
    database: str
    root: Path
    bindir: Path

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        options = f"-h {self.host} -p {self.port} -k {self.root} -c fsync=off"
        log = self.root / "server.log"
        _run([*self._pg_ctl("start"), "-l", str(log), "-o", options], "start PostgreSQL", log)

    def stop(self) -> None:
        _run([*self._pg_ctl("stop"), "-m", "fast"], "stop PostgreSQL")

    def is_running(self) -> bool:
        return subprocess.run(self._pg_ctl("status"), capture_output=True).returncode == 0

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block, and up again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def sql(self, statement: str) -> None:
        """Run SQL as the superuser over the unix socket."""
        psql = str(self.bindir / "psql")
        argv = [*AS_OWNER, psql, "-h", str(self.root), "-p", str(self.port), "-U", OWNER]
        _run([*argv, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement], "run SQL")

    def _pg_ctl(self, action: str) -> list[str]:
        return [*AS_OWNER, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", action]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, with a role ``ha`` that logs in with a password."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="ha-test-postgres-", dir="/tmp"))
    try:
        shutil.chown(root, OWNER, OWNER)
        server = PostgresServer(
            host="127.0.0.1",
            port=free_port(),
            user="ha",
            password=secrets.token_urlsafe(16),
            database="ha",
            root=root,
            bindir=bindir,
        )
        initdb = [str(bindir / "initdb"), "-D", str(server.datadir), "-U", OWNER, "-A", "trust"]
        _run([*AS_OWNER, *initdb, "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"], "initdb")
        (server.datadir / "pg_hba.conf").write_text(HBA)
        server.start()
        try:
            server.sql(f"create role ha login password '{server.password}'")
            server.sql("create database ha owner ha")
            yield server
        finally:
            if server.is_running():
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major_version)
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): run `./run test`,"
            " which installs it",
            pytrace=False,
        )
    return Path(found[-1]).parent


def _major_version(path: str) -> int:
    return int(Path(path).parents[1].name.split(".")[0])


def _run(argv: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        text = (
            f"cannot {what}: {' '.join(argv)} exited {done.returncode}\n{done.stdout}{done.stderr}"
        )
        if log is not None and log.exists():
            text += f"\n{log}:\n{log.read_text()[-2000:]}"
        pytest.fail(text, pytrace=False)
