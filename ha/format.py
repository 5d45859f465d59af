"""Plain-text renderings for the terminal: the status table, journal lines, dry-run plans."""

from __future__ import annotations

import time
from typing import Any


def _checks(side: dict[str, Any]) -> str:
    parts = []
    for check in side["checks"]:
        if check["ok"] is None:
            parts.append(f"{check['check']} ?")
        elif check["ok"]:
            parts.append(f"{check['check']} ok {check['latency_ms']:.0f}ms")
        else:
            mark = "DOWN" if check["down"] else f"failing x{check['failures']}"
            parts.append(f"{check['check']} {mark} ({check['detail']})")
    return ", ".join(parts) or "-"


def status_table(status: dict[str, Any]) -> str:
    scenarios = status["scenarios"]
    if not scenarios:
        return "no scenarios configured"
    rows = [("SCENARIO", "STATE", "ACTIVE", "MODE", "PRODUCTION", "REPLICA")]
    notes = []
    for s in scenarios:
        state = s["state"] + (" (paused)" if s["paused"] else "")
        rows.append(
            (
                s["name"],
                state,
                f"{s['active']} {s['active_address']}",
                s["mode"],
                _checks(s["production"]),
                _checks(s["replica"]),
            )
        )
        if s.get("reason"):
            notes.append(f"{s['name']}: blocked: {s['reason']}")
        if s.get("alert"):
            notes.append(f"{s['name']}: {s['alert']}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    for group in status.get("groups", []):
        members = ", ".join(f"{m['name']} {m['state']}" for m in group["members"])
        notes.append(f"group {group['name']}: {group['state']} ({members})")
    notes.append(f"failover budget: {status['budget']}")
    if status["observe_only"]:
        notes.append("observe-only: automatic failovers are journaled as proposals, not taken")
    return "\n".join(lines + notes)


def event_line(event: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["ts"]))
    where = event["scenario"] or "-"
    step = f" {event['step']}" if event.get("step") else ""
    actor = f" [{event['actor']}]" if event["actor"] != "daemon" else ""
    return f"{when} #{event['id']} {where} {event['kind']}{step}: {event['message']}{actor}"


def plan_lines(plan: dict[str, Any]) -> list[str]:
    lines = [f"dry run: {plan['action']} {plan['scenario']} (now {plan['state']}) would:"]
    width = max((len(step["step"]) for step in plan["steps"]), default=0)
    for i, step in enumerate(plan["steps"], 1):
        done = " (done, skipped)" if step["status"] == "done" else ""
        lines.append(f"  {i}. {step['step'].ljust(width)}  {step['plan']}{done}")
    return lines


def proposal_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    for event in data["proposals"]:
        lines.append(event_line(event))
        for step in event["data"].get("plan", []):
            lines.append(f"    {step['step']}: {step['plan']}")
    lines.append("")
    lines.append(
        "SCENARIO  PROPOSALS  OBSERVED  CANCELLED  PRODUCTION DOWN (episodes without failover)"
    )
    for row in data["report"]:
        down = ", ".join(f"{d:g}s" for d in row["down_for"]) or "-"
        lines.append(
            f"{row['scenario']}  {row['proposals']}  {row['observed']}  {row['cancelled']}  {down}"
        )
    return lines
