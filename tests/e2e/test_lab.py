"""End to end in the failure lab (tests/lab): the real daemon, real HTTP servers in their own
network namespaces and two real BIND9 servers, with real faults. Each test reads like a runbook
and checks what a user sees: what DNS answers inside the lab, where a client lands, the state,
and the journal."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab import faults
from tests.lab.lab import (
    DB_NAME,
    HTTP_PORT,
    NAME,
    PRODUCTION,
    REPLICA,
    Lab,
    LabDaemon,
    running_lab,
)
from tests.lab.namespaces import LabUnavailable, require_root

BOTH_PRODUCTION = {"primary": {PRODUCTION}, "secondary": {PRODUCTION}}
BOTH_REPLICA = {"primary": {REPLICA}, "secondary": {REPLICA}}


def _lab(tmp_path: Path, postgres: bool = False) -> Iterator[Lab]:
    try:
        require_root()
    except LabUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    with running_lab(tmp_path, postgres=postgres) as lab:
        yield lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from _lab(tmp_path)


@pytest.fixture
def db_lab(tmp_path: Path) -> Iterator[Lab]:
    """The lab with a PostgreSQL server on production and on the replica too."""
    yield from _lab(tmp_path, postgres=True)


def daemon(lab: Lab) -> LabDaemon:
    assert lab.daemon is not None
    return lab.daemon


def failovers(lab: Lab) -> list[str]:
    return [t for t in daemon(lab).transitions(NAME) if t.startswith("running -> failing_over")]


def steps_done(lab: Lab, step: str) -> int:
    return sum(1 for e in daemon(lab).journal() if e["kind"] == "step_done" and e["step"] == step)


def users_reach_the_replica(lab: Lab) -> None:
    assert lab.dns is not None
    assert lab.dns.answers(NAME) == BOTH_REPLICA
    assert lab.fetch(REPLICA) == "repl"
    assert daemon(lab).state() == ("switched", "replica")


FAULTS: dict[str, Callable[[Lab], None]] = {
    "killed": lambda lab: faults.kill(lab.http["prod"]),
    "hung": lambda lab: faults.hang(lab.http["prod"]),
    "unreachable": lambda lab: faults.cut(lab.network, "prod"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_dead_production_fails_over_once_and_dns_answers_the_replica(lab: Lab, fault: str) -> None:
    lab.write_config()
    daemon(lab).start_daemon()
    assert lab.fetch(PRODUCTION) == "prod"

    FAULTS[fault](lab)
    daemon(lab).wait_state("switched", timeout=15)
    users_reach_the_replica(lab)
    time.sleep(1.0)  # several check intervals later: still one failover, nothing undone
    assert len(failovers(lab)) == 1
    assert daemon(lab).transitions(NAME)[-1] == "failing_over -> switched"
    users_reach_the_replica(lab)
    assert steps_done(lab, "fence_production") == 1
    assert lab.fetch(PRODUCTION) is None  # fenced: production serves no one


def test_killed_production_database_fails_over_and_clients_reach_the_replica(db_lab: Lab) -> None:
    lab = db_lab
    lab.write_config(failures=3, follow_up="50ms")
    daemon(lab).start_daemon()
    where = "select host(inet_server_addr())"
    assert lab.database_answer(PRODUCTION, where) == PRODUCTION

    faults.kill(lab.postgres["prod"].service)
    daemon(lab).wait_state("switched", timeout=15, name=DB_NAME)

    assert lab.dns is not None
    assert lab.dns.answers(DB_NAME) == BOTH_REPLICA
    assert lab.database_answer(REPLICA, where) == REPLICA
    assert lab.database_answer(PRODUCTION, where) is None
    moves = daemon(lab).transitions(DB_NAME)
    assert [m for m in moves if m.startswith("running -> failing_over")] == [
        "running -> failing_over"
    ]
    assert moves[-1] == "failing_over -> switched"
    # the web scenario, whose production still serves, is left alone
    assert daemon(lab).state(NAME) == ("running", "production")
    assert lab.dns.answers(NAME) == BOTH_PRODUCTION


def test_hung_production_confirmed_by_follow_ups_fails_over_once(lab: Lab) -> None:
    lab.write_config(failures=4, follow_up="25ms")
    daemon(lab).start_daemon()
    assert lab.fetch(PRODUCTION) == "prod"

    faults.hang(lab.http["prod"])
    daemon(lab).wait_state("switched", timeout=15)
    users_reach_the_replica(lab)
    confirmed = [
        e["message"]
        for e in daemon(lab).journal()
        if e["kind"] == "step_done" and e["step"] == "confirm_failure"
    ]
    # the four probes in a row that declared it dead are fresh: no fifth one waits for a timeout
    assert len(confirmed) == 1
    assert "production failed its latest probes" in confirmed[0]
    assert "timed out after 0.2s" in confirmed[0]
    assert len(failovers(lab)) == 1


@pytest.mark.parametrize(
    ("settings", "blip"),
    [
        # longer than one interval (a probe is caught), shorter than 3 timed-out probes (0.6 s)
        ({"interval": "200ms", "timeout": "200ms", "failures": 3}, 0.25),
        # Longer than interval + timeout, so that a probe that started in it fails before any
        # later one can answer (a failure overtaken by a newer success is not journaled); at
        # most 6 probes fall in it: the first and 4 follow-ups within one interval, then one.
        ({"interval": "200ms", "timeout": "200ms", "failures": 8, "follow_up": "50ms"}, 0.45),
    ],
    ids=["interval", "follow_up"],
)
def test_a_blip_shorter_than_the_threshold_does_not_fail_over(
    lab: Lab, settings: dict[str, Any], blip: float
) -> None:
    lab.write_config(**settings)
    daemon(lab).start_daemon()
    failed = daemon(lab).journal

    faults.drop(lab.network, "prod", HTTP_PORT)
    time.sleep(blip)
    faults.clear(lab.network, "prod")
    daemon(lab).wait_until(
        lambda: any(e["kind"] == "check" and not e["data"]["ok"] for e in failed()),
        5,
        "the blip is seen as a failed probe",
    )
    time.sleep(1.5)
    assert failovers(lab) == []
    assert daemon(lab).state() == ("running", "production")
    assert lab.dns is not None
    assert lab.dns.answers(NAME) == BOTH_PRODUCTION
    assert lab.fetch(PRODUCTION) == "prod"


def test_bind_down_blocks_the_failover_and_the_button_completes_it(lab: Lab) -> None:
    assert lab.dns is not None
    lab.write_config()
    daemon(lab).start_daemon()

    lab.dns.stop("primary")
    faults.kill(lab.http["prod"])
    daemon(lab).wait_state("blocked", timeout=20)
    reason = daemon(lab).api("GET", f"/v1/scenarios/{NAME}")[1]["reason"]
    assert reason.startswith("step redirect failed:")
    assert lab.dns.answers(NAME) == {"primary": None, "secondary": {PRODUCTION}}
    lab.dns.start("primary")
    assert lab.dns.answers(NAME) == BOTH_PRODUCTION  # blocked, not half-redirected

    resumed = daemon(lab).ha("failover", NAME, "--wait")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    users_reach_the_replica(lab)
    assert len(failovers(lab)) == 1
    assert steps_done(lab, "redirect") == 1


def test_a_daemon_killed_mid_failover_completes_it_exactly_once_after_restart(lab: Lab) -> None:
    assert lab.dns is not None
    lab.write_config(retries=3)
    daemon(lab).start_daemon()

    lab.dns.stop("primary")  # holds the runbook in its redirect step
    faults.kill(lab.http["prod"])
    daemon(lab).wait_until(
        lambda: any(
            e["kind"] == "step_started" and e["step"] == "redirect" for e in daemon(lab).journal()
        ),
        15,
        "the failover reaches its redirect step",
    )
    assert daemon(lab).stop_daemon(signal.SIGKILL) == -signal.SIGKILL
    assert daemon(lab).state() == ("failing_over", "production")
    lab.dns.start("primary")

    daemon(lab).start_daemon()
    daemon(lab).wait_state("switched", timeout=20)
    users_reach_the_replica(lab)
    runbooks = {e["runbook"] for e in daemon(lab).journal() if e["kind"] == "step_done"}
    assert len(runbooks) == 1
    assert len(failovers(lab)) == 1
    for step in ("confirm_failure", "fence_production", "redirect", "verify"):
        assert steps_done(lab, step) == 1, step
