"""Playbooks: YAML in Ansible's idiom, validated before anything runs.

A playbook is a list of plays; a play has a ``name``, ``vars``, ``tasks`` and optional ``rollback``
tasks; a task has a ``name``, exactly one action, and optionally ``when`` (an expression, or a
list of them that must all hold), ``register`` and ``on_failure`` (stop, continue, rollback).
Errors name the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ha.config_errors import format_validation_error
from ha.duration import Duration, format_duration
from ha.errors import PlaybookError
from ha.groups_config import GROUP_STATES
from ha.machine import STATES
from ha.playbook.expr import ExpressionError, check_expression


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(Model):
    scenario: str | None = None
    group: str | None = None
    active: Literal["production", "replica"] | None = Field(None, description="recover only")

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        if (self.scenario is None) == (self.group is None):
            raise ValueError("give either scenario or group")
        return self


class WaitFor(Model):
    scenario: str | None = None
    group: str | None = None
    state: str | None = Field(
        None, description="scenario state, or group rollup (protected, switched, ...)"
    )
    check: str | None = Field(None, description="a scenario's check, by its name in ha status")
    side: Literal["production", "replica", "active"] = Field("active", description="of check")
    timeout: Duration = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _one_goal(self) -> WaitFor:
        if (self.scenario is None) == (self.group is None):
            raise ValueError("give either scenario or group")
        if (self.state is None) == (self.check is None):
            raise ValueError("give either state or check")
        if self.check is not None and self.scenario is None:
            raise ValueError("check needs scenario: a group has no checks of its own")
        known, what = (STATES, "scenario") if self.scenario is not None else (GROUP_STATES, "group")
        if self.state is not None and self.state not in known:
            shown = ", ".join(state for state in known if not state.endswith(" in progress"))
            if what == "group":
                shown += ", or ACTION in progress"
            raise ValueError(f"state {self.state!r} is no {what} state; one of: {shown}")
        return self


class Check(Model):
    scenario: str
    side: Literal["production", "replica", "active"] = "active"


class Pause(Model):
    prompt: str = "continue?"


ACTIONS = (
    "run",
    "stop",
    "failover",
    "switchover",
    "failback",
    "recover",
    "test",
    "check",
    "wait_for",
    "wait",
    "pause",
)


class Task(Model):
    name: str
    when: str | None = Field(None, description="an expression; a list of them: all must hold")
    register_as: str | None = Field(None, alias="register", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    on_failure: Literal["stop", "continue", "rollback"] = "stop"
    run: Target | None = None
    stop: Target | None = None
    failover: Target | None = None
    switchover: Target | None = None
    failback: Target | None = None
    recover: Target | None = None
    test: Target | None = None
    check: Check | None = None
    wait_for: WaitFor | None = None
    wait: Duration | None = None
    pause: Pause | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _when_is_safe(cls, value: Any) -> Any:
        """One expression, or a list of them that must all hold (Ansible's AND), as one."""
        if isinstance(value, str):
            _safe(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            for expression in value:
                _safe(expression, named=len(value) > 1)
            return value[0] if len(value) == 1 else " and ".join(f"({v})" for v in value)
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Task:
        given = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            found = f" (it has {', '.join(given)})" if given else " (it has none)"
            raise ValueError(f"give exactly one action of: {', '.join(ACTIONS)}{found}")
        if self.recover is not None and self.recover.active is None:
            raise ValueError("recover needs active: production or replica")
        target = getattr(self, given[0])
        if isinstance(target, Target) and target.active is not None and given[0] != "recover":
            raise ValueError(f"active is for recover only, not {given[0]}")
        return self

    @property
    def action(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)

    def summary(self) -> str:
        """The task in one line, as the file says it (``ha play --list-tasks``)."""
        value = getattr(self, self.action)
        if isinstance(value, Model):
            fields = value.model_dump(exclude_defaults=True)  # durations as written: 10m
        else:
            fields = {"for": format_duration(value)}
        fields.update(when=self.when, register=self.register_as)
        if self.on_failure != "stop":
            fields["on_failure"] = self.on_failure
        return " ".join(
            [self.action]
            + [f"{key}={_shown(str(v))}" for key, v in fields.items() if v is not None]
        )


def _safe(expression: str, named: bool = False) -> None:
    """Raise ValueError unless ``expression`` is one a playbook may use (``named``: say which)."""
    try:
        check_expression(expression)
    except ExpressionError as exc:
        raise ValueError(f"{expression}: {exc}" if named else str(exc)) from None


def _shown(value: str) -> str:
    """A value as ``--list-tasks`` shows it: quoted when it has spaces or quotes."""
    return repr(value) if re.search(r"[\s'\"]", value) else value


class Play(Model):
    name: str
    vars: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] = Field(min_length=1)
    rollback: list[Task] = Field(default_factory=list)


class Playbook(BaseModel):
    plays: list[Play]

    def task_lines(self) -> list[str]:
        """Every play and its tasks, in order, one line each (``ha play --list-tasks``)."""
        lines = []
        for play in self.plays:
            lines.append(f"PLAY [{play.name}]")
            lines += [f"  TASK [{task.name}] {task.summary()}" for task in play.tasks]
            lines += [f"  ROLLBACK TASK [{task.name}] {task.summary()}" for task in play.rollback]
        return lines

    def start_of(self, name: str) -> tuple[int, int]:
        """Where ``--start-at-task NAME`` starts: the first task (not a rollback's) of that
        name, as (play, task). Raises PlaybookError listing the task names."""
        for p, play in enumerate(self.plays):
            for t, task in enumerate(play.tasks):
                if task.name == name:
                    return p, t
        names = ", ".join(f"[{task.name}]" for play in self.plays for task in play.tasks)
        raise PlaybookError([("--start-at-task", f"no task named {name!r}; its tasks: {names}")])


def _lines(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """The line of every mapping key and list item in the file, by its path."""
    table: dict[tuple[Any, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            here = (*path, key_node.value)
            table[here] = key_node.start_mark.line + 1
            table.update(_lines(value, here))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, index)
            table[here] = item.start_mark.line + 1
            table.update(_lines(item, here))
    return table


def load_playbook(path: Path) -> Playbook:
    """Read and validate a playbook; PlaybookError names each bad field with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError([("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else str(path)
        raise PlaybookError(
            [("", f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}")]
        ) from None
    if not isinstance(data, list) or node is None:
        raise PlaybookError([("", "a playbook is a list of plays")])
    try:
        return Playbook.model_validate({"plays": data})
    except ValidationError as exc:
        lines = _lines(node)
        errors = format_validation_error(exc, {"plays": data})
        raise PlaybookError(
            [(_with_line(where, lines), message) for where, message in errors]
        ) from None


def with_lines(path: Path, errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each (field path, message) of a playbook that loaded, with the line of its field."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    lines = _lines(node) if node is not None else {}
    return [(_with_line(where, lines), message) for where, message in errors]


def _with_line(where: str, lines: dict[tuple[Any, ...], int]) -> str:
    """``plays[0].tasks[1].wait_for`` -> ``line 7: plays[0].tasks[1].wait_for``: the line of the
    deepest part of the path that the file has."""
    parts = where.replace("[", ".").replace("]", "").split(".")[1:]  # the file has no "plays"
    path = tuple(int(p) if p.isdigit() else p for p in parts if p)
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return f"line {lines[path[:end]]}: {where}"
    return where
