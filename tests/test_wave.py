"""The redirect gate of a group wave: members pass together, never held by one that left, and
never longer than the gather time."""

from __future__ import annotations

import asyncio
import time

from ha.wave import RedirectGate


async def test_members_pass_together_once_every_one_arrived() -> None:
    gate = RedirectGate(["a", "b", "c"])
    passed: list[str] = []

    async def member(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await gate.arrive(name)
        passed.append(name)

    first = asyncio.create_task(member("a", 0))
    await asyncio.sleep(0.05)
    assert passed == []  # a waits for b and c
    await asyncio.gather(first, member("b", 0), member("c", 0.02))
    assert sorted(passed) == ["a", "b", "c"]
    await gate.arrive("a")  # open from then on: a retried redirect goes at once


async def test_a_member_that_leaves_holds_no_one() -> None:
    gate = RedirectGate(["a", "b"])
    waiting = asyncio.create_task(gate.arrive("a"))
    await asyncio.sleep(0.02)
    assert not waiting.done()
    gate.leave("b")  # b was blocked before its redirect
    await asyncio.wait_for(waiting, 1)


async def test_the_first_member_waits_no_longer_than_the_gather_time() -> None:
    gate = RedirectGate(["a", "slow"], gather=0.1)
    started = time.monotonic()
    await gate.arrive("a")
    assert 0.09 <= time.monotonic() - started < 0.5


async def test_a_member_alone_or_not_expected_passes_at_once() -> None:
    alone = RedirectGate(["a"])
    await asyncio.wait_for(alone.arrive("a"), 0.05)
    other = RedirectGate(["a", "b"])
    await asyncio.wait_for(other.arrive("stranger"), 0.05)
