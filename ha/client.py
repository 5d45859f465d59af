"""The CLI's client of the daemon's local API (plain urllib: the CLI stays synchronous, quick)."""

from __future__ import annotations

import getpass
import json
import socket
import urllib.error
import urllib.request
from typing import Any

from ha.config import Config
from ha.errors import HAError
from ha.token import read_token


class ApiUnavailable(HAError):
    """The daemon's API cannot be reached."""


class ApiError(HAError):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


class ApiClient:
    def __init__(self, config: Config) -> None:
        host = config.api.listen
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self.base = f"http://{host}:{config.api.port}"
        self.token = read_token(config.api.token_file)
        self.actor = f"{getpass.getuser()}@{socket.gethostname()}"

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "X-HA-Actor": self.actor,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
                if response.headers.get_content_type() == "application/json":
                    return json.loads(payload)
                return payload.decode()
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise ApiError(exc.code, str(reason)) from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise ApiUnavailable(
                f"cannot reach the daemon at {self.base}: {why} (is `ha daemon` running?)"
            ) from None
