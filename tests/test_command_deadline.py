"""A command the API answers 503 because the daemon's loop did not take it in time is withdrawn:
the loop, coming round later, must not carry out what its asker was told did not happen. The
real daemon in-process with its real API on a test server; its loop is simply not running yet."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ha import api_commands
from ha.api import create_app
from ha.api_feed import JournalFeed
from ha.daemon import Daemon
from ha.metrics import Metrics
from ha.service import api_tokens
from tests.configs import one_scenario


async def test_a_command_answered_503_is_not_carried_out_when_the_loop_comes_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_commands, "LOOP_DEADLINE", 0.2)
    config = one_scenario(tmp_path, checks=[{"kind": "script", "command": "true"}])
    daemon = Daemon(config)
    await daemon.start()
    try:
        app = create_app(daemon, api_tokens(config.api), JournalFeed(daemon.store), Metrics({}))
        token = config.api.token_file.read_text().strip()
        async with TestClient(TestServer(app)) as client:
            answer = await client.post(
                "/v1/scenarios/s1/stop", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status == 503
            assert await answer.json() == {
                "error": "the daemon did not take the command within 0.2s"
            }
        await daemon.cycle()  # the loop comes round at last
        assert daemon.scenarios["s1"].state == "running"
        assert [e.kind for e in await daemon.store.events() if e.kind == "command"] == []
    finally:
        await daemon.stop()
