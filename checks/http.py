"""HTTP check: one request to the target; the status must be expected and the body may have to
contain a string.

One aiohttp session per check instance, created on the first probe and closed by ``close()``.
Every probe opens a new connection (no keep-alive), as a new user would, and redirects are not
followed: a 301 is an answer to compare with ``expect_status``.
"""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

if TYPE_CHECKING:
    import aiohttp

from checks.base import Check, CheckConfig, CheckFailed, describe_error
from checks.tcp import socket_error_detail

DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpConfig(CheckConfig):
    kind: Literal["http"]
    scheme: Literal["http", "https"] = "http"
    port: int | None = Field(None, ge=1, le=65535, description="default 80 or 443 by scheme")
    path: str = Field("/", description="path and query, starting with /")
    method: Literal["GET", "HEAD"] = "GET"
    expect_status: list[int] = Field([200], min_length=1, description="statuses that mean alive")
    body_contains: str | None = Field(None, min_length=1, description="text the body must contain")
    verify_tls: bool = Field(True, description="check the server's certificate (https)")
    host_header: str | None = Field(None, description="Host header, and TLS server name for https")

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with /")
        return path

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, statuses: list[int]) -> list[int]:
        if wrong := [status for status in statuses if not 100 <= status <= 599]:
            raise ValueError(f"HTTP statuses are 100..599, not {', '.join(map(str, wrong))}")
        return statuses

    @model_validator(mode="after")
    def _body_needs_get(self) -> Self:
        if self.body_contains is not None and self.method == "HEAD":
            raise ValueError("body_contains needs method GET (a HEAD answer has no body)")
        return self


class HttpCheck(Check):
    kind: ClassVar[str] = "http"
    Config: ClassVar[type[CheckConfig]] = HttpConfig
    config: HttpConfig

    def __init__(self, config: CheckConfig, target: str) -> None:
        super().__init__(config, target)
        self.port = self.config.port or DEFAULT_PORTS[self.config.scheme]
        host = f"[{target}]" if ":" in target else target
        self.url = f"{self.config.scheme}://{host}:{self.port}{self.config.path}"
        self._session: aiohttp.ClientSession | None = None

    async def attempt(self) -> str:
        import aiohttp  # loaded when a probe runs, not when a config is validated

        started = time.monotonic()
        try:
            status, body = await self._request()
        except aiohttp.ClientError as exc:
            raise CheckFailed(self._describe(exc)) from exc
        expected = self.config.expect_status
        if status not in expected:
            raise CheckFailed(f"status {status} (expected {' or '.join(map(str, expected))})")
        wanted = self.config.body_contains
        if wanted is not None and wanted not in body:
            raise CheckFailed(f"body does not contain {wanted!r}")
        return f"{status} in {(time.monotonic() - started) * 1000:.1f}ms"

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _request(self) -> tuple[int, str]:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(ssl=self.config.verify_tls, force_close=True)
            self._session = aiohttp.ClientSession(connector=connector)
        config = self.config
        headers = {"Host": config.host_header} if config.host_header else None
        server_name = config.host_header if config.scheme == "https" else None
        async with self._session.request(
            config.method,
            self.url,
            headers=headers,
            server_hostname=server_name,
            allow_redirects=False,
        ) as response:
            body = await response.text(errors="replace") if config.body_contains else ""
            return response.status, body

    def _describe(self, exc: aiohttp.ClientError) -> str:
        import aiohttp

        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            error = exc.certificate_error
            reason = getattr(error, "verify_message", None) or describe_error(error)
            return f"TLS certificate not accepted: {reason}"
        if isinstance(exc, aiohttp.ClientSSLError):
            cause = exc.__cause__
            reason = cause.reason if isinstance(cause, ssl.SSLError) else None
            return f"TLS handshake failed: {reason or describe_error(exc)}"
        return socket_error_detail(exc, self.port) or describe_error(exc)
