"""Running a playbook against the daemon's API, or dry-running it (``--check``: changes nothing).

Every action goes through the API, so it is journaled like any operator command, with the play
and task named as the actor. ``{{ name }}`` in a task's strings is a variable of the play or a
result registered by an earlier task. ``ha.playbook.preflight`` checks the names a playbook
uses before it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ha.client import (
    ApiClient,
    ApiError,
    Interrupted,
    Verdict,
    goes_on,
    group_ended,
    runbook_ended,
    test_ended,
)
from ha.format import members_line, report_message
from ha.playbook.expr import ExpressionError, evaluate, fill
from ha.playbook.model import Play, Playbook, Task
from ha.scenario import SUPPOSABLE

BUTTONS = ("run", "stop", "failover", "switchover", "failback", "recover", "test")
POLL = 0.2
LEAVES = {
    "run": "running",
    "stop": "stopped",
    "failover": "switched",
    "switchover": "switched",
    "failback": "running",
}  # the state each command leaves a scenario in (recover: as its active side says)


def leaves(action: str, active: str | None) -> str | None:
    """The state ``action`` leaves a scenario in, or None (a test leaves it as it was)."""
    if action == "recover":
        return "running" if active == "production" else "switched"
    return LEAVES.get(action)


class TaskFailed(Exception):
    """A task did not reach its goal; the message says why."""


class Runner:
    def __init__(
        self,
        client: ApiClient,
        *,
        check: bool,
        yes: bool,
        say: Callable[[str], None],
        ask: Callable[[str], bool],
    ) -> None:
        self.client = client
        self.check = check
        self.yes = yes
        self.say = say
        self.ask = ask
        # --check: the state the tasks before would have left each scenario in, so that a
        # failback after a switchover is judged on a switched scenario (the API's as_if).
        self.supposed: dict[str, str] = {}
        # The task that failed and stopped the playbook with nothing rolled back: a run with
        # --start-at-task may go on from it.
        self.stopped_at: Task | None = None

    def run(
        self, playbook: Playbook, extra: dict[str, Any], start: tuple[int, int] = (0, 0)
    ) -> bool:
        """Run the plays from ``start`` (play, task: --start-at-task) on; False once a task
        fails whose on_failure is not continue."""
        first_play, first_task = start
        for number, play in enumerate(playbook.plays[first_play:], first_play):
            skip = first_task if number == first_play else 0
            if not self._play(play, {**play.vars, **extra}, skip):
                return False
        return True

    def _play(self, play: Play, names: dict[str, Any], skip: int = 0) -> bool:
        self.say(f"PLAY [{play.name}]")
        if skip:
            self.say(f"  --start-at-task: skipped {skip} task{'s' if skip > 1 else ''} before it")
        for task in play.tasks[skip:]:
            try:
                with self._interruptible(play, task):
                    self._task(play, task, names)
            except (TaskFailed, ApiError, ExpressionError) as exc:
                self.say(f"  failed: {exc}")
                if task.on_failure == "continue":
                    continue
                if task.on_failure == "rollback" and play.rollback:
                    self.say(f"ROLLBACK [{play.name}]")
                    for undo in play.rollback:
                        try:
                            with self._interruptible(play, undo, rollback=True):
                                self._task(play, undo, names)
                        except (TaskFailed, ApiError, ExpressionError) as again:
                            self.say(f"  failed: {again}")
                else:
                    self.stopped_at = task
                return False
        return True

    @contextmanager
    def _interruptible(self, play: Play, task: Task, rollback: bool = False) -> Iterator[None]:
        """Ctrl-C: say at which task the playbook stopped, what goes on in the daemon (the
        command that task asked for), and that nothing after it ran (no rollback either)."""
        try:
            yield
        except (Interrupted, KeyboardInterrupt) as exc:
            going_on = f": {exc}" if isinstance(exc, Interrupted) else ""
            which = "rollback task" if rollback else "task"
            rest = " (nor the rollback)" if play.rollback and not rollback else ""
            changed = "; --check: nothing was changed" if self.check else ""
            raise Interrupted(
                f"{which} [{task.name}] of play [{play.name}]{going_on};"
                f" the {which}s after it did not run{rest}{changed}"
            ) from None

    def _task(self, play: Play, task: Task, names: dict[str, Any]) -> None:
        try:
            title = self._fill(task.name, names)
        except ExpressionError:
            title = task.name
        self.say(f"TASK [{title}]")
        if task.when is not None and not self._when(task.when, names):
            return
        result = getattr(self, f"_do_{task.action}")(play, task, names)
        if task.register_as:
            names[task.register_as] = result

    def _when(self, expression: str, names: dict[str, Any]) -> bool:
        try:
            if evaluate(expression, names):
                return True
        except ExpressionError:
            if not self.check:
                raise
            self.say(f"  when {expression}: known only when it runs; shown as if true")
            return True
        self.say(f"  skipped: when {expression} is false")
        return False

    def _fill(self, text: str | None, names: dict[str, Any]) -> str | None:
        if text is None:
            return None
        return fill(text, names)

    def _actor(self, play: Play, task: Task) -> None:
        self.client.actor = f"{self.client.user} play {play.name!r} task {task.name!r}"

    def _button(self, play: Play, task: Task, names: dict[str, Any]) -> dict[str, Any]:
        target = getattr(task, task.action)
        scenario, group = self._fill(target.scenario, names), self._fill(target.group, names)
        path = (
            f"/v1/groups/{group}/{task.action}"
            if group
            else f"/v1/scenarios/{scenario}/{task.action}"
        )
        body: dict[str, Any] = {"dry_run": self.check}
        if target.active:
            body["active"] = target.active
        if self.check and self.supposed:
            body["as_if"] = self.supposed
        self._actor(play, task)
        answer: dict[str, Any] = self.client.request("POST", path, body)
        if self.check:
            self._say_plan(answer, scenario, leaves(task.action, target.active))
            return {"ok": True, "dry_run": True}
        self.say(f"  {answer['message']}")
        verdict: Verdict
        if group:
            verdict, query = group_ended(group), ""
        elif task.action == "test":
            verdict, query = test_ended, f"&scenario={scenario}"
        elif answer.get("runbook"):
            verdict, query = runbook_ended, f"&runbook={answer['runbook']}"
        else:
            return {"ok": True, **answer}
        ended: dict[str, Any] = {}

        def seen(event: dict[str, Any]) -> bool | None:
            result = verdict(event)
            if result is not None:
                ended.update(event)
            return result

        going_on = goes_on(task.action, scenario=scenario, group=group)
        followed = self.client.follow(answer["command"], query, seen, going_on)
        message = report_message(ended) if group else ended["message"]
        if not followed:
            raise TaskFailed(f"{task.action} of {group or scenario} did not complete: {message}")
        self.say(f"  {message}")
        return {"ok": True, **answer, "ended": ended}

    def _say_plan(self, answer: dict[str, Any], scenario: str | None, after: str | None) -> None:
        """Print a dry run's steps (or waves), saying which scenarios it judged as the tasks
        before would leave them, and suppose the state it would leave its scenarios in. Raises
        TaskFailed when a member would be refused (the group command would fail)."""
        if "plan" in answer:  # a group's waves
            members = [row["scenario"] for row in answer["plan"]]
            moved = [row["scenario"] for row in answer["plan"] if row["acts"]]
        else:
            members = moved = [str(scenario)]
        judged = [f"{name} {self.supposed[name]}" for name in members if name in self.supposed]
        if judged:
            self.say(f"  (as the tasks before would leave them: {', '.join(judged)})")
        for step in answer.get("steps") or answer.get("plan") or []:
            where = f"wave {step['wave']}: {step['scenario']}" if "wave" in step else step["step"]
            self.say(f"  would: {where}: {step['plan']}")
        if after is not None:
            self.supposed.update(dict.fromkeys(moved, after))
        refused = [row["scenario"] for row in answer.get("plan", []) if row["refused"]]
        if refused:
            raise TaskFailed(f"{', '.join(refused)} would be refused")

    _do_run = _do_stop = _do_failover = _do_switchover = _do_failback = _do_recover = _button
    _do_test = _button

    def _do_check(self, play: Play, task: Task, names: dict[str, Any]) -> dict[str, Any]:
        assert task.check is not None
        name = self._fill(task.check.scenario, names)
        view: dict[str, Any] = self.client.read(f"/v1/scenarios/{name}")
        state = view["state"]
        if self.check and name in self.supposed:  # as the tasks before would leave it
            state = self.supposed[str(name)]
            view = {**view, "state": state, "active": SUPPOSABLE.get(state) or view["active"]}
            state += " (as the tasks before would leave it)"
        side = view["active"] if task.check.side == "active" else task.check.side
        failing = [c["check"] for c in view[side]["checks"] if not c["ok"]]
        self.say(f"  {name} {state}; {side} " + (f"fails {failing}" if failing else "passes"))
        if failing and not self.check:
            raise TaskFailed(f"{name}: {side} fails {', '.join(failing)}")
        return view

    def _do_wait_for(self, play: Play, task: Task, names: dict[str, Any]) -> dict[str, Any]:
        wait = task.wait_for
        assert wait is not None
        scenario, group = self._fill(wait.scenario, names), self._fill(wait.group, names)
        what = f"group {group}" if group else str(scenario)
        check = self._fill(wait.check, names)
        goal = f"{what}'s {wait.side} side passes {check}" if check else f"{what} is {wait.state}"
        if self.check:
            self.say(f"  would wait up to {wait.timeout:g}s until {goal}")
            return {"ok": True, "dry_run": True}
        deadline = time.monotonic() + wait.timeout
        while True:
            if check:
                now, reached = self._check_passes(str(scenario), check, wait.side)
                result = {"ok": True, "check": now}
            else:
                state, members = self._state(scenario, group)
                now, reached = f"is {state}{members}", state == wait.state
                result = {"ok": True, "state": state}
            if reached:
                self.say(f"  {what} {now}")
                return result
            if time.monotonic() > deadline:
                raise TaskFailed(f"{what} {now} after {wait.timeout:g}s; waited until {goal}")
            time.sleep(POLL)

    def _check_passes(self, scenario: str, check: str, side: str) -> tuple[str, bool]:
        """What ``check`` of the scenario's side says now, and whether it passes."""
        view = self.client.read(f"/v1/scenarios/{scenario}")
        side = view["active"] if side == "active" else side
        found = {c["check"]: c for c in view[side]["checks"]}
        if check not in found:
            raise TaskFailed(f"{scenario} has no check {check!r}; its checks: {', '.join(found)}")
        return f"{side} {check}: {found[check]['detail']}", found[check]["ok"] is True

    def _state(self, scenario: str | None, group: str | None) -> tuple[str, str]:
        """The scenario's or group's state, and for a group its members (`` (s1 running, ...)``),
        which say why it is degraded."""
        if scenario:
            return str(self.client.read(f"/v1/scenarios/{scenario}")["state"]), ""
        groups = self.client.read("/v1/groups")["groups"]
        found = next((g for g in groups if g["name"] == group), None)
        if found is None:
            raise TaskFailed(f"no group named {group!r}")
        return str(found["state"]), f" ({members_line(found)})"

    def _do_wait(self, play: Play, task: Task, names: dict[str, Any]) -> dict[str, Any]:
        assert task.wait is not None
        self.say(f"  {'would wait' if self.check else 'waiting'} {task.wait:g}s")
        if not self.check:
            time.sleep(task.wait)
        return {"ok": True}

    def _do_pause(self, play: Play, task: Task, names: dict[str, Any]) -> dict[str, Any]:
        assert task.pause is not None
        prompt = self._fill(task.pause.prompt, names) or ""
        if self.check:
            self.say(f"  would ask: {prompt}")
        elif self.yes:
            self.say(f"  {prompt} yes (--yes)")
        elif not self.ask(prompt):
            raise TaskFailed("not confirmed")
        return {"ok": True}
