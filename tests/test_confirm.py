"""The confirm_failure step of a forced failover: production's fresh results are enough, no probe
waits on a production that hangs; its verify step, without redirection, says so. The real daemon
in-process, real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from ha.commands import Intent
from ha.daemon import Daemon
from tests.configs import one_scenario
from tests.servers.web import serve_web


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {timeout}s: {what}")


async def test_a_forced_failover_goes_on_from_fresh_results_without_waiting_on_a_hung_production(
    tmp_path: Path,
) -> None:
    async with serve_web("127.0.0.2") as production, serve_web("127.0.0.3") as replica:
        check = {"kind": "http", "interval": "2s", "timeout": "1s"}
        config = one_scenario(
            tmp_path,
            checks=[
                {**check, "name": "web", "port": production.port, "side": "production"},
                {**check, "name": "web-r", "port": replica.port, "side": "replica"},
            ],
            failover={"mode": "manual"},
        )
        daemon = Daemon(config)
        await daemon.start()
        serving = asyncio.create_task(daemon.serve())
        try:
            s1 = daemon.scenarios["s1"]
            checks = s1.detectors["production"].checks.values()
            await until(lambda: all(c.last is not None for c in checks), 3, "production probed")
            production.reply.delay = 30  # production hangs from now on; its last answer was ok

            intent = Intent(action="failover", scenario="s1", actor="test", force=True)
            daemon.submit(intent)
            assert (await intent.future).status == "accepted"
            await until(lambda: s1.state == "switched", 5, "switched")
        finally:
            daemon.request_stop()
            await serving
            await daemon.stop()

    store = daemon.store
    await store.open()
    try:
        done = {e.step: e for e in await store.events(scenario="s1") if e.kind == "step_done"}
    finally:
        await store.close()
    confirmed = done["confirm_failure"]
    assert re.fullmatch(
        r"forced: production's latest probes \(\d+ms ago\) do not show it dead:"
        r" web ok \(200 in [\d.]+ms\)",
        confirmed.message,
    ), confirmed.message
    assert confirmed.data["seconds"] < 0.5  # a probe now would have waited for its 1 s timeout
    # No redirection is configured: the verify step does not claim that users were sent anywhere.
    assert re.fullmatch(
        r"no redirection to read back; replica passes: web-r ok \(200 in [\d.]+ms\)",
        done["verify"].message,
    ), done["verify"].message
