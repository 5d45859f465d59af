"""Work for many scenarios side by side, in order for each one.

The daemon's loop applies runbook reports and operator commands; each journals before it acts,
and each journal write waits for a durable commit. One after the other, a group failover of 100
members waits for some 400 commits in a row; side by side, their writes share commits (the
store's group commit). Items of one lane (one scenario, one group) still run one after the
other, in the order they came; lanes do not wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import TypeVar

from ha.commands import Intent

T = TypeVar("T")


def intent_lane(intent: Intent) -> Hashable:
    """A scenario's commands share a lane; a group command and a re-arm have their own."""
    if intent.action == "rearm":
        return ("rearm",)
    if intent.group is not None:
        return ("group", intent.group)
    return ("scenario", intent.scenario)


async def side_by_side(
    items: Iterable[T], lane: Callable[[T], Hashable], apply: Callable[[T], Awaitable[None]]
) -> None:
    """``apply`` every item: in order within its lane, lanes concurrently. Returns when all are
    done; the first error is raised once every lane has stopped."""
    lanes: dict[Hashable, list[T]] = {}
    for item in items:
        lanes.setdefault(lane(item), []).append(item)

    async def run(queue: list[T]) -> None:
        for item in queue:
            await apply(item)

    results = await asyncio.gather(
        *(run(queue) for queue in lanes.values()), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
