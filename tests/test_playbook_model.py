"""A playbook's tasks as the file says them: ``when`` as one expression or, in Ansible's idiom, a
list of expressions that must all hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from ha.errors import PlaybookError
from ha.playbook.expr import evaluate
from ha.playbook.model import load_playbook

PLAYBOOK = """\
- name: Move
  tasks:
    - name: Only when both hold
      switchover: {scenario: web01}
      when:
        - before.active == "production"
        - not paused
    - name: One in a list is the expression itself
      wait: 1s
      when: [before.ok]
"""


def test_a_list_of_whens_must_all_hold(tmp_path: Path) -> None:
    path = tmp_path / "move.yaml"
    path.write_text(PLAYBOOK)
    both, one = load_playbook(path).plays[0].tasks
    assert both.when == '(before.active == "production") and (not paused)'
    assert one.when == "before.ok"
    before = {"active": "production", "ok": True}
    assert evaluate(both.when, {"before": before, "paused": False}) is True
    assert evaluate(both.when, {"before": before, "paused": True}) is False
    assert evaluate(both.when, {"before": {"active": "replica"}, "paused": False}) is False
    assert "when='(before.active == \"production\") and (not paused)'" in both.summary()


@pytest.mark.parametrize(
    ("when", "error"),
    [
        (
            "[ok, \"__import__('os')\"]",
            "line 4: plays[0].tasks[0].when: __import__('os'): call is not allowed in an"
            " expression",
        ),
        ("[ok, 3]", "line 4: plays[0].tasks[0].when: input should be a valid string"),
        ("[]", "line 4: plays[0].tasks[0].when: input should be a valid string"),
    ],
)
def test_a_bad_when_in_a_list_is_named(tmp_path: Path, when: str, error: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"- name: Move\n  tasks:\n    - name: Go\n      when: {when}\n      wait: 1s\n")
    with pytest.raises(PlaybookError) as raised:
        load_playbook(path)
    assert str(raised.value) == error


@pytest.mark.parametrize(
    ("actions", "found"),
    [
        ("failover: {group: farm}\n      switchover: {group: farm}", "it has failover, switchover"),
        ("register: r", "it has none"),
    ],
)
def test_a_task_with_two_actions_or_none_says_which(
    tmp_path: Path, actions: str, found: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"- name: Move\n  tasks:\n    - name: Go\n      {actions}\n")
    with pytest.raises(PlaybookError) as raised:
        load_playbook(path)
    assert str(raised.value) == (
        "line 3: plays[0].tasks[0]: give exactly one action of: run, stop, failover, switchover,"
        f" failback, recover, test, check, wait_for, wait, pause ({found})"
    )
