"""Plain-text renderings for the terminal: the status table, journal lines, dry-run plans."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ha.errors import UnknownScenario

if TYPE_CHECKING:
    from ha.config import Config


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
            notes.append(f"{s['name']}: {s['state']}: {s['reason']}")  # blocked or split
        if s.get("alert"):
            notes.append(f"{s['name']}: {s['alert']}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    for group in status.get("groups", []):
        notes.append(f"group {group['name']}: {group['state']} ({members_line(group)})")
        if group.get("cancelled_by"):
            notes.append(f"  {CANCELLED.format(who=group['cancelled_by'])}")
        report = group.get("last_report")
        if report and report["outstanding"]:
            notes.append(f"  last command (#{report['id']}): {report['summary']}")
    notes.append(f"failover budget: {status['budget']}")
    if status.get("store_error"):
        notes.append(f"{STORE_FAILED}: {status['store_error']}")
    if status["observe_only"]:
        notes.append(
            "observe-only: automatic failovers and failbacks are journaled as proposals, not taken"
        )
    return "\n".join(lines + notes)


CANCELLED = "cancelled by {who}: no other member starts; those in flight finish"
STORE_FAILED = "the state store fails (nothing is acted on until it takes writes again)"


def status_of(status: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``status`` narrowed to the scenarios and groups ``names`` names: a group with its members.
    Raises UnknownScenario naming every name that is neither."""
    groups = {group["name"]: group for group in status.get("groups", [])}
    scenarios = {scenario["name"] for scenario in status["scenarios"]}
    unknown = [name for name in names if name not in groups and name not in scenarios]
    if unknown:
        raise UnknownScenario(
            "no scenario or group named " + ", ".join(repr(name) for name in unknown)
        )
    wanted = set(names) | {m["name"] for n in names if n in groups for m in groups[n]["members"]}
    return {
        **status,
        "scenarios": [s for s in status["scenarios"] if s["name"] in wanted],
        "groups": [group for name, group in groups.items() if name in names],
    }


LISTED = 6  # a group of more members is summed up: counts, and the exceptions by name


def members_line(group: dict[str, Any]) -> str:
    """A group's members as status shows them: ``s1 running, s2 running with its replica dead``;
    more than LISTED: ``100 members: 97 running, 3 switched; r00005 switched, ...``, naming
    those not in the most common state, paused or in trouble (up to LISTED)."""
    members = group["members"]
    if len(members) <= LISTED:
        return ", ".join(_member(m) for m in members)
    counts = Counter(m["state"] for m in members).most_common()
    usual = counts[0][0]
    odd = [m for m in members if m["state"] != usual or m.get("paused") or m.get("trouble")]
    line = f"{len(members)} members: " + ", ".join(f"{n} {state}" for state, n in counts)
    if odd:
        line += "; " + ", ".join(_member(m) for m in odd[:LISTED])
    if len(odd) > LISTED:
        line += f" and {len(odd) - LISTED} more"
    return line


def _member(m: dict[str, Any]) -> str:
    return (
        f"{m['name']} {m['state']}"
        + (" (paused)" if m.get("paused") else "")
        + (f" with its {m['trouble']}" if m.get("trouble") else "")
    )


def report_summary(group: str, order: list[str], data: dict[str, Any], message: str) -> str:
    """A group report as status and the dashboard show it: its journal message (less "group
    NAME: "); for a group of more than LISTED members, each outcome once with the members it
    came to (a few named, in the group's ``order``), at most LISTED outcomes."""
    members: dict[str, str] = data.get("members", {})
    if len(members) <= LISTED:
        return message.removeprefix(f"group {group}: ")
    position = {name: index for index, name in enumerate(order)}
    outcomes: dict[str, list[str]] = {}
    for name in sorted(members, key=lambda name: position.get(name, 0)):
        outcomes.setdefault(members[name], []).append(name)
    parts = [f"{_few(names)}: {what}" for what, names in outcomes.items()]
    if len(parts) > LISTED:
        more = len(parts) - LISTED
        parts = [*parts[:LISTED], f"{more} other outcomes (ha events --group {group})"]
    ended = data.get("ended") or ("done" if data.get("ok") else "failed")
    line = f"{data.get('action')} {ended}: " + "; ".join(parts)
    paused = data.get("paused") or []
    if paused:
        line += f"; {_few(paused)} paused: `ha group resume {group}` lets the daemon act again"
    return line


def report_message(event: dict[str, Any], order: list[str] | None = None) -> str:
    """A group report entry's message as the terminal shows it (summed up for a large group;
    members in the group's ``order``, else as reported)."""
    group = str(event["data"].get("group"))
    summary = report_summary(group, order or [], event["data"], event["message"])
    return f"group {group}: {summary}"


def _few(names: list[str]) -> str:
    """``s1, s2`` or, for more than three, ``40 members (s1, s2, s3, ...)``."""
    if len(names) <= 3:
        return ", ".join(names)
    return f"{len(names)} members ({', '.join(names[:3])}, ...)"


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


AR_RESULTS = ("ar_passed", "ar_failed", "ar_aborted", "ar_rolled_back")


def test_history(events: list[dict[str, Any]]) -> list[str]:
    """Assured Recovery results, each with its rehearsed recovery time and the trend."""
    lines = []
    previous: float | None = None
    for event in events:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(event["ts"]))
        result = event["kind"].removeprefix("ar_")
        recovery = event["data"].get("recovery_time")
        trend = ""
        if recovery is not None and previous is not None:
            trend = f" ({recovery - previous:+.1f}s)"
        if recovery is not None:
            previous = recovery
        shown = f"{recovery:.1f}s{trend}" if recovery is not None else "-"
        lines.append(f"{when}  {result:<11} recovery {shown:<16} {event['message']}")
    return lines or ["no Assured Recovery test yet"]


def test_plan(config: Config, name: str) -> list[str]:
    """What ``ha test NAME`` would do, from the config alone."""
    scenario = next((s for s in config.scenarios if s.name == name), None)
    if scenario is None:
        return [f"no scenario named {name!r}"]
    ar, machine = scenario.assured_recovery, scenario.replica.machine
    if ar is None or machine is None:
        return [f"{name}: no assured_recovery configured"]
    checks = len([c for c in scenario.checks if c.side != "production"]) + len(ar.checks)
    return [
        f"dry run: test {name} would, on replica {machine.name} via {machine.provider}:",
        "  1. record its power state",
        "  2. take a snapshot",
        "  3. power it on" + (" and run the start command" if ar.start else ""),
        f"  4. wait up to {ar.timeout:g}s until its {checks} checks pass (the recovery time)",
        "  5. power it off again if it was off, revert to the snapshot, delete the snapshot",
        "  production and redirection are never touched",
    ]


def cluster_lines(status: dict[str, Any]) -> list[str]:
    """``ha cluster status``: the leader, this instance and its lease, the others, the views."""
    me = status["self"]
    role = "leader" if me["is_leader"] else "follower"
    lease = f"lease {me['lease']}" if me["lease"] else "no lease"
    lines = [
        f"leader: {status.get('leader') or me['leader'] or 'none'}",
        f"this instance: {me['name']}, {role}, {lease} (ttl {me['ttl']}s,"
        f" trusted {me['trusted_for']:g}s more), etcd member {me['etcd_member']}",
    ]
    if "error" in status:
        return [*lines, f"etcd does not answer: {status['error']}"]
    lines.append(f"instances: {', '.join(status['instances']) or 'none'}")
    etcd = sorted(status["etcd"], key=lambda m: str(m["name"]))
    members = [f"{m['name']} ({', '.join(m['client_urls'])})" for m in etcd]
    lines.append(f"etcd members: {', '.join(members)}")
    lines.append("views of production, by observer:")
    for scenario, views in sorted(status["views"].items()):
        seen = [
            f"{name} {'dead' if v['dead'] else 'alive'}"
            + (f" ({', '.join(v['failing'])} failing)" if v["failing"] else "")
            for name, v in sorted(views.items())
        ]
        lines.append(f"  {scenario}: {', '.join(seen)}")
    return lines
