"""Stopping and holding a group: cancel a group command (also across a restart), the hold an
automatic failover that failed or was cancelled puts on the members it did not move, group
pause and resume, and Ctrl-C while following."""

from __future__ import annotations

import signal
import time

from tests.e2e.fleet import Fleet
from tests.e2e.groups_site import ORDERED, REPLICA, TOGETHER, report, wait_report


def test_a_cancelled_group_failover_starts_no_other_member_also_after_a_restart(
    fleet: Fleet,
) -> None:
    fleet.write_config(groups=ORDERED, hooks=fleet.gate("s1"))
    fleet.start_daemon()
    refused = fleet.ha("group", "cancel", "farm")
    assert refused.returncode == 1
    assert refused.stderr == "ha: refused (409): no group command in progress for farm\n"
    assert fleet.ha("group", "failover", "farm").returncode == 0
    fleet.wait_runbook("s1")

    plan = fleet.ha("group", "cancel", "farm", "--dry-run").stdout.splitlines()
    assert plan == [
        "dry run: group cancel farm would, wave by wave:",
        "  wave 1: s1: finishes its failover runbook",
        "  wave 2: s2: not started (cancelled)",
        "  wave 3: s3: not started (cancelled)",
    ]
    assert fleet.api("POST", "/v1/groups/farm/cancel", {"active": "replica"})[0] == 422
    cancelled = fleet.ha("group", "cancel", "farm")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == (
        "accepted: group farm: failover cancelled: no other member starts;"
        " s1 finishes its failover\n"
    )
    again = fleet.ha("group", "cancel", "farm")
    assert "group farm: its failover was cancelled by api:local:" in again.stderr
    status = fleet.ha("status").stdout.splitlines()
    shown = status.index(
        "group farm: failover in progress (s1 failing_over, s2 running, s3 running)"
    )
    assert status[shown + 1].startswith("  cancelled by api:local:")
    assert status[shown + 1].endswith(": no other member starts; those in flight finish")

    fleet.stop_daemon(signal.SIGKILL)  # the cancel is in the journal: a restart keeps it
    fleet.start_daemon()
    fleet.open_gate()
    wait_report(fleet, 15)
    resumed = next(e for e in fleet.journal() if e["kind"] == "group_resumed")
    assert "; cancelled by api:local:" in resumed["message"]
    assert resumed["message"].endswith(": no other member starts")
    ended = report(fleet)
    assert ended["ok"] is False
    assert ended["ended"] == "cancelled"
    assert ended["members"]["s1"] == "switched, replica active"
    for name in ("s2", "s3"):
        assert ended["members"][name].startswith("not started: cancelled by api:local:")
        assert fleet.state(name) == ("running", "production")
    assert fleet.state("s1") == ("switched", "replica")
    assert "last command (#" in fleet.ha("status").stdout  # degraded: the report is shown


def test_a_cancelled_automatic_failover_pauses_the_members_it_did_not_move(fleet: Fleet) -> None:
    """Else the dead member would start the together failover again at the next look at it:
    the daemon's next start."""
    fleet.write_config(groups=TOGETHER, hooks=fleet.gate("s1"))
    fleet.start_daemon()
    fleet.kill("s3")
    fleet.wait_runbook("s1")  # wave 1 of the together failover, held at its first step
    cancelled = fleet.ha("group", "cancel", "farm")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == (
        "accepted: group farm: failover cancelled: no other member starts; s1 finishes its"
        " failover; s2, s3 paused, or a dead member would start the automatic failover again"
        " (at the daemon's next start, say): `ha group resume farm` lets the daemon act again\n"
    )
    fleet.open_gate()
    wait_report(fleet, 15)
    fleet.stop_daemon()
    fleet.start_daemon()  # s3 is still dead: a look at it would start the failover again
    time.sleep(1.5)
    assert [e["kind"] for e in fleet.journal()].count("group_command") == 1
    assert fleet.state("s1") == ("switched", "replica")
    assert [fleet.state(n) for n in ("s2", "s3")] == [("running", "production")] * 2
    paused = [e for e in fleet.journal() if e["kind"] == "paused"]
    assert [e["scenario"] for e in paused] == ["s2", "s3"]
    assert all(e["actor"].startswith("api:local:") for e in paused)


def test_a_failed_automatic_failover_pauses_the_members_it_did_not_move(fleet: Fleet) -> None:
    """s1's replica is dead: when s3 dies, the together failover is refused at s1 (wave 1) and
    s2, s3 are not started. It waits for an operator, also after a restart: before, the daemon's
    next start looked at s3 again and started the failover anew."""
    fleet.write_config(groups=TOGETHER)
    fleet.start_daemon()
    fleet.replica_seen("s1", False)
    fleet.kill("s3")
    wait_report(fleet)
    ended = report(fleet)
    assert (ended["ok"], ended["ended"]) == (False, "failed")
    assert ended["members"]["s1"].startswith("refused: replica fails its checks")
    assert ended["members"]["s1"].endswith("(`ha failover s1 --force` overrides)")  # not group's
    assert ended["paused"] == ["s1", "s2", "s3"]
    held = (
        "s1, s2, s3 paused, or a dead member would start the automatic failover again (at the"
        " daemon's next start, say): `ha group resume farm` lets the daemon act again"
    )
    assert held in fleet.ha("status").stdout  # under the group: its last command's report
    paused = [e for e in fleet.journal() if e["kind"] == "paused"]
    assert [(e["scenario"], e["actor"]) for e in paused] == [
        (name, "detector") for name in ("s1", "s2", "s3")
    ]
    assert all("the automatic failover of group farm failed" in e["message"] for e in paused)

    fleet.alive("s1", REPLICA, True)  # the failover would go through now: it is not started
    fleet.stop_daemon()
    fleet.start_daemon()
    time.sleep(1.5)
    assert [e["kind"] for e in fleet.journal()].count("group_command") == 1
    assert [fleet.state(n) for n in ("s1", "s2", "s3")] == [("running", "production")] * 3
    pushed = fleet.ha("group", "failover", "farm", "--wait")  # an operator decides
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert [fleet.state(n) for n in ("s1", "s2", "s3")] == [("switched", "replica")] * 3


def test_resume_after_a_failed_automatic_failover_lets_the_daemon_act_again(
    fleet: Fleet,
) -> None:
    """As the hold says: once s1's replica is back, `ha group resume` and the dead s3 starts the
    together failover again. Before, nothing looked at s3 again (no new result, no command naming
    it): the group stayed on a dead production."""
    fleet.write_config(groups=TOGETHER)
    fleet.start_daemon()
    fleet.replica_seen("s1", False)
    fleet.kill("s3")
    wait_report(fleet)
    fleet.replica_seen("s1", True)
    assert fleet.ha("group", "resume", "farm").returncode == 0
    fleet.wait_until(
        lambda: (
            [e["data"]["ok"] for e in fleet.journal() if e["kind"] == "group_report"]
            == [False, True]
        ),
        20,
        "a second, successful automatic failover",
    )
    assert [fleet.state(n) for n in ("s1", "s2", "s3")] == [("switched", "replica")] * 3


def test_group_pause_holds_every_member_and_resume_lets_the_daemon_act(fleet: Fleet) -> None:
    fleet.write_config(groups=TOGETHER)
    fleet.start_daemon()
    assert fleet.ha("pause", "s2").returncode == 0
    planned = fleet.ha("group", "pause", "farm", "--dry-run")
    assert planned.stdout.splitlines() == [
        "dry run: group pause farm would, wave by wave:",
        "  wave 1: s1: keep checking and reporting; take no automatic action",
        "  wave 2: s2: already paused: left as it is",
        "  wave 3: s3: keep checking and reporting; take no automatic action",
    ]
    paused = fleet.ha("group", "pause", "farm")
    assert paused.stdout == "accepted: group farm: s1, s3 paused (s2 paused already)\n"
    assert "group farm: protected (s1 running (paused), s2 running (paused), s3 running" in (
        fleet.ha("status").stdout
    )
    again = fleet.ha("group", "pause", "farm")
    assert again.returncode != 0
    assert "every member of group farm is paused already" in again.stderr
    assert fleet.api("POST", "/v1/groups/farm/pause", {"active": "replica"})[0] == 422
    entries = [e for e in fleet.journal() if e["kind"] == "paused"]
    assert [e["scenario"] for e in entries] == ["s2", "s1", "s3"]
    assert entries[-1]["message"] == "paused: automatic actions off (group farm)"
    assert entries[-1]["actor"].startswith("api:local:")

    fleet.kill("s3")
    fleet.wait_until(
        lambda: fleet.api("GET", "/v1/scenarios/s3")[1]["production"]["dead"], 10, "s3 dead"
    )
    time.sleep(1)
    assert not [e for e in fleet.journal() if e["kind"] == "group_command"]
    assert fleet.state("s3") == ("running", "production")
    resumed = fleet.ha("group", "resume", "farm")
    assert resumed.stdout == "accepted: group farm: s1, s2, s3 resumed\n"
    wait_report(fleet)
    assert report(fleet)["ok"] is True
    assert [fleet.state(n) for n in ("s1", "s2", "s3")] == [("switched", "replica")] * 3


def test_ctrl_c_stops_following_not_the_group_command_and_says_so(fleet: Fleet) -> None:
    fleet.write_config(groups=ORDERED, hooks=fleet.gate("s1"))
    fleet.start_daemon()
    following = fleet.ha_interrupted("group", "failover", "farm", "--wait", once="s1")
    assert following.returncode == 130
    assert following.stderr == (
        "\nha: interrupted: stopped following; group farm's failover goes on in the daemon"
        " (follow it: ha events --group farm --follow; start no other member:"
        " ha group cancel farm)\n"
    )
    fleet.open_gate()
    wait_report(fleet, 15)
    assert report(fleet)["ok"] is True
