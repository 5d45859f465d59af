"""Before a playbook runs: every name it uses must exist, so that a playbook written for another
site, or with a typo, stops before its first action rather than halfway through.

Two kinds of name: the variables a task reads (``{{ scenario }}``, ``when: before.active == ...``)
must be set before the task runs, by the play's ``vars``, by ``-e``, or by an earlier task's
``register``; and the scenarios, groups and checks a task names must be the daemon's (its
``/v1/status``). A name that comes from a result registered at run time is checked when its task
runs. Each problem is a (field path, message), as a malformed playbook's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ha.playbook.expr import PLACEHOLDER, ExpressionError, fill, names_in
from ha.playbook.model import Playbook, Task

SIDES = ("production", "replica")


def problems(
    playbook: Playbook,
    extra: Mapping[str, Any],
    status: Mapping[str, Any],
    start: tuple[int, int] = (0, 0),
) -> list[tuple[str, str]]:
    """Each (field path, message) of ``playbook`` naming something unset or unknown;
    ``status`` is the daemon's answer to ``GET /v1/status``. ``start`` (play, task: from
    --start-at-task): the tasks before it do not run, so they register nothing."""
    checks = {
        s["name"]: {side: {c["check"] for c in s[side]["checks"]} for side in SIDES}
        for s in status["scenarios"]
    }
    groups = {g["name"] for g in status["groups"]}
    found = []
    for p, play in enumerate(playbook.plays):
        if p < start[0]:
            continue
        first = start[1] if p == start[0] else 0
        skipped = {t.register_as: t.name for t in play.tasks[:first] if t.register_as}
        names = {**play.vars, **extra}
        registered = {task.register_as for task in play.tasks[first:] if task.register_as}
        for part, tasks, offset in (
            ("tasks", play.tasks[first:], first),
            ("rollback", play.rollback, 0),
        ):
            known = set(names) | (registered if part == "rollback" else set())
            for t, task in enumerate(tasks, offset):
                for field, message in [
                    *_unset(task, known, skipped),
                    *_unknown(task, names, checks, groups),
                ]:
                    found.append((f"plays[{p}].{part}[{t}].{field}", message))
                if task.register_as:
                    known.add(task.register_as)
    return found


def _unset(task: Task, known: set[str], skipped: Mapping[str, str]) -> list[tuple[str, str]]:
    """Where the task reads a variable that nothing sets before it runs, or an expression that
    is not allowed. ``skipped``: the variables that tasks --start-at-task skips register."""
    target = getattr(task, task.action)
    texts = {"name": task.name, "when": task.when}
    for field in ("scenario", "group", "check", "prompt"):
        texts[f"{task.action}.{field}"] = getattr(target, field, None)
    found = []
    for field, text in texts.items():
        if not isinstance(text, str):
            continue
        for expression in [text] if field == "when" else PLACEHOLDER.findall(text):
            try:
                unset = sorted(names_in(expression) - known)
            except ExpressionError as exc:
                found.append((field, f"{{{{ {expression} }}}}: {exc}"))
                continue
            found += [
                (
                    field,
                    f"no variable {name!r}: task [{skipped[name]}] registers it, but"
                    " --start-at-task skips that task"
                    if name in skipped
                    else f"no variable {name!r}: set it in the play's vars, with -e"
                    f" {name}=..., or register it in an earlier task",
                )
                for name in unset
            ]
    return found


def _unknown(
    task: Task,
    names: Mapping[str, Any],
    checks: Mapping[str, Mapping[str, set[str]]],
    groups: set[str],
) -> list[tuple[str, str]]:
    """Where the task names a scenario, a group or a check the daemon does not have."""
    action, target = task.action, getattr(task, task.action)
    scenario = _known_now(getattr(target, "scenario", None), names)
    group = _known_now(getattr(target, "group", None), names)
    check = _known_now(getattr(target, "check", None), names)
    if scenario is not None and scenario not in checks:
        return [(f"{action}.scenario", f"no scenario named {scenario!r}")]
    if group is not None and group not in groups:
        return [(f"{action}.group", f"no group named {group!r}")]
    if scenario is None or check is None:
        return []
    side = getattr(target, "side", "active")
    have = {
        label for s in (SIDES if side == "active" else (side,)) for label in checks[scenario][s]
    }
    if check in have:
        return []
    where = "" if side == "active" else f" on its {side} side"
    listed = ", ".join(sorted(have)) or "none"
    return [(f"{action}.check", f"{scenario} has no check {check!r}{where}; its checks: {listed}")]


def _known_now(text: Any, names: Mapping[str, Any]) -> str | None:
    """``text`` with its variables filled in, if it is a name known before the run."""
    if not isinstance(text, str):
        return None
    try:
        return fill(text, names)
    except ExpressionError:
        return None
