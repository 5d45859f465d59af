"""moto's server standing in for AWS in tests: ``moto_server -H 127.0.0.1 -p PORT`` from the venv,
started once per session, waited for (``GET /moto-api/``), and stopped by its PID.

Point boto3 at ``endpoint_url`` with any region and dummy credentials (:data:`CREDENTIALS`).
``reset()`` wipes every service's state (``POST /moto-api/reset``) for a test that wants a
clean account.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.ports import free_port

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
"""Environment for boto3 against moto (it accepts any credentials)."""

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


@dataclass
class MotoServer:
    endpoint_url: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def reset(self) -> None:
        """Wipe the state of every service."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with _direct.open(request, timeout=10) as response:
            assert response.status == 200, response.status

    def ready(self) -> bool:
        try:
            with _direct.open(f"{self.endpoint_url}/moto-api/", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture() -> Iterator[MotoServer]:
    """``moto_server``: one moto server for the session, on a free loopback port."""
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.exists():
        pytest.fail(
            f"moto's server is not installed ({binary}): install moto[server]", pytrace=False
        )
    port = free_port(HOST)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(binary), "-H", HOST, "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        server = MotoServer(f"http://{HOST}:{port}", process)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not server.ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-3000:]
                    reason = (
                        f"exited with {process.returncode}"
                        if process.poll() is not None
                        else f"not ready within {START_TIMEOUT:g}s"
                    )
                    pytest.fail(f"cannot start moto_server: {reason}\n{output}", pytrace=False)
                time.sleep(0.05)
            yield server
        finally:
            server.stop()
