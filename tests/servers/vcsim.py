"""A vCenter simulator for tests: govmomi's ``simulator`` behind our launcher, vcsim/main.go.

Debian ships the simulator library, not a command, so the launcher is built once with Debian's Go
(offline, GOPATH mode) and cached by the hash of main.go: repeated runs skip the ~16 s build. The
server listens on 127.0.0.1 with a user, a password and a throwaway self-signed certificate, and
is stopped with SIGTERM by PID (SIGKILL would leave /tmp/govcsim-* behind).

The simulator's default VPX inventory: datacenter DC0, standalone host DC0_H0 with VMs DC0_H0_VM0
and DC0_H0_VM1, cluster DC0_C0 (hosts DC0_C0_H0..2) with DC0_C0_RP0_VM0 and DC0_C0_RP0_VM1, every
VM powered on. ``restart()`` starts a fresh inventory on the same port: the sessions of every
client are gone, as if they had expired.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyVim import connect

from tests.servers.ports import free_port

# pyVim ships py.typed but leaves its functions untyped: use the module as Any.
pyvim_connect: Any = connect

SOURCE = Path(__file__).parent / "vcsim" / "main.go"
GOPATH = "/usr/share/gocode"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@dataclass
class Vcsim:
    """A running simulator, its facts for a provider config, and an admin client for arranging."""

    binary: Path
    root: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    user: str = "ha"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    process: subprocess.Popen[bytes] | None = None

    @property
    def cert(self) -> Path:
        return self.root / "cert.pem"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    def provider_config(self, **overrides: Any) -> dict[str, Any]:
        """A vsphere provider config for this simulator (TLS verified against its certificate)."""
        config: dict[str, Any] = {
            "type": "vsphere",
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password_file": str(self.password_file),
            "ca_file": str(self.cert),
        }
        return {**config, **overrides}

    def start(self) -> None:
        argv = [str(self.binary), "-listen", f"{self.host}:{self.port}", "-user", self.user]
        argv += ["-cert", str(self.cert), "-key", str(self.root / "key.pem")]
        env = {**os.environ, "VCSIM_PASSWORD": self.password}
        with (self.root / "vcsim.log").open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=log)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT)
        line = self.process.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("https://"):
            self.stop()
            log_text = (self.root / "vcsim.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"vcsim did not start: {line!r}\n{log_text}", pytrace=False)
        _wait_for_port(self.host, self.port)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> None:
        """A fresh simulator on the same port: every existing session is unknown to it."""
        self.stop()
        self.start()

    @contextmanager
    def client(self) -> Iterator[Any]:
        """The service content of a separate admin session, to arrange and check VMs."""
        context = ssl.create_default_context(cafile=str(self.cert))
        si = pyvim_connect.SmartConnect(
            host=self.host, port=self.port, user=self.user, pwd=self.password, sslContext=context
        )
        try:
            yield si.RetrieveContent()
        finally:
            pyvim_connect.Disconnect(si)


@pytest.fixture(scope="session")
def vcsim(request: pytest.FixtureRequest) -> Iterator[Vcsim]:
    """One simulator for the test session, on a free loopback port."""
    binary = _build(_cache_dir(request))
    root = Path(tempfile.mkdtemp(prefix="ha-test-vcsim-", dir="/tmp"))
    server = Vcsim(binary=binary, root=root)
    try:
        server.password_file.write_text(server.password + "\n")
        _self_signed_certificate(root, server.host)
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _cache_dir(request: pytest.FixtureRequest) -> Path:
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("vcsim"))
    path = Path(tempfile.gettempdir()) / "ha-test-vcsim-build"
    path.mkdir(exist_ok=True)
    return path


def _build(cache: Path) -> Path:
    """The launcher binary for the current main.go, built once and reused while it is unchanged."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    binary = cache / f"vcsim-{digest}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None or not Path(GOPATH, "src/github.com/vmware/govmomi/simulator").is_dir():
        pytest.fail(
            "Go and govmomi are not installed (apt-get install -y golang-go"
            " golang-github-vmware-govmomi-dev): run `./run test`, which installs them",
            pytrace=False,
        )
    partial = cache / f"{binary.name}.{os.getpid()}.partial"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(Path(tempfile.gettempdir()) / "ha-test-go-build"))
    argv = [go, "build", "-o", str(partial), SOURCE.name]
    done = subprocess.run(argv, cwd=SOURCE.parent, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot build {SOURCE}:\n{done.stdout}{done.stderr}", pytrace=False)
    partial.replace(binary)
    return binary


def _self_signed_certificate(root: Path, host: str) -> None:
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    argv += ["-nodes", "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")]
    argv += ["-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot make a certificate for vcsim: {done.stderr}", pytrace=False)


def _wait_for_port(host: str, port: int) -> None:
    give_up = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.02)
