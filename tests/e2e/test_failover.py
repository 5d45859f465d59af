"""End to end, as an operator lives it: the daemon protects two real services on loopback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from tests.e2e.site import Site

FAILOVER_STEPS = [
    "confirm_failure",
    "fence_production",
    "activate_replica",
    "wait_replica_healthy",
    "redirect",
    "verify",
]


def steps_done(site: Site, runbook: str | None = None) -> list[str]:
    return [
        e["step"]
        for e in site.journal()
        if e["kind"] == "step_done" and (runbook is None or e["runbook"] == runbook)
    ]


def test_dead_production_fails_over_exactly_once(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    site.wait_until(lambda: "http ok" in site.ha("status").stdout, 10, "status shows http ok")
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_state("switched")
    time.sleep(1)  # the detector keeps seeing production dead: still no second failover

    assert site.state() == ("switched", "replica")
    assert site.active.read_text().strip() == "127.0.0.3"
    assert site.transitions() == ["running -> failing_over", "failing_over -> switched"]
    assert steps_done(site) == FAILOVER_STEPS
    confirmed = next(
        e["message"]
        for e in site.journal()
        if e["kind"] == "step_done" and e["step"] == "confirm_failure"
    )
    assert re.match(r"production failed its latest probes \(\d+(ms|(\.\d{1,3})?s) ago\)", confirmed)
    failover = next(e for e in site.journal() if e["kind"] == "transition")
    assert failover["actor"] == "detector"
    assert "production dead: http down" in failover["message"]
    status = site.ha("status")
    assert status.returncode == 0
    assert "switched" in status.stdout
    assert "replica 127.0.0.3" in status.stdout


def test_a_blip_below_the_threshold_does_not_fail_over(site: Site) -> None:
    site.write_config(failures=4, interval="200ms")
    site.start_daemon()
    site.wait_until(
        lambda: site.api("GET", "/v1/status")[1]["scenarios"][0]["production"]["checks"][0]["ok"],
        10,
        "production ok",
    )
    pid = site.running_pid("production")
    os.kill(pid, signal.SIGSTOP)  # hung: probes time out
    site.wait_until(
        lambda: any(
            e["kind"] == "check" and "production http failed" in e["message"]
            for e in site.journal()
        ),
        5,
        "a failed probe of production is journaled",
    )
    os.kill(pid, signal.SIGCONT)
    site.wait_until(
        lambda: [e["message"] for e in site.journal() if e["kind"] == "check"][-1].startswith(
            "production http ok"
        ),
        5,
        "production answers again",
    )
    time.sleep(1)
    assert site.state() == ("running", "production")
    assert site.transitions() == []


def test_the_is_alive_timeout_fails_over_with_no_change_in_the_results(site: Site) -> None:
    # 100 failures in a row would take 20 s; after the first failure every result is the same,
    # so only the daemon's timed evaluation (ha.agenda) sees production go dead at 1 s.
    site.write_config(failures=100, interval="200ms", dead_after="1s")
    site.start_daemon()
    site.wait_until(lambda: "http ok" in site.ha("status").stdout, 10, "status shows http ok")
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_state("switched", timeout=8)

    failover = next(e for e in site.journal() if e["kind"] == "transition")
    assert "production dead: http down" in failover["message"]


def test_manual_mode_alerts_and_waits_for_the_button(site: Site) -> None:
    site.write_config(mode="manual")
    site.start_daemon()
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_until(
        lambda: any(e["kind"] == "alert" for e in site.journal()), 10, "an alert is journaled"
    )
    time.sleep(0.5)
    alert = next(e for e in site.journal() if e["kind"] == "alert")
    assert "failover is manual: run `ha failover web`" in alert["message"]
    assert site.state() == ("running", "production")

    pushed = site.ha("failover", "web", "--wait")
    assert pushed.returncode == 0, pushed.stderr
    assert "accepted: web is failing over" in pushed.stdout
    assert "verify" in pushed.stdout
    assert site.state() == ("switched", "replica")
    command = next(e for e in site.journal() if e["kind"] == "command")
    assert command["actor"].startswith("api:")
    assert command["message"] == "failover requested"


def test_failback_returns_to_production(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_state("switched")
    assert site.pid("production") is None  # fenced

    done = site.ha("failback", "web", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert site.state() == ("running", "production")
    assert site.active.read_text().strip() == "127.0.0.2"
    assert site.pid("production") is not None
    failback = next(e["runbook"] for e in site.journal() if "(failback)" in e["message"])
    assert steps_done(site, failback) == [
        "activate_production",
        "wait_production_healthy",
        "redirect",
        "verify",
    ]
    assert site.transitions()[-2:] == ["switched -> failing_back", "failing_back -> running"]


def test_switchover_to_a_dead_replica_is_refused_with_the_reason(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    site.power("off", "replica")
    site.wait_until(
        lambda: site.api("GET", "/v1/status")[1]["scenarios"][0]["replica"]["dead"],
        10,
        "replica dead",
    )
    refused = site.ha("switchover", "web")
    assert refused.returncode == 1
    assert "replica fails its checks (http)" in refused.stderr
    assert site.state() == ("running", "production")


def test_sigterm_stops_the_daemon_cleanly(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    assert site.stop_daemon(signal.SIGTERM) == 0
    assert '"event": "daemon stopped"' in site.log()


def test_hold_down_after_a_failback_keeps_production_from_flapping(site: Site) -> None:
    site.write_config(hold_down="1m")
    site.start_daemon()
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_state("switched")
    assert site.ha("failback", "web", "--wait").returncode == 0

    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_until(
        lambda: any("hold-down after the last switch" in e["message"] for e in site.journal()),
        10,
        "a hold-down alert is journaled",
    )
    assert site.state() == ("running", "production")
    assert site.transitions().count("running -> failing_over") == 1


def test_events_follow_prints_new_events_as_they_happen(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    follow = subprocess.Popen(
        [sys.executable, "-m", "ha", "events", "--follow", "-c", str(site.config_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert site.ha("stop", "web").returncode == 0
        assert follow.stdout is not None
        lines = []
        while "running -> stopped" not in "".join(lines):
            lines.append(follow.stdout.readline())
        assert any("command: stop requested [api:" in line for line in lines)
    finally:
        follow.terminate()
        follow.wait()
        if follow.stdout is not None:
            follow.stdout.close()
