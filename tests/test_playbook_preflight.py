"""A playbook's names are checked before it runs: variables set before they are read, and the
scenarios, groups and checks the daemon has (its /v1/status, given here as the daemon answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ha.cli import main
from ha.playbook.model import load_playbook
from ha.playbook.preflight import problems

STATUS = {
    "scenarios": [
        {
            "name": "web01",
            "production": {"checks": [{"check": "http"}]},
            "replica": {"checks": [{"check": "http"}, {"check": "db"}]},
        }
    ],
    "groups": [{"name": "farm"}],
}

PLAYBOOK = """\
- name: Move
  vars: {target: web01}
  tasks:
    - name: Typo in a variable
      failover: {scenario: "{{ tagret }}"}
    - name: Reads a result before it is registered
      wait_for: {scenario: web01, state: switched}
      when: moved.ok
    - name: Registers it
      switchover: {scenario: "{{ target }}"}
      register: moved
    - name: Reads it afterwards, and names what only the run knows
      wait_for: {scenario: "{{ moved.scenario }}", state: switched}
      when: moved.ok
    - name: A check the replica has, and one only production lacks
      wait_for: {scenario: web01, check: db, side: production}
    - name: Not an expression a playbook may use
      pause: {prompt: "{{ __import__('os') }}"}
    - name: Set with -e
      test: {group: "{{ which }}"}
  rollback:
    - name: A rollback may read any task's result
      recover: {scenario: "{{ moved.scenario }}", active: production}
"""


def test_every_unset_variable_and_unknown_name_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "move.yaml"
    path.write_text(PLAYBOOK)
    found = problems(load_playbook(path), {"which": "farm"}, STATUS)
    assert found == [
        (
            "plays[0].tasks[0].failover.scenario",
            "no variable 'tagret': set it in the play's vars, with -e tagret=..., or register it"
            " in an earlier task",
        ),
        (
            "plays[0].tasks[1].when",
            "no variable 'moved': set it in the play's vars, with -e moved=..., or register it in"
            " an earlier task",
        ),
        (
            "plays[0].tasks[4].wait_for.check",
            "web01 has no check 'db' on its production side; its checks: http",
        ),
        (
            "plays[0].tasks[5].pause.prompt",
            "{{ __import__('os') }}: call is not allowed in an expression",
        ),
    ]


def test_a_group_from_e_that_the_daemon_lacks(tmp_path: Path) -> None:
    path = tmp_path / "move.yaml"
    path.write_text(PLAYBOOK)
    found = problems(load_playbook(path), {"which": "sharepoint"}, STATUS)
    assert ("plays[0].tasks[6].test.group", "no group named 'sharepoint'") in found


@pytest.mark.parametrize("given", ["group", "=farm", "1st=farm"])
def test_e_takes_name_equals_value_only(
    given: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["play", str(tmp_path / "any.yaml"), "-e", given])
    assert exited.value.code == 2
    assert f"argument -e/--extra: expected NAME=VALUE, got {given!r}" in capsys.readouterr().err


def test_start_at_task_checks_only_what_runs_and_names_a_skipped_register(
    tmp_path: Path,
) -> None:
    path = tmp_path / "move.yaml"
    path.write_text(PLAYBOOK)
    playbook = load_playbook(path)
    start = playbook.start_of("Reads it afterwards, and names what only the run knows")
    assert start == (0, 3)
    found = problems(playbook, {"which": "farm"}, STATUS, start)
    assert found == [  # the typo in task 0 and the early read in task 1 do not run
        (
            "plays[0].tasks[3].when",
            "no variable 'moved': task [Registers it] registers it, but --start-at-task skips"
            " that task",
        ),
        (
            "plays[0].tasks[3].wait_for.scenario",
            "no variable 'moved': task [Registers it] registers it, but --start-at-task skips"
            " that task",
        ),
        (
            "plays[0].tasks[4].wait_for.check",
            "web01 has no check 'db' on its production side; its checks: http",
        ),
        (
            "plays[0].tasks[5].pause.prompt",
            "{{ __import__('os') }}: call is not allowed in an expression",
        ),
        (
            "plays[0].rollback[0].recover.scenario",
            "no variable 'moved': task [Registers it] registers it, but --start-at-task skips"
            " that task",
        ),
    ]


def test_start_at_a_task_the_playbook_lacks_lists_its_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "move.yaml"
    path.write_text(
        PLAYBOOK.replace("Reads it afterwards, and names what only the run knows", "Then")
    )
    code = main(["play", str(path), "--start-at-task", "then", "-c", str(tmp_path / "none.yaml")])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{path}: invalid playbook"
    assert err[1].startswith(
        "  --start-at-task: no task named 'then'; its tasks: [Typo in a variable], [Reads a result"
    )
    assert err[1].endswith(
        "[Then], [A check the replica has, and one only production lacks],"
        " [Not an expression a playbook may use], [Set with -e]"
    )


def test_list_tasks_prints_each_task_in_a_line_and_asks_no_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "move.yaml"
    path.write_text(PLAYBOOK)
    assert main(["play", str(path), "--list-tasks", "-c", str(tmp_path / "none.yaml")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "PLAY [Move]",
        "  TASK [Typo in a variable] failover scenario='{{ tagret }}'",
        "  TASK [Reads a result before it is registered] wait_for scenario=web01 state=switched"
        " when=moved.ok",
        "  TASK [Registers it] switchover scenario='{{ target }}' register=moved",
        "  TASK [Reads it afterwards, and names what only the run knows] wait_for"
        " scenario='{{ moved.scenario }}' state=switched when=moved.ok",
        "  TASK [A check the replica has, and one only production lacks] wait_for scenario=web01"
        " check=db side=production",
        "  TASK [Not an expression a playbook may use] pause prompt=\"{{ __import__('os') }}\"",
        "  TASK [Set with -e] test group='{{ which }}'",
        "  ROLLBACK TASK [A rollback may read any task's result] recover"
        " scenario='{{ moved.scenario }}' active=production",
    ]


def test_a_good_playbook_with_a_missing_config_blames_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "move.yaml"
    path.write_text("- name: Move\n  tasks:\n    - name: Go\n      failover: {scenario: web01}\n")
    config = tmp_path / "none.yaml"
    assert main(["play", str(path), "--check", "-c", str(config)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{config}: invalid configuration",
        f"  cannot read {config}: No such file or directory",
    ]
