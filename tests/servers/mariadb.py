"""A real MariaDB server for tests: a throwaway datadir on 127.0.0.1 with a password user over TCP.

mariadbd refuses to run as root, so (as CI runs as root) the datadir lives in a temp dir under /tmp
owned by the ``mysql`` user and the server runs through ``runuser``. ``--no-defaults`` keeps
/etc/mysql out. root logs in over the unix socket (unix_socket auth) to create the ``ha`` user.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.ports import free_port

OWNER = "mysql"
AS_OWNER = ["runuser", "-u", OWNER, "--"]
START_TIMEOUT = 30.0


@dataclass
class MariaDBServer:
    """Connection facts for the ``ha`` user, and start/stop for tests that need the server down."""

    host: str
    port: int
    user: str
    password: str
    database: str
    root: Path
    mariadbd: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket_path(self) -> Path:
        return self.root / "mariadb.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "mariadb.pid"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def start(self) -> None:
        argv = [
            *AS_OWNER,
            self.mariadbd,
            "--no-defaults",
            f"--datadir={self.root / 'data'}",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.error_log}",
            "--skip-name-resolve",
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_ready()

    def stop(self) -> None:
        """SIGTERM to the pid in mariadbd's pid file (runuser's, which passes it on, when there is
        no pid file yet), then wait for it to be gone."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is not None:
            return
        pid = int(self.pid_file.read_text()) if self.pid_file.exists() else process.pid
        os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"MariaDB did not stop within {START_TIMEOUT:g}s", pytrace=False)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block, and up again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def sql(self, statement: str) -> None:
        """Run SQL as root over the unix socket."""
        client = ["mariadb", "--no-defaults", f"--socket={self.socket_path}", "-u", "root"]
        _run([*client, "-e", statement], "run SQL")

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"mariadbd exited with {self.process.returncode}")
            if self.socket_path.exists() and self.pid_file.exists():
                return
            time.sleep(0.02)
        self.stop()
        self._fail(f"mariadbd was not ready within {START_TIMEOUT:g}s")

    def _fail(self, reason: str) -> None:
        log = self.error_log.read_text()[-2000:] if self.error_log.exists() else "(no log)"
        pytest.fail(f"cannot start MariaDB: {reason}\n{self.error_log}:\n{log}", pytrace=False)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """One MariaDB server for the session, with a user ``ha``@127.0.0.1 and a database ``ha``."""
    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
    if mariadbd is None:
        pytest.fail(
            "MariaDB is not installed (no mariadbd): run `./run test`, which installs"
            " mariadb-server (or apt-get install mariadb-server)",
            pytrace=False,
        )
    root = Path(tempfile.mkdtemp(prefix="ha-test-mariadb-", dir="/tmp"))
    try:
        shutil.chown(root, OWNER, OWNER)
        server = MariaDBServer(
            host="127.0.0.1",
            port=free_port(),
            user="ha",
            password=secrets.token_urlsafe(16),
            database="ha",
            root=root,
            mariadbd=mariadbd,
        )
        install = ["mariadb-install-db", "--no-defaults", f"--datadir={root / 'data'}"]
        options = ["--auth-root-authentication-method=socket", "--skip-test-db"]
        _run([*AS_OWNER, *install, *options], "install the MariaDB system tables")
        server.start()
        try:
            server.sql(
                f"create user 'ha'@'127.0.0.1' identified by '{server.password}';"
                " create database ha; grant all on ha.* to 'ha'@'127.0.0.1'"
            )
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        pytest.fail(
            f"cannot {what}: {' '.join(argv)} exited {done.returncode}\n{output}", pytrace=False
        )
