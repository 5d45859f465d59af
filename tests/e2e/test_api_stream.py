"""The event stream (Server-Sent Events) against a real daemon: ids, resume with Last-Event-ID,
heartbeats, filters, `ha events --follow`, and a stop that does not wait for open streams."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.client import HTTPResponse
from typing import IO, Any

import pytest

from tests.e2e.api_site import ApiFleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiFleet]:
    fleet = ApiFleet(tmp_path_factory.mktemp("stream"), 2)
    try:
        fleet.write_config(groups=[{"name": "one", "scenarios": ["s2"]}])
        fleet.start_daemon()
        yield fleet
    finally:
        fleet.stop()


def open_stream(fleet: ApiFleet, query: str = "", **headers: str) -> HTTPResponse:
    request = urllib.request.Request(
        f"{fleet.base}/v1/events/stream?heartbeat=1{query}",
        headers={"Authorization": f"Bearer {fleet.viewer}", **headers},
    )
    response: HTTPResponse = urllib.request.urlopen(request, timeout=5)
    return response


def messages(response: HTTPResponse) -> Iterator[dict[str, Any]]:
    """Each SSE message as {"id", "data"} or {"comment"}, as it comes."""
    message: dict[str, Any] = {}
    while True:
        line = response.readline().decode().rstrip("\n")
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line.startswith("id: "):
            message["id"] = int(line[4:])
        elif line.startswith("data: "):
            message["data"] = json.loads(line[6:])
        elif not line and message:
            yield message
            message = {}


def events_until_quiet(response: HTTPResponse) -> list[dict[str, Any]]:
    """Events until the first heartbeat (nothing new for a second)."""
    found: list[dict[str, Any]] = []
    for message in messages(response):
        if "comment" in message and message["comment"] == "heartbeat":
            return found
        if "id" in message:
            assert message["id"] == message["data"]["id"]
            found.append(message["data"])
    raise AssertionError("the stream ended")


def command(fleet: ApiFleet, name: str, action: str) -> None:
    assert fleet.call("POST", f"/v1/scenarios/{name}/{action}", {}).status == 202


def test_resume_with_last_event_id_delivers_exactly_the_missed_events(fleet: ApiFleet) -> None:
    with open_stream(fleet) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        command(fleet, "s1", "pause")
        seen = events_until_quiet(stream)
    assert "paused" in [e["kind"] for e in seen]
    last = seen[-1]["id"]

    command(fleet, "s1", "resume")  # while nobody listens
    command(fleet, "s2", "pause")
    command(fleet, "s2", "resume")
    missed = [e["id"] for e in fleet.journal() if e["id"] > last]
    assert len(missed) >= 9

    with open_stream(fleet, **{"Last-Event-ID": str(last)}) as stream:
        assert [e["id"] for e in events_until_quiet(stream)] == missed
    with open_stream(fleet, f"&after={last}&scenario=s2") as stream:
        again = events_until_quiet(stream)
    assert [e["id"] for e in again] == [
        e["id"] for e in fleet.journal() if e["id"] > last and e["scenario"] == "s2"
    ]
    assert [e["kind"] for e in again] == [
        "command", "paused", "command_accepted", "command", "resumed", "command_accepted"
    ]  # fmt: skip


def test_a_groups_events_are_its_members_and_its_own_in_pages_live_and_printed(
    fleet: ApiFleet,
) -> None:
    last = fleet.call("GET", "/v1/status").json()["last_event"]
    command(fleet, "s1", "pause")
    command(fleet, "s2", "pause")
    assert fleet.call("POST", "/v1/groups/one/run", {}).status == 202  # s2 runs: a report only
    fleet.wait_until(
        lambda: any(e["kind"] == "group_report" for e in fleet.journal() if e["id"] > last),
        10,
        "the group report",
    )
    command(fleet, "s1", "resume")
    command(fleet, "s2", "resume")
    expected = [
        e["id"]
        for e in fleet.journal()
        if e["id"] > last and (e["scenario"] == "s2" or e["data"].get("group") == "one")
    ]
    assert len(expected) >= 9  # s2's pause and resume, and the group's command, wave and report

    answer = fleet.call("GET", f"/v1/events?after={last}&group=one&limit=4").json()
    assert [e["id"] for e in answer["events"]] == expected[:4]
    answer = fleet.call("GET", f"/v1/events?after={last}&group=one").json()
    assert [e["id"] for e in answer["events"]] == expected
    with open_stream(fleet, f"&after={last}&group=one") as stream:
        assert [e["id"] for e in events_until_quiet(stream)] == expected
    printed = fleet.ha("events", "--group", "one", "--after", str(last))
    assert printed.returncode == 0, printed.stderr
    assert len(printed.stdout.splitlines()) == len(expected)
    assert " s1 " not in printed.stdout
    assert "group one: run done" in printed.stdout
    unknown = fleet.call("GET", "/v1/events?group=nope")
    assert (unknown.status, unknown.json()) == (404, {"error": "no group named 'nope'"})


def test_a_quiet_stream_sends_heartbeats(fleet: ApiFleet) -> None:
    with open_stream(fleet) as stream:
        started = time.monotonic()
        found = messages(stream)
        assert next(found) == {"comment": "heartbeat"}
        assert next(found) == {"comment": "heartbeat"}
        assert 1.5 <= time.monotonic() - started < 4


def test_ha_events_follow_prints_events_as_they_come(fleet: ApiFleet) -> None:
    last = fleet.call("GET", "/v1/status").json()["last_event"]
    argv = [sys.executable, "-m", "ha", "events", "--follow", "--scenario", "s1"]
    argv += ["--after", str(last), "-c", str(fleet.config_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as follow:
        try:
            command(fleet, "s2", "pause")
            command(fleet, "s1", "pause")
            assert follow.stdout is not None
            lines = [follow.stdout.readline() for _ in range(3)]
        finally:
            follow.kill()
            command(fleet, "s1", "resume")
            command(fleet, "s2", "resume")
    assert ["s1 command:" in lines[0], "s1 paused:" in lines[1]] == [True, True]
    assert "command_accepted: s1 paused" in lines[2]


def line_with(lines: IO[str], text: str) -> str:
    """The first line that holds ``text`` ("" at the end of the output)."""
    line = lines.readline()
    while line and text not in line:
        line = lines.readline()
    return line


def test_ha_events_follow_rides_through_a_restart_of_the_daemon(fleet: ApiFleet) -> None:
    last = fleet.call("GET", "/v1/status").json()["last_event"]
    argv = [sys.executable, "-m", "ha", "events", "--follow", "--scenario", "s1"]
    argv += ["--after", str(last), "-c", str(fleet.config_path)]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as follow:
        watchdog = threading.Timer(60, follow.kill)  # a follower that hangs fails, not blocks
        watchdog.start()
        try:
            assert follow.stdout is not None
            command(fleet, "s1", "pause")
            assert "s1 paused:" in line_with(follow.stdout, "s1 paused:")
            assert fleet.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
            fleet.start_daemon()
            command(fleet, "s1", "resume")
            resumed = line_with(follow.stdout, "s1 resumed:")
            assert follow.stderr is not None  # read until it says so (the watchdog bounds it)
            said = [line_with(follow.stderr, "cannot reach the daemon")]
            said.append(line_with(follow.stderr, "ha: the daemon answers again"))
        finally:
            watchdog.cancel()
            follow.kill()
    assert "s1 resumed:" in resumed
    assert "cannot reach the daemon" in said[0]
    assert "ha: the daemon answers again" in said[1]


def test_the_daemon_stops_promptly_with_streams_open(fleet: ApiFleet) -> None:
    with open_stream(fleet) as stream:
        assert fleet.daemon is not None
        started = time.monotonic()
        assert fleet.stop_daemon(signal.SIGTERM, timeout=10) == 0
        assert time.monotonic() - started < 4
        assert stream.read().startswith(b"retry: 2000\n\n")  # to its end: the daemon closed it
