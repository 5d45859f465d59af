"""A Fleet for the API's tests: configured tokens of both roles, extra config sections (TLS,
notifications), and raw HTTP(S) calls for answers that are not JSON (CSV, metrics, the stream)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ha.token import new_token, token_digest
from tests.e2e.fleet import Fleet


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


class ApiFleet(Fleet):
    """Tokens: ``viewer`` (named grafana), ``operator`` (named alice), and the token file's."""

    def __init__(self, directory: Path, count: int) -> None:
        super().__init__(directory, count)
        self.viewer = new_token()
        self.operator = new_token()
        self.extra: dict[str, Any] = {}  # more top-level config; "api" entries are merged
        self.tls: ssl.SSLContext | None = None  # set: the API is called over HTTPS with this

    def write_config(  # type: ignore[override]  # the same options, passed on as they are
        self, **options: Any
    ) -> Path:
        path = super().write_config(**options)
        config = yaml.safe_load(path.read_text())
        extra = dict(self.extra)
        config["api"] = {
            **config["api"],
            "tokens": [
                {"name": "grafana", "role": "viewer", "sha256": token_digest(self.viewer)},
                {"name": "alice", "role": "operator", "sha256": token_digest(self.operator)},
            ],
            **extra.pop("api", {}),
        }
        config.update(extra)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.api_port}"

    def local_token(self) -> str:
        return (self.dir / "ha-token").read_text().strip()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = "operator",
        headers: dict[str, str] | None = None,
        timeout: float = 15,
    ) -> Answer:
        """``token``: "operator", "viewer", "local", None (no header) or a literal token."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        named = {"operator": self.operator, "viewer": self.viewer}
        if token == "local":
            token = self.local_token()
        if token is not None:
            sent["Authorization"] = f"Bearer {named.get(token, token)}"
        data = body if isinstance(body, bytes) else None
        if body is not None and data is None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.tls) as answer:
                return Answer(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), exc.read())

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = "file"
    ) -> tuple[int, Any]:
        try:
            answer = self.call(method, path, body, "local" if token == "file" else token)
        except OSError:
            return 0, None
        return answer.status, answer.json()
