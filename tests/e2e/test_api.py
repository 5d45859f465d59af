"""The API v1 against a real daemon: every route's happy path and its error statuses, the two
token roles, who is journaled, the OpenAPI document, reports, and the dashboard's files."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ha.api import ROUTE_TABLE
from ha.api_commands import BODY_FIELDS, GROUP_BODY_FIELDS
from ha.commands import ACTIONS
from ha.groups_config import GROUP_BUTTONS
from tests.e2e.api_site import ApiFleet

GROUPS = [{"name": "pair", "scenarios": ["s1", "s2"], "ordered": True}]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiFleet]:
    fleet = ApiFleet(tmp_path_factory.mktemp("api"), 2)
    try:
        fleet.write_config(groups=GROUPS)
        fleet.start_daemon()
        yield fleet
    finally:
        fleet.stop()


def test_the_openapi_document_lists_every_route(fleet: ApiFleet) -> None:
    answer = fleet.call("GET", "/v1/openapi.json", token="viewer")
    assert answer.status == 200
    doc = answer.json()
    assert doc["openapi"].startswith("3.1")
    listed = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert listed == {(r.method, r.path) for r in ROUTE_TABLE}
    command = doc["paths"]["/v1/scenarios/{name}/{action}"]["post"]
    action = next(p for p in command["parameters"] if p["name"] == "action")
    assert action["schema"]["enum"] == list(ACTIONS)
    assert command["x-role"] == "operator"
    assert set(command["responses"]) == {"200", "202", "400", "404", "409", "422", "503"}
    body = doc["components"]["schemas"]["Command"]
    assert sorted(body["properties"]) == sorted(BODY_FIELDS)  # what the route accepts
    group_body = doc["components"]["schemas"]["GroupCommand"]
    assert sorted(group_body["properties"]) == sorted(GROUP_BODY_FIELDS)
    group = doc["paths"]["/v1/groups/{name}/{action}"]["post"]
    assert next(p for p in group["parameters"] if p["name"] == "action")["schema"]["enum"] == list(
        GROUP_BUTTONS
    )
    assert doc["paths"]["/v1/status"]["get"]["x-role"] == "viewer"
    assert doc["paths"]["/"]["get"]["security"] == []


def test_no_token_is_401_and_a_viewer_cannot_push_a_button(fleet: ApiFleet) -> None:
    for token in (None, "guess"):
        answer = fleet.call("GET", "/v1/status", token=token)
        assert (answer.status, answer.json()) == (401, {"error": "missing or wrong bearer token"})
    assert fleet.call("GET", "/metrics", token=None).status == 401
    answer = fleet.call("POST", "/v1/scenarios/s1/failover", {}, token="viewer")
    assert (answer.status, answer.json()) == (
        403,
        {"error": "the token 'grafana' is a viewer token; this needs operator"},
    )
    for path in ("/v1/groups/pair/failover", "/v1/rearm"):
        assert fleet.call("POST", path, {}, token="viewer").status == 403
    time.sleep(0.3)
    assert fleet.state("s1") == ("running", "production")
    assert not [e for e in fleet.journal() if e["kind"] == "command"]


def test_a_viewer_reads_everything(fleet: ApiFleet) -> None:
    status = fleet.call("GET", "/v1/status", token="viewer").json()
    assert [s["name"] for s in status["scenarios"]] == ["s1", "s2"]
    assert status["token"] == {"name": "grafana", "role": "viewer"}
    assert status["last_event"] >= 1
    assert fleet.call("GET", "/v1/status", token="local").json()["token"] == {
        "name": "local",
        "role": "operator",
    }
    for path in (
        "/v1/scenarios/s1",
        "/v1/groups",
        "/v1/groups/pair",
        "/v1/events?scenario=s1",
        "/v1/proposals?scenario=s1",
        "/v1/diagram",
        "/v1/reports",
        "/metrics",
    ):
        assert fleet.call("GET", path, token="viewer").status == 200, path
    scenario = fleet.call("GET", "/v1/scenarios/s2", token="viewer").json()
    assert (scenario["name"], scenario["active"]) == ("s2", "production")
    assert fleet.call("GET", "/v1/groups", token="viewer").json()["groups"][0]["waves"] == [
        ["s1"],
        ["s2"],
    ]
    group = fleet.call("GET", "/v1/groups/pair", token="viewer").json()
    assert group == fleet.call("GET", "/v1/groups", token="viewer").json()["groups"][0]
    assert [m["name"] for m in group["members"]] == ["s1", "s2"]
    diagram = fleet.call("GET", "/v1/diagram", token="viewer")
    assert diagram.body.decode().splitlines()[3] == "stateDiagram-v2"


def test_unknown_things_are_404(fleet: ApiFleet) -> None:
    cases = [
        ("GET", "/v1/scenarios/nope", "no scenario named 'nope'"),
        ("POST", "/v1/scenarios/nope/failover", "no scenario named 'nope'"),
        ("GET", "/v1/events?scenario=nope", "no scenario named 'nope'"),
        ("GET", "/v1/events/stream?scenario=nope", "no scenario named 'nope'"),
        ("GET", "/v1/proposals?scenario=nope", "no scenario named 'nope'"),
        ("GET", "/v1/reports?group=nope", "no group named 'nope'"),
        ("POST", "/v1/groups/nope/run", "no group named 'nope'"),
        ("GET", "/v1/groups/nope", "no group named 'nope'"),
        ("GET", "/static/nope.js", "no file 'nope.js'"),
    ]
    for method, path, reason in cases:
        answer = fleet.call(method, path, {} if method == "POST" else None)
        assert (answer.status, answer.json()) == (404, {"error": reason}), path
    answer = fleet.call("POST", "/v1/scenarios/s1/explode", {})
    assert answer.status == 404
    assert answer.json()["error"].startswith("no action 'explode'; actions: run, stop")
    answer = fleet.call("POST", "/v1/groups/pair/explode", {})
    assert answer.status == 404
    assert answer.json()["error"].startswith("no group action 'explode'")
    assert fleet.call("GET", "/v1/nothing").status == 404


def test_bad_requests_are_400_and_invalid_ones_422(fleet: ApiFleet) -> None:
    cases = [
        ("POST", "/v1/scenarios/s1/pause", b"{not json", 400, "the body is not valid JSON"),
        ("POST", "/v1/scenarios/s1/pause", ["x"], 400, "the body must be a JSON object"),
        ("GET", "/v1/events?after=x", None, 400, "after must be an integer"),
        ("GET", "/v1/events?wait=soon", None, 400, "wait must be a number of seconds"),
        ("GET", "/v1/events/stream?after=x", None, 400,
         "Last-Event-ID and after must be journal ids"),
        ("POST", "/v1/scenarios/s1/pause", {"force": "yes"}, 422, "force must be true or false"),
        ("POST", "/v1/scenarios/s1/pause", {"colour": 1}, 422, "unknown fields: colour"),
        ("POST", "/v1/groups/pair/failover", {"force": True}, 422, "unknown fields: force"),
        ("POST", "/v1/groups/pair/recover", {"active": "both"}, 422,
         "active must be production or replica"),
        ("POST", "/v1/groups/pair/recover", {}, 422,
         "recover needs the side to keep active: production or replica"),
        ("POST", "/v1/scenarios/s1/recover", {"dry_run": True}, 422,
         "recover needs the side to keep active: production or replica"),
        ("POST", "/v1/scenarios/s1/failback", {"as_if": {"s1": "switched"}}, 422,
         "as_if is for a dry run only (dry_run: true)"),
        ("POST", "/v1/groups/pair/failback", {"dry_run": True, "as_if": ["s1"]}, 422,
         "as_if must be an object: {scenario: state}"),
        ("POST", "/v1/scenarios/s1/failback", {"dry_run": True, "as_if": {"s9": "switched"}},
         422, "as_if: no scenario named 's9'"),
        ("POST", "/v1/scenarios/s1/failback", {"dry_run": True, "as_if": {"s1": "blocked"}},
         422, "as_if.s1: 'blocked' is not one of running, switched, stopped"),
        ("POST", "/v1/groups/pair/failback", {"dry_run": True, "as_if": {"s1": ["x"]}},
         422, "as_if.s1: ['x'] is not one of running, switched, stopped"),
        ("GET", "/v1/reports?format=xml", None, 422, "format must be one of json, csv"),
        ("GET", "/v1/reports?report=x", None, 422, "report must be one of journal, tests"),
    ]  # fmt: skip
    for method, path, body, status, reason in cases:
        answer = fleet.call(method, path, body)
        assert (answer.status, answer.json()) == (status, {"error": reason}), path
    answer = fleet.call("GET", "/v1/reports?since=yesterday")
    assert answer.status == 422
    assert answer.json()["error"].startswith("'yesterday' is not a time")


def test_conflicts_are_409(fleet: ApiFleet) -> None:
    answer = fleet.call("POST", "/v1/scenarios/s1/failback", {})
    assert answer.status == 409
    assert answer.json()["error"] == (
        "cannot failback while running; failback needs switched (or blocked in a failback)"
    )
    assert fleet.call("POST", "/v1/scenarios/s1/resume", {}).json() == {"error": "not paused"}
    answer = fleet.call("POST", "/v1/rearm", {})
    assert (answer.status, answer.json()) == (
        409,
        {"error": "no failover budget is configured (safety.budget)"},
    )


def test_commands_are_accepted_and_journaled_with_the_tokens_name(fleet: ApiFleet) -> None:
    actor = {"X-HA-Actor": "alice@laptop"}
    answer = fleet.call("POST", "/v1/scenarios/s2/pause", {}, headers=actor)
    assert answer.status == 202
    assert answer.json()["message"] == "s2 paused"
    assert fleet.call("POST", "/v1/scenarios/s2/resume", {}, token="local").status == 202
    commands = [e for e in fleet.journal() if e["kind"] == "command"]
    assert [(c["actor"], c["message"]) for c in commands[-2:]] == [
        ("api:alice:alice@laptop", "pause requested"),
        ("api:local:anonymous", "resume requested"),
    ]


def test_dry_runs_take_no_step(fleet: ApiFleet) -> None:
    plan = fleet.call("POST", "/v1/scenarios/s1/switchover", {"dry_run": True})
    assert plan.status == 200
    assert [s["step"] for s in plan.json()["steps"]][-2:] == ["redirect", "verify"]
    waves = fleet.call("POST", "/v1/groups/pair/stop", {"dry_run": True}).json()
    assert [(row["wave"], row["scenario"]) for row in waves["plan"]] == [(1, "s2"), (2, "s1")]
    plan = fleet.call("POST", "/v1/scenarios/s1/pause", {"dry_run": True}).json()
    assert plan["steps"][0]["plan"] == "keep checking and reporting; take no automatic action"
    assert fleet.state("s1") == ("running", "production")


def test_a_dry_run_judges_scenarios_as_if_a_command_before_had_moved_them(
    fleet: ApiFleet,
) -> None:
    """A playbook's --check: after a switchover it would take, a failback is planned on the
    switched scenario it would leave, not refused for the running one it is now."""
    now = fleet.call("POST", "/v1/scenarios/s1/failback", {"dry_run": True})
    assert now.status == 409
    supposed = {"dry_run": True, "as_if": {"s1": "switched"}}
    plan = fleet.call("POST", "/v1/scenarios/s1/failback", supposed)
    assert plan.status == 200, plan.json()
    assert [s["step"] for s in plan.json()["steps"]][-2:] == ["redirect", "verify"]
    waves = fleet.call("POST", "/v1/groups/pair/failback", supposed).json()["plan"]
    assert [(row["scenario"], row["plan"], row["acts"]) for row in waves] == [
        ("s1", "failback", True),
        ("s2", "already on production", False),
    ]
    assert fleet.state("s1") == ("running", "production")


def test_events_long_poll_returns_when_an_event_comes(fleet: ApiFleet) -> None:
    last = fleet.call("GET", "/v1/status").json()["last_event"]
    started = time.monotonic()
    quiet = fleet.call("GET", f"/v1/events?after={last + 10**6}&wait=0.5").json()
    assert quiet == {"events": []}
    assert time.monotonic() - started >= 0.4
    found = fleet.call("GET", f"/v1/events?after={last}&scenario=s1&limit=1").json()["events"]
    assert len(found) <= 1


def test_reports_export_the_journal_filtered_as_json_and_csv(fleet: ApiFleet) -> None:
    fleet.call("POST", "/v1/scenarios/s1/pause", {})
    fleet.call("POST", "/v1/scenarios/s1/resume", {})
    report = fleet.call("GET", "/v1/reports?scenario=s1&since=1h").json()
    assert report["report"] == "journal"
    assert report["filters"]["scenario"] == "s1"
    kinds = [row["kind"] for row in report["rows"]]
    assert {"registered", "paused", "resumed"} <= set(kinds)
    assert {row["scenario"] for row in report["rows"]} == {"s1"}
    assert fleet.call("GET", "/v1/reports?until=1h").json()["rows"] == []
    answer = fleet.call("GET", "/v1/reports?group=pair&format=csv")
    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.body.decode())))
    assert list(rows[0]) == ["id", "time", "kind", "scenario", "actor", "runbook", "step",
                             "message", "data"]  # fmt: skip
    assert {r["scenario"] for r in rows} == {"s1", "s2"}
    tests = fleet.call("GET", "/v1/reports?report=tests&format=csv").body.decode()
    assert tests == "id,time,scenario,test,result,recovery_time,actor,message\n"


def test_cli_reports_and_events(fleet: ApiFleet, tmp_path: Path) -> None:
    out = tmp_path / "journal.csv"
    cli = fleet.ha("reports", "--scenario", "s2", "--format", "csv", "-o", str(out))
    assert cli.returncode == 0, cli.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["kind"] == "registered"
    assert {r["scenario"] for r in rows} == {"s2"}
    cli = fleet.ha("reports", "--tests", "--since", "2020-01-01")
    assert cli.returncode == 0, cli.stderr
    assert '"report": "tests"' in cli.stdout
    events = fleet.ha("events", "--scenario", "s1")
    assert "registered: new scenario, running" in events.stdout


def test_the_dashboard_files_need_no_token(fleet: ApiFleet) -> None:
    page = fleet.call("GET", "/", token=None)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert b'<script type="module" src="/static/app.js">' in page.body
    for name in ("app.js", "api.js", "style.css"):
        assert fleet.call("GET", f"/static/{name}", token=None).status == 200
    assert b"cdn" not in page.body.lower()
