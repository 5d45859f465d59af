"""The push-button API and CLI: tokens, errors, dry runs, pause."""

from __future__ import annotations

import os
import signal
import stat
import time

from tests.e2e.site import Site


def test_the_api_needs_the_token(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    assert stat.S_IMODE((site.dir / "ha-token").stat().st_mode) == 0o600
    assert site.api("GET", "/v1/status", token=None) == (
        401,
        {"error": "missing or wrong bearer token"},
    )
    assert site.api("POST", "/v1/scenarios/web/failover", {}, token="guess")[0] == 401
    assert site.state() == ("running", "production")


def test_unknown_scenario_and_action_are_404(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    assert site.api("POST", "/v1/scenarios/nope/failover", {}) == (
        404,
        {"error": "no scenario named 'nope'"},
    )
    status, body = site.api("POST", "/v1/scenarios/web/explode", {})
    assert status == 404
    assert body["error"].startswith("no action 'explode'")
    cli = site.ha("failover", "nope")
    assert cli.returncode == 1
    assert "refused (404): no scenario named 'nope'" in cli.stderr


def test_bad_bodies_are_400_and_422(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    assert site.api("POST", "/v1/scenarios/web/pause", ["x"])[0] == 400
    assert site.api("POST", "/v1/scenarios/web/pause", {"force": "yes"}) == (
        422,
        {"error": "force must be true or false"},
    )


def test_switchover_while_a_runbook_runs_is_409(site: Site) -> None:
    site.write_config(delay=1.0)
    site.start_daemon()
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_state("failing_over")
    status, body = site.api("POST", "/v1/scenarios/web/switchover", {})
    assert status == 409
    assert body["error"] == (
        "cannot switchover while failing over;"
        " switchover needs running (or blocked in a switchover)"
    )
    site.wait_state("switched", timeout=20)


def test_failback_while_production_is_active_is_refused(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    cli = site.ha("failback", "web")
    assert cli.returncode == 1
    assert "cannot failback while running" in cli.stderr


def test_dry_run_prints_the_steps_and_takes_none(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    plan = site.ha("switchover", "web", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0] == "dry run: switchover web (now running) would:"
    assert [line.split()[1] for line in lines[1:]] == [
        "stop_production",
        "activate_replica",
        "wait_replica_healthy",
        "redirect",
        "verify",
    ]
    time.sleep(0.5)
    assert site.state() == ("running", "production")
    assert site.pid("production") is not None
    assert not any(e["kind"] in ("transition", "command") for e in site.journal())


def test_pause_keeps_checking_but_takes_no_action(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    assert site.ha("pause", "web").returncode == 0
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_until(
        lambda: any("production http failed" in e["message"] for e in site.journal()),
        5,
        "failure seen",
    )
    time.sleep(1)
    assert site.state() == ("running", "production")
    assert "(paused)" in site.ha("status").stdout

    assert site.ha("resume", "web").returncode == 0
    site.wait_state("switched")
    kinds = [e["kind"] for e in site.journal()]
    assert kinds.index("paused") < kinds.index("resumed") < kinds.index("transition")


def test_events_lists_the_journal(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    assert site.ha("stop", "web").returncode == 0
    assert site.ha("run", "web").returncode == 0
    events = site.ha("events", "--scenario", "web")
    assert events.returncode == 0
    assert "transition: running -> stopped (stop)" in events.stdout
    assert "transition: stopped -> running (run)" in events.stdout


def test_cli_without_a_daemon_says_so(site: Site) -> None:
    site.write_config()
    (site.dir / "ha-token").write_text("x\n")
    cli = site.ha("status")
    assert cli.returncode == 3
    assert "cannot reach the daemon" in cli.stderr
