"""A group's status: one word for all its members (protected, degraded, switched, blocked,
split, ...) and, for each member, what keeps it from being as it should be."""

from __future__ import annotations

import time

from ha.scenario import Scenario


def trouble(member: Scenario, now: float) -> str | None:
    """Why a running or switched member is not as it should be, or None. Running: its production
    is dead (a failover is due, or held back), or its replica is (nothing to fail over to; a
    virtual standby's replica is off by design and not checked). Switched: the replica, which
    serves, is dead (production being down is what switched means)."""
    replica = member.detectors["replica"]
    if member.state == "switched":
        return "replica dead" if replica.is_dead(now) else None
    if member.state != "running":
        return None
    if member.detectors["production"].is_dead(now):
        return "production dead"
    if not member.config.replica.standby and replica.is_dead(now):
        return "replica dead"
    return None


def rollup(members: list[Scenario], operation: str | None) -> str:
    """One of GROUP_STATES for a group: split, blocked, <action> in progress, protected,
    switched, stopped, or degraded (anything mixed, or a member that is not as it should be: see
    trouble). A test in progress says so only while every member runs as usual: it drives
    none of them."""
    states = {m.state for m in members}
    if "split" in states:
        return "split"
    if "blocked" in states:
        return "blocked"
    if operation is not None and (operation != "test" or states == {"running"}):
        return f"{operation} in progress"
    now = time.time()
    if states <= {"running", "switched"} and any(trouble(m, now) for m in members):
        return "degraded"
    if states == {"running"}:
        return "protected"
    if states == {"switched"}:
        return "switched"
    if states == {"stopped"}:
        return "stopped"
    return "degraded"
