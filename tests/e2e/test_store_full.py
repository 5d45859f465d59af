"""The disk holding the SQLite state fills up: a real tmpfs mounted by the test, filled with a file
and emptied again (tests/e2e/full_disk.py).

The daemon stays up and keeps checking; it acts on nothing it cannot journal first, says why in
`ha status` and in its answers to commands, and goes on where it was once the disk has room:
what it did not evaluate, it evaluates; a runbook stopped by a refused write resumes. Before, the
daemon exited at the first refused write, and nothing watched the scenarios until a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.full_disk import FULL, empty, fill, small_disk, state_on, store_error
from tests.e2e.groups_site import report, wait_report


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk") as mounted:
        yield mounted


@pytest.fixture
def fleet(tmp_path: Path, disk: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, 2)
    try:
        yield fleet
    finally:
        fleet.stop()


def start(fleet: Fleet, disk: Path, **scenario: object) -> None:
    fleet.write_config(**scenario)
    state_on(fleet, disk)
    fleet.start_daemon()


def held_redirect(fleet: Fleet) -> list[dict[str, object]]:
    """A script redirection whose ``set`` holds s1 until the file ``redirect-gate`` exists."""
    gate = f"test {{name}} != s1 || until test -e {fleet.dir}/redirect-gate; do sleep 0.05; done"
    active = f"{fleet.dir}/{{name}}.active"
    redirect = {
        "set": ["sh", "-c", f'{gate}; echo "$HA_ADDRESS" > {active}'],
        "get": ["sh", "-c", f"cat {active} 2>/dev/null || true"],
    }
    return [{"script": redirect}]


def test_a_full_disk_stops_nothing_but_the_actions_which_come_once_it_has_room(
    fleet: Fleet, disk: Path
) -> None:
    start(fleet, disk)
    fill(disk)
    fleet.kill("s1")
    fleet.wait_until(lambda: store_error(fleet) == FULL, 10, "the daemon says the store fails")
    status = fleet.ha("status")
    assert status.returncode == 0  # the daemon runs and answers
    assert f"the state store fails (nothing is acted on until it takes writes again): {FULL}" in (
        status.stdout
    )
    refused = fleet.ha("failover", "s1")
    assert (refused.returncode, refused.stderr) == (
        1,
        f"ha: refused (503): the state store failed: {FULL}\n",
    )
    assert fleet.active("s1") != "127.0.0.3"  # nothing acted
    assert fleet.state("s1")[0] == "running"

    empty(disk)
    fleet.wait_state("switched", name="s1", timeout=15)  # the detector's failover, at last
    assert fleet.active("s1") == "127.0.0.3"
    kinds = [e["kind"] for e in fleet.journal()]
    assert kinds.index("store_recovered") < kinds.index("proposal")
    proposal = next(e for e in fleet.journal() if e["kind"] == "proposal")
    assert proposal["actor"] == "detector"  # not the command refused meanwhile
    assert store_error(fleet) is None
    assert "the state store fails" not in fleet.ha("status").stdout


def test_a_runbook_stopped_by_a_full_disk_resumes_once_it_has_room(
    fleet: Fleet, disk: Path
) -> None:
    """The disk fills while the redirect step runs (a gate holds it): its step_done cannot be
    written, so the runbook stops there and resumes at that step once the disk has room."""
    start(fleet, disk, redirect=held_redirect(fleet))
    fleet.kill("s1")
    fleet.wait_until(
        lambda: any(e["step"] == "redirect" for e in fleet.journal()), 15, "the redirect started"
    )
    fill(disk)
    (fleet.dir / "redirect-gate").touch()
    fleet.wait_until(lambda: store_error(fleet) == FULL, 10, "the daemon says the store fails")
    assert fleet.state("s1")[0] == "failing_over"

    empty(disk)
    fleet.wait_state("switched", name="s1", timeout=15)
    steps = [(e["kind"], e["step"]) for e in fleet.journal() if e["step"] == "redirect"]
    assert steps == [("step_started", "redirect")] * 2 + [("step_done", "redirect")]
    resumed = [e["message"] for e in fleet.journal() if e["kind"] == "runbook_resumed"]
    assert resumed == ["resuming failover after an interrupted write"]
    assert fleet.active("s1") == "127.0.0.3"


def test_a_group_failover_goes_on_once_the_disk_has_room(fleet: Fleet, disk: Path) -> None:
    """s1 then s2, in order: the disk fills while s1's redirect runs; s1's runbook stops, the
    group command waits for it, and once the disk has room s1 resumes and s2 follows."""
    groups = [{"name": "farm", "scenarios": ["s1", "s2"], "ordered": True}]
    start(fleet, disk, groups=groups, redirect=held_redirect(fleet))
    assert fleet.ha("group", "failover", "farm").returncode == 0
    fleet.wait_until(
        lambda: any(e["step"] == "redirect" for e in fleet.journal()), 15, "s1's redirect started"
    )
    fill(disk)
    (fleet.dir / "redirect-gate").touch()
    fleet.wait_until(lambda: store_error(fleet) == FULL, 10, "the daemon says the store fails")
    assert fleet.state("s2")[0] == "running"  # the next wave waits for s1

    empty(disk)
    wait_report(fleet, timeout=20)
    assert report(fleet)["ok"] is True, report(fleet)
    assert [fleet.active(name) for name in ("s1", "s2")] == ["127.0.0.3", "127.0.0.3"]
