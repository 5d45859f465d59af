"""The CLI's client of the daemon's local API (plain urllib: the CLI stays synchronous, quick)."""

from __future__ import annotations

import getpass
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from http.client import HTTPResponse
from typing import Any

from ha.config import Config
from ha.errors import HAError
from ha.format import AR_RESULTS
from ha.token import read_token

STREAM_TIMEOUT = 45.0  # the event stream sends a heartbeat every 15 s
OUTAGE = 60.0  # seconds the CLI keeps asking a daemon it followed that went away (a restart)


class ApiUnavailable(HAError):
    """The daemon's API cannot be reached."""


class Outage:
    """A daemon that went away while the CLI followed it (a restart, which resumes what was in
    flight): asked again each second for up to ``limit`` seconds, said once on stderr."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None

    def wait(self, exc: ApiUnavailable) -> None:
        """Pause before asking again; raises ``exc`` once the daemon stayed away too long."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            print(f"ha: {exc}; asking again for {self.limit:g}s", file=sys.stderr, flush=True)
        if now - self.since >= self.limit:
            raise exc
        time.sleep(1)

    def over(self) -> None:
        """The daemon answers again."""
        if self.since is not None:
            print("ha: the daemon answers again", file=sys.stderr, flush=True)
            self.since = None


class Interrupted(HAError):
    """Ctrl-C while the CLI followed a command: the command goes on in the daemon (the message
    says which, and how to follow or cancel it)."""


def goes_on(action: str, scenario: str | None = None, group: str | None = None) -> str:
    """What an interrupted follower leaves going on in the daemon, and what to type next."""
    if group is None:
        what = "Assured Recovery test" if action == "test" else f"{action} runbook"
        follow = f"ha events --scenario {scenario} --follow"
        return f"{scenario}'s {what} goes on in the daemon (follow it: {follow})"
    follow = f"ha events --group {group} --follow"
    if action in ("test", "cancel"):  # nothing more to cancel
        what = "test" if action == "test" else "cancelled command"
        return f"group {group}'s {what} goes on in the daemon (follow it: {follow})"
    cancel = f"start no other member: ha group cancel {group}"
    return f"group {group}'s {action} goes on in the daemon (follow it: {follow}; {cancel})"


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
        tls = config.api.tls
        self.base = f"{'https' if tls else 'http'}://{host}:{config.api.port}"
        self.tls = ssl.create_default_context(cafile=tls.ca_file or tls.cert_file) if tls else None
        self.token = os.environ.get("HA_TOKEN") or read_token(config.api.token_file)
        self.user = f"{getpass.getuser()}@{socket.gethostname()}"
        self.actor = self.user

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        with self._open(method, path, data, {}, timeout) as response:
            payload = response.read()
            if response.headers.get_content_type() == "application/json":
                return json.loads(payload)
            return payload.decode()

    def stream(self, after: int, query: str) -> Iterator[dict[str, Any]]:
        """Journal events after ``after`` (``query``: extra filters) from the event stream, as
        they come, without end. A stream that the daemon ends is opened again from the last event
        seen; a daemon that cannot be reached raises ApiUnavailable, at once if it never
        answered, else once it stayed away too long (see Outage)."""
        gone: Outage | None = None
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
            path = f"/v1/events/stream?{query.lstrip('&')}"
            try:
                with self._open("GET", path, None, headers, STREAM_TIMEOUT) as response:
                    gone = gone or Outage(OUTAGE)  # it answered: from now on, ride through
                    gone.over()
                    for event in sse_events(response):
                        after = event["id"]
                        yield event
            except ApiUnavailable as exc:
                if gone is None:
                    raise
                gone.wait(exc)

    @contextmanager
    def _open(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str], timeout: float
    ) -> Iterator[HTTPResponse]:
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "X-HA-Actor": self.actor,
                **headers,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.tls) as response:
                yield response
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

    def read(self, path: str, outage: float = OUTAGE, timeout: float = 30) -> Any:
        """GET ``path``, asking again a daemon that went away (see Outage): for the commands that
        follow what they started (reading twice is harmless; a POST is never sent twice)."""
        gone = Outage(outage)
        while True:
            try:
                found = self.request("GET", path, timeout=timeout)
            except ApiUnavailable as exc:
                gone.wait(exc)
                continue
            gone.over()
            return found

    def follow(
        self, after: int, query: str, verdict: Verdict, going_on: str, outage: float = OUTAGE
    ) -> bool:
        """Read journal events after ``after`` (``query``: extra filters) as they come, until
        ``verdict`` returns True (done) or False (failed) for one of them. A daemon that goes
        away meanwhile (a restart resumes the command from the journal) is asked again: see
        Outage. Ctrl-C raises Interrupted, saying ``going_on`` (see goes_on)."""
        try:
            while True:
                found = self.read(f"/v1/events?after={after}&wait=30{query}", outage, timeout=45)
                for event in found["events"]:
                    after = event["id"]
                    result = verdict(event)
                    if result is not None:
                        return result
        except KeyboardInterrupt:
            raise Interrupted(f"stopped following; {going_on}") from None

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


def sse_events(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON events of a Server-Sent Events stream (comments and heartbeats skipped)."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


Verdict = Callable[[dict[str, Any]], bool | None]


def runbook_ended(event: dict[str, Any]) -> bool | None:
    """The verdict on a runbook's events: finished (True), blocked or cancelled (False)."""
    if event["kind"] == "transition" and event["data"]["trigger"] in ("finish", "block", "cancel"):
        return bool(event["data"]["trigger"] == "finish")
    return None


def test_ended(event: dict[str, Any]) -> bool | None:
    """The verdict on an Assured Recovery test's events: passed (True), or not (False)."""
    if event["kind"] in AR_RESULTS:
        return bool(event["kind"] == "ar_passed")
    return None


def group_ended(group: str, cancelling: bool = False) -> Verdict:
    """The verdict on a group command's events: its report, ok or not (``cancelling``: ok too
    when it ended cancelled, as asked)."""

    def verdict(event: dict[str, Any]) -> bool | None:
        if event["kind"] == "group_report" and event["data"].get("group") == group:
            cancelled = cancelling and event["data"].get("ended") == "cancelled"
            return bool(event["data"]["ok"]) or cancelled
        return None

    return verdict
