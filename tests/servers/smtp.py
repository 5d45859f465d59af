"""A real SMTP server on loopback (aiosmtpd, on its own thread): STARTTLS required with a fresh
self-signed certificate for 127.0.0.1, a login, and every message kept."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers.ports import free_port


@dataclass
class SmtpServer:
    port: int
    cert: Path  # what a client must trust
    user: str
    password: str
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
            )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (self.user, self.password)
        return AuthResult(success=ok, handled=False)

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[str, list[str], Message]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages[:count])
            time.sleep(0.02)
        raise AssertionError(f"{len(self.messages)} e-mails, not {count}")


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=smtp"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def serve_smtp(directory: Path, user: str, password: str) -> Iterator[SmtpServer]:
    cert, key = _certificate(directory)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = SmtpServer(free_port(), cert, user, password)
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        authenticator=server.authenticate,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
