"""The daemon's loop applies work for many scenarios side by side, in order within each one."""

from __future__ import annotations

import asyncio

import pytest

from ha.commands import Intent
from ha.lanes import intent_lane, side_by_side


async def test_lanes_run_side_by_side_and_in_order_within_each() -> None:
    done: list[str] = []
    a_may_go = asyncio.Event()

    async def apply(item: str) -> None:
        if item == "a1":
            await a_may_go.wait()  # lane a is stuck: lane b still goes
        if item == "b2":
            a_may_go.set()
        done.append(item)

    await side_by_side(["a1", "b1", "a2", "b2", "a3"], lambda item: item[0], apply)
    assert done == ["b1", "b2", "a1", "a2", "a3"]


async def test_an_error_stops_its_lane_only_and_is_raised_at_the_end() -> None:
    done: list[str] = []

    async def apply(item: str) -> None:
        if item == "a1":
            raise ValueError("a1 broke")
        await asyncio.sleep(0)
        done.append(item)

    with pytest.raises(ValueError, match="a1 broke"):
        await side_by_side(["a1", "b1", "a2", "b2"], lambda item: item[0], apply)
    assert done == ["b1", "b2"]


async def test_commands_of_one_scenario_share_a_lane_and_group_commands_have_their_own() -> None:
    lanes = [
        intent_lane(Intent(action="failover", scenario="web01", actor="op")),
        intent_lane(Intent(action="pause", scenario="web01", actor="op")),
        intent_lane(Intent(action="failover", scenario="db01", actor="op")),
        intent_lane(Intent(action="failover", scenario="", group="farm", actor="op")),
        intent_lane(Intent(action="rearm", scenario="", actor="op")),
    ]
    assert lanes[0] == lanes[1]
    assert len(set(lanes)) == 4
