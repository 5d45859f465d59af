"""Pausing a group's members: ``ha group pause|resume`` (maintenance of the whole group), and the
hold that an automatic (together) failover that failed or was cancelled puts on the members it
did not move, so that a dead one does not start it again: an operator decides."""

from __future__ import annotations

from collections.abc import Iterable

from ha.commands import conflict
from ha.scenario import Scenario


def pause_leaves(member: Scenario, action: str) -> str | None:
    """Why a group's pause or resume leaves the member as it is (already paused, not paused)."""
    return conflict(member, action, force=False, now=0.0)


def pause_conflict(group: str, action: str) -> str:
    """Why a group's pause or resume has nothing to do: every member is so already."""
    if action == "pause":
        return f"every member of group {group} is paused already"
    return f"no member of group {group} is paused"


async def hold_unmoved(members: Iterable[Scenario], actor: str, why: str) -> list[str]:
    """Pause the members an automatic failover leaves running (those it did not move), so that
    a dead one does not start it again at the next look (the daemon's next start, say); the
    names paused."""
    held = []
    for member in members:
        if member.state == "running" and not member.record.paused:
            await member.set_paused(True, actor, why)
            held.append(member.name)
    return held


def held_note(held: list[str], group: str) -> str:
    """What the hold adds to the report or the cancel's answer."""
    if not held:
        return ""
    return (
        f"; {', '.join(held)} paused, or a dead member would start the automatic failover"
        f" again (at the daemon's next start, say): `ha group resume {group}` lets the daemon"
        " act again"
    )
