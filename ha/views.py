"""What the API shows of a scenario: plain JSON, never a secret."""

from __future__ import annotations

import time
from typing import Any

from ha.format import report_summary
from ha.groups_config import GroupConfig
from ha.groups_status import rollup, trouble
from ha.scenario import SIDES, Scenario
from ha.store import JournalEvent


def scenario_view(scenario: Scenario) -> dict[str, Any]:
    now = time.time()
    record = scenario.record
    sides: dict[str, Any] = {}
    for side in SIDES:
        detector = scenario.detectors[side]
        sides[side] = {
            "address": scenario.address(side),
            "dead": detector.is_dead(now),
            "checks": [
                {
                    "check": label,
                    "ok": state.last.ok if state.last else None,
                    "down": detector.is_down(label, now),
                    "failures": state.failures,
                    "latency_ms": round(state.last.latency * 1000, 2) if state.last else None,
                    "detail": state.last.detail if state.last else "not probed yet",
                    "at": state.last.at if state.last else None,
                }
                for label, state in detector.checks.items()
            ],
        }
    return {
        "name": scenario.name,
        "state": scenario.state,
        "active": record.active,
        "active_address": scenario.address(record.active),
        "paused": record.paused,
        "mode": scenario.config.failover.mode,
        "runbook": record.runbook,
        "runbook_kind": record.runbook_kind,
        "reason": record.reason,
        "alert": scenario.alerted,
        "last_switch_at": record.last_switch_at,
        **sides,
    }


def proposal_report(events: list[JournalEvent]) -> list[dict[str, Any]]:
    """Per scenario: how often it proposed or would have failed over, and how long production
    really stayed down in the episodes that ended without a failover."""
    report: dict[str, dict[str, Any]] = {}
    for event in events:
        row = report.setdefault(
            event.scenario or "",
            {
                "scenario": event.scenario,
                "proposals": 0,
                "observed": 0,
                "cancelled": 0,
                "down_for": [],
            },
        )
        if event.kind == "proposal":
            row["proposals"] += 1
            row["observed"] += event.data.get("mode") in ("observe", "budget")
        elif event.kind == "proposal_cancelled":
            row["cancelled"] += 1
        elif event.kind == "production_recovered":
            row["down_for"].append(event.data.get("down_for"))
    return list(report.values())


def group_views(daemon: Any) -> list[dict[str, Any]]:
    now = time.time()
    return [group_view(daemon, group, now) for group in daemon.config.groups]


def group_view(daemon: Any, group: GroupConfig, now: float) -> dict[str, Any]:
    members = [daemon.scenarios[name] for name in group.scenarios]
    operation = daemon.groups.operation(group.name)
    state = rollup(members, operation)
    return {
        "name": group.name,
        "state": state,
        "operation": operation,
        "cancelled_by": daemon.groups.cancelled(group.name),
        "failover": group.failover,
        "waves": group.waves(),
        "members": [
            {
                "name": m.name,
                "state": m.state,
                "active": m.record.active,
                "paused": m.record.paused,
                "trouble": trouble(m, now),
            }
            for m in members
        ],
        "last_report": _report_view(daemon.groups.reports.get(group.name), state, group.scenarios),
    }


def _report_view(
    report: JournalEvent | None, state: str, order: list[str]
) -> dict[str, Any] | None:
    """A group's latest report; ``outstanding``: it failed and the group is not back in order
    (degraded, blocked or split), so that status shows it as it shows a blocked scenario's
    reason."""
    if report is None:
        return None
    ok = bool(report.data.get("ok"))
    return {
        "id": report.id,
        "at": report.ts,
        "action": report.data.get("action"),
        "ok": ok,
        "message": report.message,
        "summary": report_summary(
            str(report.data.get("group")), order, report.data, report.message
        ),
        "members": report.data.get("members", {}),
        "outstanding": not ok and state in ("degraded", "blocked", "split"),
    }
