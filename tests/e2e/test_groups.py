"""Distributed groups: together, in waves, stopped by a failing member, split and recovered."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.groups_site import ORDERED, REPLICA, TOGETHER, farm, report, wait_report


def finished_at(fleet: Fleet, name: str) -> int:
    return next(
        e["id"]
        for e in fleet.journal()
        if e["kind"] == "transition" and e["scenario"] == name and "-> switched" in e["message"]
    )


def started_at(fleet: Fleet, name: str) -> int:
    return next(
        e["id"]
        for e in fleet.journal()
        if e["kind"] == "transition" and e["scenario"] == name and "-> failing_over" in e["message"]
    )


def test_together_one_member_dies_all_switch_in_waves(fleet: Fleet) -> None:
    fleet.write_config(groups=TOGETHER)
    fleet.start_daemon()
    fleet.kill("s2")
    wait_report(fleet)

    assert report(fleet)["ok"] is True
    for name in ("s1", "s2", "s3"):
        assert fleet.state(name) == ("switched", "replica")
        assert fleet.active(name) == REPLICA
    assert finished_at(fleet, "s1") < started_at(fleet, "s2")
    assert finished_at(fleet, "s2") < started_at(fleet, "s3")
    assert fleet.state("s4") == ("running", "production")  # not a member
    proposal = next(e for e in fleet.journal() if e["kind"] == "proposal")
    assert proposal["data"]["scenarios"] == ["s1", "s2", "s3"]
    status = fleet.ha("status").stdout
    assert "group farm: switched (s1 switched, s2 switched, s3 switched)" in status


def test_a_together_group_fails_back_together_once_every_production_is_stable(
    fleet: Fleet,
) -> None:
    """Automatic failback (stable_for 1s): s1's and s3's productions stay healthy after the
    together failover, s2's is dead; none fails back alone (before, s1 and s3 did, leaving s2
    on its replica). Once s2's production is back and stable, one group failback, in waves."""
    fleet.write_config(groups=TOGETHER, failback={"mode": "automatic", "stable_for": "1s"})
    fleet.start_daemon()
    fleet.kill("s2")
    wait_report(fleet)
    time.sleep(2.5)  # s1's and s3's productions: healthy for more than stable_for
    assert [fleet.state(n) for n in ("s1", "s2", "s3")] == [("switched", "replica")] * 3
    assert not [e for e in fleet.journal() if "-> failing_back" in e["message"]]

    fleet.revive("s2")
    fleet.wait_until(
        lambda: [e["kind"] for e in fleet.journal()].count("group_report") == 2, 30, "failback"
    )
    commands = [e for e in fleet.journal() if e["kind"] == "group_command"]
    assert [(e["data"]["action"], e["actor"]) for e in commands] == [
        ("failover", "detector"),
        ("failback", "detector"),
    ]
    assert "production healthy for 1s at s1, s2, s3" in commands[1]["message"]
    ended = [e for e in fleet.journal() if e["kind"] == "group_report"][1]["data"]
    assert (ended["action"], ended["ok"]) == ("failback", True)
    for name in ("s1", "s2", "s3"):
        assert fleet.state(name) == ("running", "production")
    back = {
        e["scenario"]: e["id"]
        for e in fleet.journal()
        if e["kind"] == "transition" and "failing_back -> running" in e["message"]
    }
    left = {
        e["scenario"]: e["id"]
        for e in fleet.journal()
        if e["kind"] == "transition" and "switched -> failing_back" in e["message"]
    }
    assert back["s1"] < left["s2"]  # in waves
    assert back["s2"] < left["s3"]


@pytest.mark.parametrize(
    ("how", "state", "left"),
    [
        ("stop", "stopped", "stopped (not protected): left as it is"),
        ("pause", "running", "paused (maintenance): no automatic action; left as it is"),
        ("split", "split", "split: waits for an operator; left as it is"),
    ],
)
def test_a_member_an_operator_has_is_left_as_it_is_by_a_together_failover(
    fleet: Fleet, how: str, state: str, left: str
) -> None:
    """An operator stopped s1, paused it for maintenance, or must resolve its split: the
    automatic together failover leaves it alone and goes on with the others (s1's wave holds up
    no other)."""
    fleet.write_config(groups=TOGETHER, active_check=True)
    for name in fleet.names:
        fleet.primary(name, "127.0.0.2", True)
    fleet.start_daemon()
    if how == "split":
        fleet.primary("s1", REPLICA, True)
        fleet.wait_state("split", name="s1")
    else:
        assert fleet.ha(how, "s1").returncode == 0
    fleet.kill("s2")
    wait_report(fleet)
    assert report(fleet)["ok"] is True
    assert report(fleet)["members"]["s1"] == left
    assert fleet.state("s1") == (state, "production")
    assert fleet.active("s1") != REPLICA
    for name in ("s2", "s3"):
        assert fleet.state(name) == ("switched", "replica")


def test_a_together_failover_waits_for_a_switchover_in_flight_and_leaves_a_failback_alone(
    fleet: Fleet,
) -> None:
    """s1 is switching over (to the replica: where the failover goes too), s3 failing back (an
    operator brings it to production): when s2 dies, the together failover waits for s1's
    switchover, fails s2 over, and leaves s3's failback to its operator."""
    fleet.write_config(groups=TOGETHER, runbook={"retry_delay": "100ms", "healthy_timeout": "30s"})
    fleet.start_daemon()
    assert fleet.ha("switchover", "s3", "--wait").returncode == 0
    fleet.kill("s3")
    assert fleet.ha("failback", "s3", "--force").returncode == 0  # waits for its production
    fleet.alive("s1", REPLICA, False)
    assert fleet.ha("switchover", "s1", "--force").returncode == 0  # waits for its replica
    fleet.wait_state("failing_back", name="s3")
    fleet.wait_state("switching_over", name="s1")

    fleet.kill("s2")
    fleet.wait_until(
        lambda: any(e["kind"] == "group_command" for e in fleet.journal()), 20, "together"
    )
    fleet.alive("s1", REPLICA, True)  # s1's switchover goes on
    wait_report(fleet)
    assert report(fleet)["ok"] is True, report(fleet)
    assert report(fleet)["members"] == {
        "s1": "switched, replica active",
        "s2": "switched, replica active",
        "s3": "in its failback runbook: left as it is",
    }
    fleet.revive("s3")
    fleet.wait_state("running", name="s3")
    assert fleet.active("s3") == "127.0.0.2"


def test_a_member_with_a_dead_replica_stops_the_later_waves_with_a_report(fleet: Fleet) -> None:
    fleet.write_config(groups=ORDERED)
    fleet.start_daemon()
    fleet.replica_seen("s2", False)
    # Nothing to fail s2 over to: the group is not "protected", and status says which member.
    assert farm(fleet)["state"] == "degraded"
    assert [m["trouble"] for m in farm(fleet)["members"]] == [None, "replica dead", None]
    status = fleet.ha("status").stdout
    assert "farm: degraded (s1 running, s2 running with its replica dead, s3 running)" in status
    pushed = fleet.ha("group", "failover", "farm", "--wait")
    assert pushed.returncode == 1, pushed.stdout + pushed.stderr

    members = report(fleet)["members"]
    assert members["s1"] == "switched, replica active"
    assert members["s2"].startswith("refused: replica fails its checks (script)")
    assert members["s3"] == "not started: an earlier wave failed"
    assert "failover failed" in pushed.stdout
    assert fleet.state("s3") == ("running", "production")
    assert fleet.active("s3") == ""

    # Until the group is in order again, status shows what its last command did, also after a
    # restart (read back from the journal).
    for restarted in (False, True):
        if restarted:
            fleet.stop_daemon()
            fleet.start_daemon()
        fleet.wait_until(lambda: farm(fleet)["last_report"] is not None, 5, "the report")
        last = farm(fleet)["last_report"]
        assert (last["action"], last["ok"], last["outstanding"]) == ("failover", False, True)
        assert last["members"] == members
        shown = f"  last command (#{last['id']}): failover failed: s1: switched, replica active;"
        assert shown in fleet.ha("status").stdout
    fleet.alive("s2", REPLICA, True)
    assert fleet.ha("group", "failback", "farm", "--wait").returncode == 0
    fleet.wait_until(lambda: farm(fleet)["state"] == "protected", 10, "protected again")
    assert farm(fleet)["last_report"]["ok"] is True
    assert "last command" not in fleet.ha("status").stdout


def test_a_group_failover_interrupted_by_a_restart_goes_on_after_it(fleet: Fleet) -> None:
    slow = {"name": "slow", "command": ["sh", "-c", "test {name} != s1 || sleep 2"]}
    fleet.write_config(groups=ORDERED, hooks={"pre_failover": [slow]})
    fleet.start_daemon()
    argv = [sys.executable, "-m", "ha", "group", "failover", "farm", "--wait"]
    with subprocess.Popen(  # the operator follows it through the restart
        [*argv, "-c", str(fleet.config_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as waiting:
        try:
            fleet.wait_until(
                lambda: any(
                    e["kind"] == "step_started" and e["scenario"] == "s1" for e in fleet.journal()
                ),
                10,
                "s1's runbook started",
            )
            fleet.stop_daemon(signal.SIGKILL)  # wave 1 in flight, waves 2 and 3 not started
            assert fleet.state("s2") == ("running", "production")
            fleet.start_daemon()
            out, err = waiting.communicate(timeout=60)
        finally:
            waiting.kill()
    assert waiting.returncode == 0, out.decode() + err.decode()
    assert "group_report: group farm: failover done" in out.decode()
    assert "cannot reach the daemon" in err.decode()
    assert "ha: the daemon answers again" in err.decode()
    assert report(fleet)["ok"] is True
    for name in ("s1", "s2", "s3"):
        assert fleet.state(name) == ("switched", "replica")
    resumed = next(e for e in fleet.journal() if e["kind"] == "group_resumed")
    assert resumed["message"].startswith("group farm: resuming failover (command #")
    assert finished_at(fleet, "s1") < started_at(fleet, "s2")  # still wave by wave


def test_status_sums_up_a_large_group_and_its_report(tmp_path: Path) -> None:
    """Eight members (more than six), one wave: s8 dies, s5's replica is dead, so the together
    failover fails at s5. Status counts the members' states and names the exceptions, and shows
    the report's outcomes once each, rather than a line per member."""
    fleet = Fleet(tmp_path, 8)
    try:
        fleet.write_config(
            groups=[{"name": "big", "scenarios": fleet.names, "failover": "together"}]
        )
        fleet.start_daemon()
        fleet.replica_seen("s5", False)
        fleet.kill("s8")
        wait_report(fleet)
        status = fleet.ha("status").stdout
        assert (
            "group big: degraded (8 members: 7 switched, 1 running; s5 running (paused) with its"
            " replica dead)\n  last command (#"
        ) in status
        assert (
            "): failover failed: 7 members (s1, s2, s3, ...): switched, replica active; s5:"
            " refused: replica fails its checks (script); failover to a dead replica is refused"
            " (`ha failover s5 --force` overrides); s5 paused: `ha group resume big` lets the"
            " daemon act again\n"
        ) in status
        (group,) = fleet.api("GET", "/v1/groups")[1]["groups"]
        assert len(group["last_report"]["members"]) == 8  # the API keeps every member's outcome

        fleet.replica_seen("s5", True)
        pushed = fleet.ha("group", "failover", "big", "--wait")  # --wait sums it up too
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert (
            " group_report: group big: failover done: 7 members (s1, s2, s3, ...): already on the"
            " replica; s5: switched, replica active [api:local:"
        ) in pushed.stdout.splitlines()[-1]
    finally:
        fleet.stop()


def test_group_failback_and_run_stop(fleet: Fleet) -> None:
    fleet.write_config(groups=ORDERED)
    fleet.start_daemon()
    plan = fleet.ha("group", "failover", "farm", "--dry-run")
    assert "wave 1: s1: failover" in plan.stdout
    assert "wave 3: s3: failover" in plan.stdout
    assert fleet.ha("group", "failover", "farm", "--wait").returncode == 0
    assert "group farm: switched (s1 switched, s2 switched, s3 switched)" in (
        fleet.ha("status").stdout
    )
    rows = [line.split()[0] for line in fleet.ha("status", "farm").stdout.splitlines()]
    assert rows == ["SCENARIO", "s1", "s2", "s3", "group", "failover"]  # not s4
    rows = [line.split()[0] for line in fleet.ha("status", "s4", "s2").stdout.splitlines()]
    assert rows == ["SCENARIO", "s2", "s4", "failover"]  # no group line
    unknown = fleet.ha("status", "s1", "frm", "s9")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == "ha: no scenario or group named 'frm', 's9'\n"
    fleet.alive("s3", REPLICA, False)  # the replica serving s3 dies: the group is not just switched
    fleet.wait_until(
        lambda: (
            "farm: degraded (s1 switched, s2 switched, s3 switched with its replica dead)"
            in fleet.ha("status").stdout
        ),
        10,
        "degraded",
    )
    fleet.alive("s3", REPLICA, True)
    fleet.wait_until(lambda: "group farm: switched" in fleet.ha("status").stdout, 10, "switched")
    done = fleet.ha("group", "failback", "farm", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [fleet.state(n) for n in ("s1", "s2", "s3")] == [("running", "production")] * 3
    assert all(fleet.active(n) == "127.0.0.2" for n in ("s1", "s2", "s3"))

    assert fleet.ha("group", "stop", "farm", "--wait").returncode == 0
    assert [fleet.state(n)[0] for n in ("s1", "s2", "s3", "s4")] == ["stopped"] * 3 + ["running"]
    assert fleet.ha("group", "run", "farm", "--wait").returncode == 0
    assert [fleet.state(n)[0] for n in ("s1", "s2", "s3")] == ["running"] * 3


def test_both_sides_active_is_a_split_recovered_for_the_whole_group(fleet: Fleet) -> None:
    fleet.write_config(groups=ORDERED, active_check=True, fence=True)
    for name in fleet.names:
        fleet.primary(name, "127.0.0.2", True)
    fleet.start_daemon()
    fleet.primary("s2", REPLICA, True)  # the replica of s2 starts answering as primary too
    fleet.wait_state("split", name="s2")
    time.sleep(1)
    assert fleet.state("s2") == ("split", "production")  # never failed over automatically
    assert "split" in fleet.ha("status").stdout

    fleet.primary("s2", REPLICA, False)
    plan = fleet.ha("group", "recover", "farm", "--active", "replica", "--dry-run").stdout
    assert "  wave 1: s1: failover (to make replica active)\n" in plan  # it runs on production
    assert "  wave 2: s2: recover --active replica\n" in plan  # split: recovered
    recovered = fleet.ha("group", "recover", "farm", "--active", "replica", "--wait")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    for name in ("s1", "s2", "s3"):
        assert fleet.state(name) == ("switched", "replica")
        assert fleet.active(name) == REPLICA
        assert fleet.fenced(f"{name}-prod")


def test_a_paused_scenario_still_goes_split_and_nothing_moves(fleet: Fleet) -> None:
    """Maintenance keeps checking and reporting: both sides answering as active is a split also
    while paused (as users sent to the standby side already was); nothing is fenced or moved."""
    fleet.write_config(active_check=True, fence=True)
    for name in fleet.names:
        fleet.primary(name, "127.0.0.2", True)
    fleet.start_daemon()
    assert fleet.ha("pause", "s2").returncode == 0
    fleet.primary("s2", REPLICA, True)
    fleet.wait_state("split", name="s2")
    assert fleet.state("s2") == ("split", "production")
    status = fleet.ha("status").stdout
    assert "s2: split: both production and replica answer as active (script)\n" in status
    assert not fleet.fenced("s2-prod")

    fleet.primary("s2", REPLICA, False)
    recovered = fleet.ha("recover", "s2", "--active", "production", "--wait")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert fleet.state("s2") == ("running", "production")


def test_users_sent_to_the_standby_side_is_a_split(fleet: Fleet) -> None:
    fleet.write_config(split={"redirect_interval": "300ms"})
    fleet.start_daemon()
    (fleet.dir / "s3.active").write_text(REPLICA + "\n")  # someone repointed users by hand
    fleet.wait_state("split", name="s3")
    split = next(e for e in fleet.journal() if e["kind"] == "transition" and e["scenario"] == "s3")
    assert "users are sent to 127.0.0.3 (replica) while production is active" in split["message"]

    recovered = fleet.ha("recover", "s3", "--active", "production")
    assert recovered.returncode == 0, recovered.stderr
    fleet.wait_state("running", name="s3")
    assert fleet.active("s3") == "127.0.0.2"
