"""Runbooks survive the daemon: SIGKILL during any step, start again, the runbook completes
exactly once. A step that fails past its retries blocks the scenario, never half-done."""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.site import Site
from tests.e2e.test_failover import FAILOVER_STEPS, steps_done


def count(site: Site, kind: str, step: str) -> int:
    return sum(1 for e in site.journal() if e["kind"] == kind and e["step"] == step)


@pytest.mark.parametrize("step", FAILOVER_STEPS)
def test_sigkill_during_a_step_then_restart_finishes_exactly_once(site: Site, step: str) -> None:
    site.write_config(delay=0.6)
    site.start_daemon()
    os.kill(site.running_pid("production"), signal.SIGSTOP)  # hung production
    site.wait_until(lambda: count(site, "step_started", step) == 1, 20, f"{step} started")
    assert site.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
    finished_before_kill = steps_done(site)
    assert site.state() == ("failing_over", "production")

    site.start_daemon()
    site.wait_state("switched", timeout=30)

    assert steps_done(site) == FAILOVER_STEPS  # each step finished once, in order, none skipped
    for done in finished_before_kill:
        assert count(site, "step_started", done) == 1, f"{done} ran again after the restart"
    assert site.transitions() == ["running -> failing_over", "failing_over -> switched"]
    assert [e["kind"] for e in site.journal()].count("runbook_resumed") == 1
    assert site.active.read_text().strip() == "127.0.0.3"
    assert site.pid("production") is None


def test_a_failing_step_blocks_with_the_reason_and_resumes_where_it_stopped(site: Site) -> None:
    site.write_config(gate=True)
    site.start_daemon()
    os.kill(site.running_pid("production"), signal.SIGKILL)
    site.wait_state("blocked", timeout=30)

    status = site.api("GET", "/v1/scenarios/web")[1]
    assert status["reason"] == "step redirect failed: redirect set: exit 1"
    assert site.active.read_text().strip() == "127.0.0.2"  # not half-redirected
    assert count(site, "step_retry", "redirect") == 3
    assert "blocked: step redirect failed" in site.ha("status").stdout

    (site.dir / "redirect-allowed").touch()
    plan = site.ha("failover", "web", "--dry-run")
    assert "fence_production" in plan.stdout
    assert "(done, skipped)" in plan.stdout
    resumed = site.ha("failover", "web", "--wait")
    assert resumed.returncode == 0, resumed.stderr
    assert site.state() == ("switched", "replica")
    assert site.active.read_text().strip() == "127.0.0.3"
    assert count(site, "step_done", "fence_production") == 1
    assert count(site, "step_done", "redirect") == 1
    assert site.transitions() == [
        "running -> failing_over",
        "failing_over -> blocked",
        "blocked -> failing_over",
        "failing_over -> switched",
    ]


def test_a_forced_failover_resumed_after_a_restart_is_still_forced(fleet: Fleet) -> None:
    slow = {"name": "slow", "command": ["sh", "-c", "test {name} != s1 || sleep 2"]}
    fleet.write_config(hooks={"pre_failover": [slow]})
    fleet.start_daemon()
    assert fleet.ha("failover", "s1", "--force").returncode == 0  # production answers
    fleet.wait_until(lambda: any(e["kind"] == "step_started" for e in fleet.journal()), 10, "hook")
    fleet.stop_daemon(signal.SIGKILL)  # before confirm_failure: the restart must remember --force

    fleet.start_daemon()
    fleet.wait_state("switched", timeout=30, name="s1")
    confirmed = next(
        e for e in fleet.journal() if e["step"] == "confirm_failure" and e["kind"] == "step_done"
    )
    assert confirmed["message"].startswith("forced: production")
    proposal = next(e for e in fleet.journal() if e["kind"] == "proposal")
    assert proposal["data"]["force"] is True
