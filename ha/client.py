"""The CLI's client of the daemon's local API (plain urllib: the CLI stays synchronous, quick)."""

from __future__ import annotations

import getpass
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
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
        self.user = f"{getpass.getuser()}@{socket.gethostname()}"
        self.actor = self.user

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

    def follow(self, after: int, query: str, verdict: Verdict) -> bool:
        """Read journal events after ``after`` (``query``: extra filters) as they come, until
        ``verdict`` returns True (done) or False (failed) for one of them."""
        while True:
            found = self.request("GET", f"/v1/events?after={after}&wait=30{query}", timeout=45)
            for event in found["events"]:
                after = event["id"]
                result = verdict(event)
                if result is not None:
                    return result

    def history(self, scenario: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        """Every journal event of ``scenario`` of these kinds, oldest first."""
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.request("GET", f"/v1/events?scenario={scenario}&after={after}&limit=1000")
            found.extend(e for e in page["events"] if e["kind"] in kinds)
            if len(page["events"]) < 1000:
                return found
            after = page["events"][-1]["id"]


Verdict = Callable[[dict[str, Any]], bool | None]


def runbook_ended(event: dict[str, Any]) -> bool | None:
    """The verdict on a runbook's events: finished (True), blocked or cancelled (False)."""
    if event["kind"] == "transition" and event["data"]["trigger"] in ("finish", "block", "cancel"):
        return bool(event["data"]["trigger"] == "finish")
    return None


def group_ended(group: str) -> Verdict:
    """The verdict on a group command's events: its report, ok or not."""

    def verdict(event: dict[str, Any]) -> bool | None:
        if event["kind"] == "group_report" and event["data"].get("group") == group:
            return bool(event["data"]["ok"])
        return None

    return verdict
