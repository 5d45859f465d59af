"""Split detection from the active_check answers of both sides (Scenario.split_reason)."""

from __future__ import annotations

import time
from pathlib import Path

from checks import CheckResult
from ha.scenario import Scenario
from ha.store import ScenarioRecord
from ha.store.sqlite import SqliteStore
from tests.configs import one_scenario


def scenario(tmp_path: Path, last_switch_at: float | None) -> Scenario:
    config = one_scenario(
        tmp_path,
        checks=[{"kind": "tcp", "port": 80}],
        split={"active_check": {"kind": "script", "command": ["true"]}},
    )
    record = ScenarioRecord("s1", "switched", active="replica", last_switch_at=last_switch_at)
    return Scenario(config.scenarios[0], record, SqliteStore(tmp_path / "state.db"))


def answered(at: float, ok: bool = True, latency: float = 0.01) -> CheckResult:
    return CheckResult(ok=ok, latency=latency, detail="", at=at)


def test_both_sides_answering_as_active_is_a_split(tmp_path: Path) -> None:
    now = time.time()
    s1 = scenario(tmp_path, last_switch_at=now - 10)
    s1.acting = {"production": answered(now - 0.5), "replica": answered(now - 0.2)}

    assert s1.split_reason() == "both production and replica answer as active (script)"


def test_one_side_not_answering_as_active_is_no_split(tmp_path: Path) -> None:
    now = time.time()
    s1 = scenario(tmp_path, last_switch_at=None)
    s1.acting = {"production": answered(now - 0.5, ok=False), "replica": answered(now - 0.2)}

    assert s1.split_reason() is None


def test_an_answer_to_a_probe_started_before_the_last_switch_is_no_evidence(
    tmp_path: Path,
) -> None:
    # Production answered as active just before a recovery made the replica active; its next
    # answer has not come yet. The recovery's choice stands until fresh answers say otherwise.
    now = time.time()
    s1 = scenario(tmp_path, last_switch_at=now - 0.3)
    s1.acting = {
        "production": answered(now - 0.25, latency=0.1),  # started 0.35 s ago: before the switch
        "replica": answered(now - 0.1),
    }

    assert s1.split_reason() is None
