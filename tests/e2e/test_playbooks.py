"""Playbooks: every example in playbooks/ runs against a live daemon; --check changes nothing;
a malformed playbook is refused with the line and the field."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.fleet import Fleet

PLAYBOOKS = Path(__file__).parent.parent.parent / "playbooks"
GROUPS = [{"name": "farm", "scenarios": ["s1", "s2", "s3"], "ordered": True}]
ACTING = ("transition", "command", "group_command", "proposal")


def play(fleet: Fleet, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """An example, on the group farm (their vars name the demo's group: test_demo runs them)."""
    return fleet.ha("play", str(PLAYBOOKS / name), "-e", "group=farm", *args, timeout=120)


@pytest.fixture
def farm(fleet: Fleet) -> Fleet:
    fleet.write_config(groups=GROUPS)
    fleet.start_daemon()
    fleet.wait_until(lambda: "group farm: protected" in fleet.ha("status").stdout, 10, "protected")
    return fleet


def test_every_example_is_exercised() -> None:
    """Each has a test here, but ar-rehearsal.yaml: test_assured runs it (it needs replicas with
    machines and snapshots)."""
    assert sorted(p.name for p in PLAYBOOKS.glob("*.yaml")) == [
        "ar-rehearsal.yaml",
        "dr-drill.yaml",
        "maintenance-switchover.yaml",
        "planned-migration.yaml",
    ]


def test_maintenance_switchover_moves_the_group_and_back(farm: Fleet) -> None:
    done = play(farm, "maintenance-switchover.yaml", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "TASK [Switch the group to its replicas, in dependency waves]" in done.stdout
    assert "group farm is switched" in done.stdout
    assert [farm.state(n) for n in ("s1", "s2", "s3")] == [("running", "production")] * 3
    commands = [e for e in farm.journal() if e["kind"] == "group_command"]
    assert [c["data"]["action"] for c in commands] == ["switchover", "failback"]
    assert "play 'Maintenance switchover' task" in commands[0]["actor"]


def test_dr_drill_fails_over_checks_and_fails_back(farm: Fleet) -> None:
    done = play(farm, "dr-drill.yaml", "--yes", "-e", "probe=s2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "TASK [The replica of s2 passes its checks]" in done.stdout
    assert "s2 switched; replica passes" in done.stdout
    assert farm.transitions("s2")[-1] == "failing_back -> running"


def test_planned_migration_of_one_scenario(farm: Fleet) -> None:
    done = play(farm, "planned-migration.yaml", "-e", "scenario=s4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert farm.state("s4") == ("switched", "replica")
    again = play(farm, "planned-migration.yaml", "-e", "scenario=s4")
    assert again.returncode == 0, again.stdout + again.stderr
    assert 'skipped: when before.active == "production" is false' in again.stdout


def test_check_mode_changes_nothing(farm: Fleet) -> None:
    before = [e["id"] for e in farm.journal() if e["kind"] in ACTING]
    checked = play(farm, "maintenance-switchover.yaml", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "would: wave 1: s1: switchover" in checked.stdout
    assert "would ask: switch farm to its replicas?" in checked.stdout
    # The failback is judged on the group the switchover would leave, not on the one now.
    back = checked.stdout.split("TASK [Bring the group back to production]\n")[1]
    assert back.splitlines()[:4] == [
        "  (as the tasks before would leave them: s1 switched, s2 switched, s3 switched)",
        "  would: wave 1: s1: failback",
        "  would: wave 2: s2: failback",
        "  would: wave 3: s3: failback",
    ]
    drill = play(farm, "dr-drill.yaml", "--check", "-e", "probe=s2")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "s2 switched (as the tasks before would leave it); replica passes" in drill.stdout
    back = drill.stdout.split("TASK [Fail back once the replicas proved themselves]\n")[1]
    assert "would: wave 1: s1: failback" in back.split("TASK")[0]  # its `when` holds
    assert [e["id"] for e in farm.journal() if e["kind"] in ACTING] == before
    assert [farm.state(n) for n in farm.names] == [("running", "production")] * 4


def test_a_pause_without_a_terminal_or_yes_stops_the_play(farm: Fleet) -> None:
    stopped = play(farm, "dr-drill.yaml", "-e", "probe=s2")
    assert stopped.returncode == 1
    assert "cannot ask: no terminal (use --yes)" in stopped.stdout
    assert not [e for e in farm.journal() if e["kind"] == "group_command"]


def test_a_malformed_playbook_names_the_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- name: broken\n"
        "  tasks:\n"
        "    - name: ok\n"
        "      wait: 1s\n"
        "    - name: no target\n"
        "      failover: {scenario: a, grup: b}\n"
        "    - name: unsafe\n"
        "      when: __import__('os').system('id')\n"
        "      wait: 1s\n"
        "    - name: a side to keep, but not a recover\n"
        "      test: {group: farm, active: replica}\n"
        "    - name: a group has no checks\n"
        "      wait_for: {group: farm, check: script}\n"
        "    - name: a typo would wait until the timeout\n"
        "      wait_for: {group: farm, state: switchd, timeout: 10m}\n"
        "    - name: a scenario state, not a group's\n"
        "      wait_for: {scenario: s1, state: protected}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "ha", "play", str(bad), "-c", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert f"{bad}: invalid playbook" in result.stderr
    assert "line 6: plays[0].tasks[1].failover.grup: unknown field" in result.stderr
    assert "line 8: plays[0].tasks[2].when: call is not allowed in an expression" in result.stderr
    assert "line 10: plays[0].tasks[3]: active is for recover only, not test" in result.stderr
    assert "line 13: plays[0].tasks[4].wait_for: check needs scenario: a group has no" in (
        result.stderr
    )
    assert (
        "line 15: plays[0].tasks[5].wait_for: state 'switchd' is no group state; one of:"
        " protected, degraded, switched, stopped, blocked, split, or ACTION in progress"
    ) in result.stderr
    assert "line 17: plays[0].tasks[6].wait_for: state 'protected' is no scenario state;" in (
        result.stderr
    )


ELSEWHERE = """\
- name: Written for another site
  vars: {group: farm}
  tasks:
    - name: Fail the group over
      failover: {group: "{{ group }}"}
      register: moved
    - name: A scenario this site does not have
      check: {scenario: web01}
    - name: A check s2 does not have
      wait_for: {scenario: s2, check: http, side: replica}
    - name: A name known only once the group moved is checked when the task runs
      wait_for: {scenario: "{{ moved.nothing }}", state: switched}
    - name: A variable nothing sets
      wait_for: {group: "{{ grup }}", state: protected}
  rollback:
    - name: A group this site does not have
      recover: {group: sharepoint, active: production}
"""


def test_unknown_names_and_unset_variables_are_refused_before_any_task_runs(
    farm: Fleet, tmp_path: Path
) -> None:
    """A playbook written for another site stops before its first action, not halfway."""
    playbook = tmp_path / "elsewhere.yaml"
    playbook.write_text(ELSEWHERE)
    before = [e["id"] for e in farm.journal() if e["kind"] in ACTING]
    for args in ((), ("--check",)):
        refused = farm.ha("play", str(playbook), "--yes", *args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stdout == ""
        assert refused.stderr.splitlines() == [
            f"{playbook}: invalid playbook",
            "  line 8: plays[0].tasks[1].check.scenario: no scenario named 'web01'",
            "  line 10: plays[0].tasks[2].wait_for.check: s2 has no check 'http' on its replica"
            " side; its checks: script",
            "  line 14: plays[0].tasks[4].wait_for.group: no variable 'grup': set it in the"
            " play's vars, with -e grup=..., or register it in an earlier task",
            "  line 17: plays[0].rollback[0].recover.group: no group named 'sharepoint'",
        ]
    assert [e["id"] for e in farm.journal() if e["kind"] in ACTING] == before
    assert [farm.state(n) for n in farm.names] == [("running", "production")] * 4


WAIT_FOR_CHECKS = """\
- name: Wait for checks
  tasks:
    - name: The replica of s2 serves
      wait_for: {scenario: s2, check: script, side: replica, timeout: 5s}
      register: served
    - name: The replica of s3 serves
      wait_for: {scenario: s3, check: script, side: replica, timeout: 1s}
      when: 'served.check == "replica script: exit 0"'
"""


def test_wait_for_a_check_waits_until_it_passes_or_says_what_it_saw(
    farm: Fleet, tmp_path: Path
) -> None:
    playbook = tmp_path / "checks.yaml"
    playbook.write_text(WAIT_FOR_CHECKS)
    farm.alive("s3", "127.0.0.3", False)  # s3's replica fails its check
    checked = farm.ha("play", "--check", str(playbook))
    assert "would wait up to 5s until s2's replica side passes script" in checked.stdout
    done = farm.ha("play", str(playbook), timeout=60)
    assert done.returncode == 1
    assert "TASK [The replica of s2 serves]\n  s2 replica script: exit 0" in done.stdout
    assert "failed: s3 replica script: exit 1 after 1s; waited until s3's replica side" in (
        done.stdout
    )


def test_waiting_for_a_group_that_stays_degraded_says_which_member_is_why(
    farm: Fleet, tmp_path: Path
) -> None:
    playbook = tmp_path / "protected.yaml"
    playbook.write_text(
        "- name: Wait\n"
        "  tasks:\n"
        "    - name: Protected\n"
        "      wait_for: {group: farm, state: protected, timeout: 1s}\n"
    )
    farm.alive("s2", "127.0.0.3", False)  # s2 has no replica to fail over to
    farm.wait_until(lambda: "farm: degraded" in farm.ha("status").stdout, 10, "degraded")
    done = farm.ha("play", str(playbook), timeout=60)
    assert done.returncode == 1
    assert (
        "failed: group farm is degraded (s1 running, s2 running with its replica dead,"
        " s3 running) after 1s; waited until group farm is protected"
    ) in done.stdout


ROLLBACK = """\
- name: Switch with a way back
  tasks:
    - name: Switch the group
      switchover: {group: farm}
      on_failure: rollback
  rollback:
    - name: Every member back on production
      recover: {group: farm, active: production}
"""


def test_check_mode_foresees_a_refused_member_and_shows_the_rollback(
    farm: Fleet, tmp_path: Path
) -> None:
    playbook = tmp_path / "rollback.yaml"
    playbook.write_text(ROLLBACK)
    farm.replica_seen("s2", False)  # a switchover of s2 would be refused
    before = [e["id"] for e in farm.journal() if e["kind"] in ACTING]
    plan = farm.ha("group", "switchover", "farm", "--dry-run").stdout.splitlines()
    assert plan[1:] == [
        "  wave 1: s1: switchover",
        "  wave 2: s2: refused: replica fails its checks (script); switchover to a dead replica"
        " is refused (`ha switchover s2 --force` overrides)",
        "  wave 3: s3: not started: an earlier wave would fail",
    ]
    checked = farm.ha("play", "--check", str(playbook))
    assert checked.returncode == 1
    after = checked.stdout.split("  would: wave 3: s3: not started: an earlier wave would fail\n")
    assert after[1].splitlines() == [
        "  failed: s2 would be refused",
        "ROLLBACK [Switch with a way back]",
        "TASK [Every member back on production]",
        "  (as the tasks before would leave them: s1 switched)",
        "  would: wave 1: s1: failback (to make production active)",
        "  would: wave 2: s2: already running with production active",
        "  would: wave 3: s3: already running with production active",
    ]
    assert [e["id"] for e in farm.journal() if e["kind"] in ACTING] == before


def test_a_playbook_waits_on_through_a_restart_of_the_daemon(farm: Fleet, tmp_path: Path) -> None:
    playbook = tmp_path / "wait.yaml"
    playbook.write_text(
        "- name: Wait\n"
        "  tasks:\n"
        "    - name: Switched\n"
        "      wait_for: {group: farm, state: switched, timeout: 60s}\n"
    )
    argv = [sys.executable, "-m", "ha", "play", str(playbook), "-c", str(farm.config_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as play:
        try:
            assert play.stdout is not None
            assert play.stdout.readline() == "PLAY [Wait]\n"
            assert play.stdout.readline() == "TASK [Switched]\n"
            assert farm.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
            farm.start_daemon()
            assert farm.ha("group", "failover", "farm").returncode == 0
            out, err = play.communicate(timeout=60)
        finally:
            play.kill()
    assert play.returncode == 0, out + err
    assert "  group farm is switched (s1 switched, s2 switched, s3 switched)" in out
    assert "cannot reach the daemon" in err
    assert "ha: the daemon answers again" in err


MOVE = """\
- name: Move the farm
  tasks:
    - name: Switch the farm over
      switchover: {group: farm}
      on_failure: rollback
    - name: Then wait
      wait: 1s
  rollback:
    - name: Back
      failback: {group: farm}
"""


def test_ctrl_c_says_where_the_playbook_stopped_and_what_goes_on(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.write_config(groups=GROUPS, hooks=fleet.gate("s1"))
    fleet.start_daemon()
    playbook = tmp_path / "move.yaml"
    playbook.write_text(MOVE)
    play = fleet.ha_interrupted("play", str(playbook), once="s1")
    assert play.returncode == 130
    assert play.stdout.splitlines() == [
        "PLAY [Move the farm]",
        "TASK [Switch the farm over]",
        "  group farm: switchover started",
    ]
    assert play.stderr == (
        "\nha: interrupted: task [Switch the farm over] of play [Move the farm]: stopped"
        " following; group farm's switchover goes on in the daemon (follow it: ha events"
        " --group farm --follow; start no other member: ha group cancel farm); the tasks after"
        " it did not run (nor the rollback)\n"
    )
    fleet.open_gate()
    fleet.wait_until(lambda: "group farm: switched" in fleet.ha("status").stdout, 15, "switched")
    commands = [e["data"]["action"] for e in fleet.journal() if e["kind"] == "group_command"]
    assert commands == ["switchover"]  # no rollback


STEPS = """\
- name: Move two
  tasks:
    - name: Where is s2
      check: {scenario: s2}
      register: before
    - name: Switch s2 over
      switchover: {scenario: s2}
    - name: Then s3
      switchover: {scenario: s3}
"""


def test_a_failed_task_says_how_to_go_on_from_it_and_start_at_task_does(
    farm: Fleet, tmp_path: Path
) -> None:
    playbook = tmp_path / "two.yaml"
    playbook.write_text(STEPS)
    farm.replica_seen("s2", False)  # s2 has no replica to switch to
    failed = farm.ha("play", str(playbook))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stdout.splitlines()[-1] == (
        f"to go on from the failed task once its cause is fixed: ha play {playbook}"
        " --start-at-task 'Switch s2 over'"
    )
    assert farm.state("s3") == ("running", "production")

    farm.alive("s2", "127.0.0.3", True)
    farm.wait_until(lambda: "group farm: protected" in farm.ha("status").stdout, 10, "protected")
    again = farm.ha("play", str(playbook), "--start-at-task", "Switch s2 over")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[:3] == [
        "PLAY [Move two]",
        "  --start-at-task: skipped 1 task before it",
        "TASK [Switch s2 over]",
    ]
    assert farm.state("s2") == ("switched", "replica")
    assert farm.state("s3") == ("switched", "replica")
