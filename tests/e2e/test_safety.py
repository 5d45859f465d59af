"""Safety controls: observe-only, proposals, vetoing hooks, the failover budget, grace, abort."""

from __future__ import annotations

import json
import time

from tests.e2e.fleet import Fleet

REPLICA = "127.0.0.3"


def kinds(fleet: Fleet, name: str | None = None) -> list[str]:
    return [e["kind"] for e in fleet.journal() if name is None or e["scenario"] == name]


def events(fleet: Fleet, kind: str, name: str | None = None) -> list[dict]:
    return [
        e for e in fleet.journal() if e["kind"] == kind and (name is None or e["scenario"] == name)
    ]


def test_observe_only_proposes_and_measures_how_long_production_stayed_down(fleet: Fleet) -> None:
    fleet.write_config(safety={"observe_only": True})
    fleet.start_daemon()
    fleet.kill("s1")
    fleet.wait_until(lambda: events(fleet, "proposal", "s1"), 10, "a proposal is journaled")
    time.sleep(0.5)
    fleet.revive("s1")
    fleet.wait_until(lambda: events(fleet, "production_recovered", "s1"), 10, "recovery journaled")

    proposal = events(fleet, "proposal", "s1")[0]
    assert proposal["message"].startswith(
        "would failover (observing only): production dead: script"
    )
    assert proposal["data"]["checks"]["production"]["script"]["ok"] is False
    assert proposal["data"]["checks"]["production"]["script"]["detail"] == "exit 1"
    assert [step["step"] for step in proposal["data"]["plan"]] == [
        "confirm_failure",
        "wait_replica_healthy",
        "redirect",
        "verify",
    ]
    assert fleet.transitions() == []
    assert fleet.active("s1") == ""
    down_for = events(fleet, "production_recovered", "s1")[0]["data"]["down_for"]
    assert 0.4 < down_for < 5

    listed = fleet.ha("proposals", "s1")
    assert listed.returncode == 0, listed.stderr
    assert "would failover (observing only)" in listed.stdout
    report = json.loads(fleet.ha("proposals", "s1", "--json").stdout)["report"]
    assert report == [
        {"scenario": "s1", "proposals": 1, "observed": 1, "cancelled": 0, "down_for": [down_for]}
    ]


def test_an_automatic_failover_carries_its_proposal(fleet: Fleet) -> None:
    fleet.write_config()
    fleet.start_daemon()
    fleet.kill("s2")
    fleet.wait_state("switched", name="s2")
    proposal = events(fleet, "proposal", "s2")[0]
    transition = events(fleet, "transition", "s2")[0]
    assert proposal["data"]["mode"] == "act"
    assert transition["data"]["proposal"] == proposal["id"]
    assert transition["runbook"] == proposal["runbook"]
    assert f"[proposal #{proposal['id']}]" in fleet.ha("events", "--scenario", "s2").stdout


def test_a_pre_failover_hook_that_exits_1_vetoes_and_the_operator_decides(fleet: Fleet) -> None:
    seen = fleet.dir / "hook-input.json"
    hook = ["sh", "-c", f"cat > {seen}; echo change freeze in effect; exit 1"]
    fleet.write_config(hooks={"pre_failover": [{"name": "cab", "command": hook}]})
    fleet.start_daemon()
    fleet.kill("s1")
    fleet.wait_state("blocked", name="s1")

    status = fleet.api("GET", "/v1/scenarios/s1")[1]
    assert (
        status["reason"]
        == "step pre_failover_hooks failed: hook cab: exit 1: change freeze in effect"
    )
    assert fleet.active("s1") == ""
    given = json.loads(seen.read_text())
    assert given["scenario"] == "s1"
    assert given["moment"] == "pre_failover"
    assert given["plan"][0]["step"] == "pre_failover_hooks"
    assert given["checks"]["production"]["script"]["ok"] is False
    assert "password" not in seen.read_text()

    aborted = fleet.ha("abort", "s1")
    assert aborted.returncode == 0, aborted.stderr
    assert fleet.state("s1") == ("running", "production")
    assert "runbook" in events(fleet, "transition", "s1")[-1]["message"]
    assert "abandoned" in events(fleet, "transition", "s1")[-1]["message"]


def test_a_pre_failover_hook_that_times_out_vetoes_too(fleet: Fleet) -> None:
    fleet.write_config(hooks={"pre_failover": [{"command": "sleep 5", "timeout": "300ms"}]})
    fleet.start_daemon()
    fleet.kill("s1")
    fleet.wait_state("blocked", name="s1")
    reason = fleet.api("GET", "/v1/scenarios/s1")[1]["reason"]
    assert reason == "step pre_failover_hooks failed: hook sleep: timed out"


def test_hooks_that_agree_let_it_proceed_and_post_hooks_never_delay_it(fleet: Fleet) -> None:
    marker = fleet.dir / "post-ran"
    fleet.write_config(
        hooks={
            "pre_failover": [{"command": "true"}],
            "post_failover": [{"command": ["sh", "-c", f"sleep 2; touch {marker}"]}],
            "on_state_change": [{"command": ["sh", "-c", 'echo "$HA_SCENARIO $HA_ACTION"']}],
        }
    )
    fleet.start_daemon()
    fleet.kill("s3")
    started = time.monotonic()
    fleet.wait_state("switched", name="s3")
    assert time.monotonic() - started < 2  # the 2 s post hook did not hold the runbook
    assert not marker.exists()
    fleet.wait_until(marker.exists, 10, "the post_failover hook ran")
    fleet.wait_until(
        lambda: any(
            e["data"]["hook"] == "sh" and e["data"]["to"] == "switched"
            for e in events(fleet, "hook", "s3")
        ),
        5,
        "hook results are journaled",
    )
    assert fleet.active("s3") == REPLICA


def test_the_budget_stops_a_failover_storm_until_rearmed(fleet: Fleet) -> None:
    fleet.write_config(safety={"budget": {"failovers": 3, "window": "10m"}})
    fleet.start_daemon()
    for name in fleet.names:
        fleet.kill(name)
    fleet.wait_until(lambda: events(fleet, "budget_spent"), 15, "the budget is spent")
    fleet.wait_until(
        lambda: sum(fleet.state(n)[0] == "switched" for n in fleet.names) == 3, 15, "three switched"
    )
    time.sleep(0.5)
    held = [n for n in fleet.names if fleet.state(n)[0] == "running"]
    assert len(held) == 1
    assert events(fleet, "proposal", held[0])[-1]["data"]["mode"] == "budget"
    assert "spent" in fleet.ha("status").stdout

    rearmed = fleet.ha("rearm")
    assert rearmed.returncode == 0, rearmed.stderr
    fleet.wait_state("switched", name=held[0])
    assert "budget_rearmed" in kinds(fleet)
    again = fleet.ha("rearm")
    assert again.returncode == 1
    assert "the budget is not spent" in again.stderr


def test_a_together_group_failover_spends_one_failover_of_the_budget(fleet: Fleet) -> None:
    together = [{"name": "farm", "scenarios": ["s1", "s2", "s3"], "failover": "together"}]
    fleet.write_config(safety={"budget": {"failovers": 1, "window": "10m"}}, groups=together)
    fleet.start_daemon()
    fleet.kill("s2")  # one decision: the whole group switches
    fleet.wait_until(
        lambda: all(fleet.state(n)[0] == "switched" for n in ("s1", "s2", "s3")), 15, "farm"
    )
    fleet.kill("s4")  # the next automatic failover finds the budget spent
    fleet.wait_until(
        lambda: [e["data"]["mode"] for e in events(fleet, "proposal", "s4")] == ["budget"],
        15,
        "s4's failover held by the spent budget",
    )
    assert [e["scenario"] for e in events(fleet, "budget_spent")] == ["s4"]
    assert fleet.state("s4") == ("running", "production")


def test_production_back_within_the_grace_period_cancels_the_failover(fleet: Fleet) -> None:
    fleet.write_config(failover={"grace": "3s"})
    fleet.start_daemon()
    fleet.kill("s1")
    fleet.wait_until(lambda: events(fleet, "proposal", "s1"), 10, "a proposal is journaled")
    fleet.revive("s1")
    fleet.wait_until(
        lambda: events(fleet, "proposal_cancelled", "s1"), 10, "the proposal is cancelled"
    )
    time.sleep(3)
    assert "step_started" not in kinds(fleet, "s1")
    assert fleet.state("s1") == ("running", "production")


def test_best_effort_fencing_goes_on_and_says_so(fleet: Fleet) -> None:
    fleet.write_config(fence="best_effort", fence_fails=True)
    fleet.start_daemon()
    fleet.kill("s4")
    fleet.wait_state("switched", name="s4")
    fenced = next(e for e in events(fleet, "step_done", "s4") if e["step"] == "fence_production")
    assert fenced["message"].startswith("NOT fenced (power_off s4-prod: exit 1: host unreachable)")


def test_required_fencing_that_fails_blocks(fleet: Fleet) -> None:
    fleet.write_config(fence=True, fence_fails=True)
    fleet.start_daemon()
    fleet.kill("s4")
    fleet.wait_state("blocked", name="s4", timeout=20)
    reason = fleet.api("GET", "/v1/scenarios/s4")[1]["reason"]
    assert reason == "step fence_production failed: power_off s4-prod: exit 1: host unreachable"
    assert fleet.active("s4") == ""


def test_automatic_failback_waits_for_production_to_be_stable(fleet: Fleet) -> None:
    fleet.write_config(failback={"mode": "automatic", "stable_for": "1s"})
    fleet.start_daemon()
    fleet.kill("s1")
    fleet.wait_state("switched", name="s1")
    time.sleep(1.5)
    assert fleet.state("s1") == ("switched", "replica")  # production still dead: no failback
    fleet.revive("s1")
    fleet.wait_state("running", name="s1", timeout=15)
    assert fleet.active("s1") == "127.0.0.2"
    failback = events(fleet, "transition", "s1")[-2]
    assert failback["actor"] == "detector"
    assert "production healthy for 1s" in failback["message"]


def test_observe_only_proposes_an_automatic_failback_once_and_takes_none(fleet: Fleet) -> None:
    """Observe-only: an operator switched s1 over; its production is healthy again, and failback
    is automatic: the daemon proposes it (once) and leaves s1 switched."""
    fleet.write_config(
        safety={"observe_only": True}, failback={"mode": "automatic", "stable_for": "500ms"}
    )
    fleet.start_daemon()
    assert fleet.ha("switchover", "s1", "--wait").returncode == 0
    time.sleep(2.5)  # production healthy for five times stable_for
    assert fleet.state("s1") == ("switched", "replica")
    proposals = [e for e in events(fleet, "proposal", "s1") if e["data"]["action"] == "failback"]
    assert [(p["data"]["mode"], p["message"]) for p in proposals] == [
        ("observe", "would failback (observing only): production healthy for 500ms")
    ]
