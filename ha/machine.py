"""The scenario state machine, as data.

States and transitions are plain tables; one ``AsyncMachine`` serves every scenario (``add_model``),
and ``diagram()`` draws the same tables. The machine does bookkeeping only: each transition is
journaled (by the model's ``journal_transition``) before the state changes and before any work is
scheduled (``after_transition``); runbooks run elsewhere as tasks.
"""

from __future__ import annotations

from typing import Any

from transitions.extensions import MachineFactory
from transitions.extensions.asyncio import AsyncMachine

STATES = [
    "stopped",  # not protected: no checks, no action
    "running",  # protected, production active
    "failing_over",  # failover runbook in flight
    "switching_over",  # switchover runbook in flight
    "switched",  # replica active
    "failing_back",  # failback runbook in flight
    "blocked",  # a runbook could not complete: an operator must act
    "split",  # both sides act as active: an operator picks one (never automatic)
    "recovering",  # recover runbook in flight: the chosen side becomes the only active one
]

RUNBOOK_STATES = {
    "failing_over": "failover",
    "switching_over": "switchover",
    "failing_back": "failback",
    "recovering": "recover",
}

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "run", "source": "stopped", "dest": "running", "conditions": "production_active"},
    {"trigger": "run", "source": "stopped", "dest": "switched", "unless": "production_active"},
    {"trigger": "stop", "source": ["running", "switched", "blocked", "split"], "dest": "stopped"},
    {"trigger": "failover", "source": "running", "dest": "failing_over"},
    {
        "trigger": "failover",
        "source": "blocked",
        "dest": "failing_over",
        "conditions": "blocked_failover",
    },
    {"trigger": "switchover", "source": "running", "dest": "switching_over"},
    {
        "trigger": "switchover",
        "source": "blocked",
        "dest": "switching_over",
        "conditions": "blocked_switchover",
    },
    {"trigger": "failback", "source": "switched", "dest": "failing_back"},
    {
        "trigger": "failback",
        "source": "blocked",
        "dest": "failing_back",
        "conditions": "blocked_failback",
    },
    {"trigger": "finish", "source": ["failing_over", "switching_over"], "dest": "switched"},
    {"trigger": "finish", "source": "failing_back", "dest": "running"},
    {
        "trigger": "finish",
        "source": "recovering",
        "dest": "running",
        "conditions": "recovers_production",
    },
    {
        "trigger": "finish",
        "source": "recovering",
        "dest": "switched",
        "unless": "recovers_production",
    },
    {"trigger": "cancel", "source": "failing_over", "dest": "running"},
    {"trigger": "block", "source": list(RUNBOOK_STATES), "dest": "blocked"},
    {"trigger": "split", "source": ["running", "switched"], "dest": "split"},
    {"trigger": "recover", "source": ["split", "blocked"], "dest": "recovering"},
    {"trigger": "abort", "source": "blocked", "dest": "running", "conditions": "production_active"},
    {"trigger": "abort", "source": "blocked", "dest": "switched", "unless": "production_active"},
]

COMMANDS = ("run", "stop", "failover", "switchover", "failback", "abort", "recover")
"""Triggers an operator may pull; the rest (finish, cancel, block, split) are the daemon's."""

_NEEDS = {
    "run": "stopped",
    "stop": "running, switched, blocked or split",
    "failover": "running (or blocked in a failover)",
    "switchover": "running (or blocked in a switchover)",
    "failback": "switched (or blocked in a failback)",
    "abort": "blocked",
    "recover": "split or blocked",
}


class _Machine(AsyncMachine):
    """Binds to each scenario only ``trigger`` (pulled by name) and ``state``, not the per-trigger,
    ``may_<trigger>`` and ``is_<state>`` conveniences that nothing here calls: those are some 30
    partials per scenario, 9 KB of its memory (scenarios have no ``on_enter_<state>`` methods for
    the skipped state binding to find)."""

    def _add_trigger_to_model(self, trigger: str, model: object) -> None:
        pass

    def _add_model_to_state(self, state: object, model: object) -> None:
        pass


def build_machine() -> AsyncMachine:
    """One machine for all scenarios; add each with ``add_model(scenario, initial=state)``."""
    return _Machine(
        model=None,
        states=STATES,
        transitions=TRANSITIONS,
        initial="stopped",
        auto_transitions=False,
        send_event=True,
        before_state_change="journal_transition",
        after_state_change="after_transition",
    )


def refusal(trigger: str, state: str) -> str:
    """Why ``trigger`` is refused in ``state``: a sentence for an operator."""
    return f"cannot {trigger} while {state.replace('_', ' ')}; {trigger} needs {_NEEDS[trigger]}"


def diagram() -> str:
    """The state diagram in mermaid syntax, drawn from the same tables as the runtime machine."""
    graph_machine = MachineFactory.get_predefined(graph=True)
    machine = graph_machine(
        model="self",
        states=STATES,
        transitions=TRANSITIONS,
        initial="stopped",
        auto_transitions=False,
        graph_engine="mermaid",
        title="ha-orchestrator scenario",
        show_conditions=True,
    )
    source = str(machine.get_graph().draw(None))
    # Keep the graph, drop the styling (it would mark the template's own state as the active one).
    lines = [line.rstrip() for line in source.splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("classDef", "Class ")))
