"""A PostgreSQL primary and a streaming standby for tests, in one temp dir under /tmp.

The primary is initialised with data checksums (so pg_rewind works); the standby is a
``pg_basebackup -R`` of it. Each runs on its own free loopback port, as the ``postgres`` user
(through ``runuser``: the servers refuse root). Ports and sockets are given on the pg_ctl command
line, never in postgresql.conf, because pg_rewind copies the configuration files of its source.
Both are stopped at teardown (pg_ctl, then SIGKILL of the postmaster's PID), also on failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.servers.ports import free_port
from tests.servers.postgres import AS_OWNER, OWNER, _bindir, _run

HBA = """\
local all all trust
local replication all trust
host replication all 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""
USER = "ha"
# keep old WAL segments: pg_rewind reads the target's WAL back to the last common checkpoint
CONF = "wal_keep_size = 256MB\nmin_wal_size = 256MB\nmax_wal_size = 512MB\n"


@dataclass
class PgNode:
    name: str
    port: int
    root: Path
    bindir: Path

    @property
    def datadir(self) -> Path:
        return self.root / self.name

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def pg_ctl(self, *args: str) -> list[str]:
        return [*AS_OWNER, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args]

    @property
    def start_command(self) -> list[str]:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        return self.pg_ctl("-w", "-t", "60", "-l", str(self.log), "-o", options, "start")

    @property
    def stop_command(self) -> list[str]:
        """Stops the server; exits 0 when it is not running (a fence is idempotent)."""
        status = " ".join(self.pg_ctl("status"))
        stop = " ".join(self.pg_ctl("-w", "stop", "-m", "fast"))
        return ["sh", "-c", f"{status} >/dev/null || exit 0; {stop}"]

    def start(self) -> None:
        _run(self.start_command, f"start PostgreSQL {self.name}", self.log)

    def pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        return subprocess.run(self.pg_ctl("status"), capture_output=True).returncode == 0

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: its children exit when they notice)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def shutdown(self) -> None:
        """Teardown: stop fast; SIGKILL by PID when that fails."""
        if not self.is_running():
            return
        done = subprocess.run(
            self.pg_ctl("-w", "-t", "20", "stop", "-m", "immediate"), capture_output=True
        )
        if done.returncode != 0 and (pid := self.pid()) is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class PgPair:
    primary: PgNode
    standby: PgNode
    password: str
    root: Path

    def instance(self, node: PgNode, *, local: bool = True) -> dict[str, object]:
        """The provider's config of ``node``; ``local`` adds what rebuild and a stop fence need."""
        spec: dict[str, object] = {
            "host": "127.0.0.1",
            "port": node.port,
            "user": USER,
            "password_env": "HA_TEST_PG_PASSWORD",
            "database": "postgres",
        }
        if local:
            spec |= {
                "data_dir": str(node.datadir),
                "start_command": node.start_command,
                "stop_command": node.stop_command,
                "run_as": OWNER,
                "bindir": str(node.bindir),
            }
        return spec


@contextmanager
def pg_pair() -> Iterator[PgPair]:
    """Start a primary and its streaming standby; stop both afterwards, whatever happened.

    The role ``ha`` (superuser: promote, ALTER SYSTEM, pg_rewind) logs in with a password over TCP,
    given to the provider through ``HA_TEST_PG_PASSWORD``.
    """
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="ha-test-pgpair-", dir="/tmp"))
    nodes: list[PgNode] = []
    previous = os.environ.get("HA_TEST_PG_PASSWORD")
    try:
        shutil.chown(root, OWNER, OWNER)
        root.chmod(0o755)
        primary = PgNode("primary", free_port(), root, bindir)
        standby = PgNode("standby", free_port(), root, bindir)
        password = secrets.token_urlsafe(16)
        initdb = [str(bindir / "initdb"), "-D", str(primary.datadir), "-U", OWNER, "-A", "trust"]
        initdb += ["--no-sync", "-E", "UTF8", "--locale=C.UTF-8", "--data-checksums"]
        _run([*AS_OWNER, *initdb], "initdb")
        (primary.datadir / "pg_hba.conf").write_text(HBA)
        with (primary.datadir / "postgresql.conf").open("a") as conf:
            conf.write(CONF)  # also read by pg_rewind's single-user crash recovery
        nodes.append(primary)
        primary.start()
        psql = [*AS_OWNER, str(bindir / "psql"), "-h", str(root), "-p", str(primary.port)]
        create = f"create role {USER} login superuser replication password '{password}'"
        _run([*psql, "-U", OWNER, "-d", "postgres", "-c", create], "create role")
        backup = [str(bindir / "pg_basebackup"), "-h", str(root), "-p", str(primary.port)]
        backup += ["-U", OWNER, "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast"]
        _run([*AS_OWNER, *backup], "pg_basebackup")
        nodes.append(standby)
        standby.start()
        os.environ["HA_TEST_PG_PASSWORD"] = password
        yield PgPair(primary, standby, password, root)
    finally:
        for node in nodes:
            node.shutdown()
        if previous is None:
            os.environ.pop("HA_TEST_PG_PASSWORD", None)
        else:
            os.environ["HA_TEST_PG_PASSWORD"] = previous
        shutil.rmtree(root, ignore_errors=True)
