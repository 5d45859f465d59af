"""A MariaDB primary and a GTID replica for tests, in one temp dir under /tmp.

Each has its own datadir, server id, binary log and free loopback port, and runs as the ``mysql``
user (through ``runuser``: mariadbd refuses root) with ``--no-defaults``. The replica starts
``--read-only`` and follows the primary with ``MASTER_USE_GTID=slave_pos``. Users: ``ha`` (all
privileges: the orchestrator's) and ``app`` (only the ``ha`` database: the application's, which
``read_only`` stops). Both servers are stopped by PID at teardown, also on failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.mariadb import AS_OWNER, OWNER, _run
from tests.servers.ports import free_port

PASSWORD_ENV = "HA_TEST_MARIADB_PASSWORD"


@dataclass
class MariaNode:
    name: str
    server_id: int
    port: int
    root: Path
    mariadbd: str
    read_only: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def socket(self) -> Path:
        return self.dir / "sock"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    def start(self) -> None:
        argv = [*AS_OWNER, self.mariadbd, "--no-defaults", f"--datadir={self.dir / 'data'}"]
        argv += ["--bind-address=127.0.0.1", f"--port={self.port}", f"--socket={self.socket}"]
        argv += [f"--pid-file={self.pid_file}", f"--log-error={self.dir / 'error.log'}"]
        argv += ["--skip-name-resolve", f"--server-id={self.server_id}"]
        argv += [f"--log-bin={self.dir / 'data' / 'binlog'}", "--log-slave-updates"]
        argv += ["--gtid-strict-mode=1", "--innodb-flush-log-at-trx-commit=2"]
        argv += ["--read-only"] if self.read_only else []
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (self.socket.exists() and self.pid_file.exists()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "error.log").read_text()[-2000:]
                pytest.fail(f"cannot start MariaDB {self.name}:\n{log}", pytrace=False)
            time.sleep(0.02)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL mariadbd (a crash)."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM mariadbd (SIGKILL after 30 s); never waits on runuser for long."""
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        pid = self.pid()
        if process.poll() is None and pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signum)
            if not _gone(pid, 30):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _gone(pid, 10)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()  # runuser, which we started
            process.wait(timeout=5)
        with suppress(FileNotFoundError):
            self.pid_file.unlink()

    def query(self, statement: str) -> str:
        client = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-N"]
        done = subprocess.run([*client, "-e", statement], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"SQL on {self.name} failed: {done.stderr}", pytrace=False)
        return done.stdout.strip()

    def sql(self, statement: str) -> None:
        client = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root"]
        _run([*client, "-e", statement], f"run SQL on {self.name}")


def _gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (a zombie counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


@dataclass
class MariaPair:
    primary: MariaNode
    replica: MariaNode
    password: str

    def instance(self, node: MariaNode) -> dict[str, object]:
        return {"host": "127.0.0.1", "port": node.port, "user": "ha", "password_env": PASSWORD_ENV}


@contextmanager
def mariadb_pair() -> Iterator[MariaPair]:
    """Start a primary and its GTID replica; stop both afterwards, whatever happened."""
    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
    if mariadbd is None:
        pytest.fail("MariaDB is not installed (no mariadbd)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="ha-test-mariapair-", dir="/tmp"))
    root.chmod(0o755)
    nodes: list[MariaNode] = []
    previous = os.environ.get(PASSWORD_ENV)
    try:
        primary = MariaNode("primary", 1, free_port(), root, mariadbd)
        replica = MariaNode("replica", 2, free_port(), root, mariadbd, read_only=True)
        for node in (primary, replica):
            node.dir.mkdir()
            shutil.chown(node.dir, OWNER, OWNER)
            install = ["mariadb-install-db", "--no-defaults", f"--datadir={node.dir / 'data'}"]
            install += ["--auth-root-authentication-method=socket", "--skip-test-db"]
            _run([*AS_OWNER, *install], "install the MariaDB system tables")
        password = secrets.token_urlsafe(16)
        for node in (primary, replica):
            nodes.append(node)
            node.start()
        primary.sql(
            f"create user 'ha'@'127.0.0.1' identified by '{password}';"
            " grant all privileges on *.* to 'ha'@'127.0.0.1';"
            f" create user 'app'@'127.0.0.1' identified by '{password}';"
            " create database ha; grant all on ha.* to 'app'@'127.0.0.1'"
        )
        replica.sql(
            f"change master to master_host='127.0.0.1', master_port={primary.port},"
            f" master_user='ha', master_password='{password}', master_use_gtid=slave_pos;"
            " start slave"
        )
        head = primary.query("select @@global.gtid_binlog_pos")
        if replica.query(f"select master_gtid_wait('{head}', 30)") != "0":
            pytest.fail("the MariaDB replica did not catch up at setup", pytrace=False)
        os.environ[PASSWORD_ENV] = password
        yield MariaPair(primary, replica, password)
    finally:
        for node in nodes:
            node.stop()
        if previous is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = previous
        shutil.rmtree(root, ignore_errors=True)
