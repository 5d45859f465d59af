"""Assured Recovery: rehearsals on the replica that never touch production or redirection.

The vSphere test runs on govmomi's simulator; the others use a script provider whose machines
and snapshots are files, so that a test can be slow (its start command sleeps) on purpose.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from ha.errors import ProviderError
from providers.vsphere import VsphereConfig, VsphereProvider
from tests.e2e.site import DaemonRunner
from tests.servers.vcsim import Vcsim

REPLICA_VM = "DC0_C0_RP0_VM0"
PLAYBOOKS = Path(__file__).parent.parent.parent / "playbooks"


def kinds(site: DaemonRunner, prefix: str = "ar_") -> list[str]:
    return [e["kind"] for e in site.journal() if e["kind"].startswith(prefix)]


def ended(site: DaemonRunner) -> list[dict[str, Any]]:
    done = ("ar_passed", "ar_failed", "ar_aborted", "ar_rolled_back")
    return [e for e in site.journal() if e["kind"] in done]


def scenario(site: DaemonRunner, name: str, provider: str, **ar: Any) -> dict[str, Any]:
    alive = ["test", "-e", f"{site.dir}/{name}@{{target}}.alive"]
    for address in ("127.0.0.2", "127.0.0.3"):
        (site.dir / f"{name}@{address}.alive").touch()
    return {
        "name": name,
        "production": {"address": "127.0.0.2"},
        "replica": {"address": "127.0.0.3", "machine": {"provider": provider, "name": f"{name}-r"}},
        "checks": [{"kind": "script", "command": alive, "interval": "200ms"}],
        "failover": {"failures": 2, "hold_down": "0s"},
        "runbook": {"retry_delay": "100ms", "healthy_timeout": "5s"},
        "assured_recovery": {"timeout": "5s", **ar},
    }


def files_provider(site: DaemonRunner) -> dict[str, Any]:
    """Machines are MACHINE.on files; snapshots are MACHINE@SNAPSHOT.snap files."""
    d = site.dir
    return {
        "type": "script",
        "status": ["sh", "-c", f"test -e {d}/{{machine}}.on && echo on || echo off"],
        "power_on": ["touch", f"{d}/{{machine}}.on"],
        "power_off": ["rm", "-f", f"{d}/{{machine}}.on"],
        "snapshot": ["sh", "-c", f"touch {d}/{{machine}}@{{snapshot}}.snap; echo {{snapshot}}"],
        "revert": ["test", "-e", f"{d}/{{machine}}@{{snapshot}}.snap"],
        "delete_snapshot": ["rm", f"{d}/{{machine}}@{{snapshot}}.snap"],
    }


def write(
    site: DaemonRunner, providers: dict[str, Any], *scenarios: dict[str, Any], **top: Any
) -> None:
    config = {"api": {"port": site.api_port}, "providers": providers, "scenarios": list(scenarios)}
    site.config_path.write_text(yaml.safe_dump({**config, **top}, sort_keys=False))


@pytest.fixture
def site(tmp_path: Path) -> Any:
    runner = DaemonRunner(tmp_path)
    yield runner
    runner.stop()


def snapshots(site: DaemonRunner) -> list[str]:
    return sorted(p.name for p in site.dir.glob("*.snap"))


def test_vsphere_rehearsal_snapshots_powers_on_checks_reverts_and_cleans_up(
    site: DaemonRunner, vcsim: Vcsim
) -> None:
    dc1 = VsphereProvider("dc1", VsphereConfig.model_validate(vcsim.provider_config()))

    async def replica() -> tuple[str, str]:
        """Its power state, and what reverting to any snapshot says (none may be left)."""
        state = await dc1.power_state(REPLICA_VM)
        try:
            await dc1.revert(REPLICA_VM, "any")
        except ProviderError as exc:
            return str(state), str(exc)
        return str(state), "a snapshot is left"

    try:
        asyncio.run(dc1.power_off(REPLICA_VM, hard=True))
        app = scenario(site, "app", "dc1")
        app["replica"]["machine"]["name"] = REPLICA_VM
        failing = scenario(site, "bad", "dc1", checks=[{"kind": "script", "command": "false"}])
        failing["replica"]["machine"]["name"] = REPLICA_VM
        write(site, {"dc1": vcsim.provider_config()}, app, failing)
        site.start_daemon()

        done = site.ha("test", "app", "--wait", timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        steps = [e["data"].get("step") for e in site.journal() if e["kind"] == "ar_step"]
        assert steps == ["record", "snapshot", "start", "checks", "cleanup"]
        passed = ended(site)[-1]
        assert passed["kind"] == "ar_passed"
        assert passed["data"]["recovery_time"] > 0
        assert asyncio.run(replica()) == (
            "off",
            f"revert {REPLICA_VM} to any: {REPLICA_VM} has no snapshots",
        )  # as before
        assert site.transitions("app") == []  # production and redirection untouched

        failed = site.ha("test", "bad", "--wait", timeout=90)
        assert failed.returncode == 1
        result = ended(site)[-1]
        assert result["kind"] == "ar_failed"
        assert result["data"]["failing"] == {"ar:script": "exit 1"}
        assert asyncio.run(replica()) == (
            "off",
            f"revert {REPLICA_VM} to any: {REPLICA_VM} has no snapshots",
        )
        history = site.ha("test", "app", "--history")
        assert "passed" in history.stdout
    finally:
        asyncio.run(dc1.close())


def test_production_failing_during_a_test_aborts_it_and_fails_over(site: DaemonRunner) -> None:
    app = scenario(site, "app", "lab", start=["sleep", "30"], timeout="60s")
    write(site, {"lab": files_provider(site)}, app)
    site.start_daemon()
    assert site.ha("test", "app").returncode == 0
    site.wait_until(lambda: "ar_snapshot" in kinds(site), 10, "the test took its snapshot")
    (site.dir / "app@127.0.0.2.alive").unlink()  # production dies mid-test
    site.wait_state("switched", timeout=30, name="app")

    journal = [e["kind"] for e in site.journal()]
    assert journal.index("ar_aborted") < journal.index("step_started")  # reverted first
    assert snapshots(site) == []
    assert site.state("app") == ("switched", "replica")


def test_sigkill_mid_test_leaves_no_snapshot_nor_powered_on_replica(site: DaemonRunner) -> None:
    app = scenario(site, "app", "lab", start=["sleep", "30"], timeout="60s")
    write(site, {"lab": files_provider(site)}, app)
    site.start_daemon()
    assert site.ha("test", "app").returncode == 0
    site.wait_until(lambda: (site.dir / "app-r.on").exists(), 10, "the test powered the replica on")
    assert snapshots(site) != []
    site.stop_daemon(signal.SIGKILL)

    site.start_daemon()
    site.wait_until(lambda: "ar_rolled_back" in kinds(site), 10, "the interrupted test rolled back")
    assert snapshots(site) == []
    assert not (site.dir / "app-r.on").exists()
    assert "replica reverted, snapshot deleted" in ended(site)[-1]["message"]


def test_schedules_run_and_respect_the_concurrency_limit(site: DaemonRunner) -> None:
    every_2s = {"schedule": "* * * * * */2", "start": ["sleep", "1"], "window": "1m"}
    write(
        site,
        {"lab": files_provider(site)},
        scenario(site, "a", "lab", **every_2s),
        scenario(site, "b", "lab", **every_2s),
        recovery_tests={"max_concurrent": 1},
    )
    site.start_daemon()
    site.wait_until(lambda: len(ended(site)) >= 4, 40, "four scheduled tests ended")
    spans: list[tuple[int, int]] = []
    open_at: dict[str, int] = {}
    for event in site.journal():
        if event["kind"] == "ar_started":
            open_at[event["data"]["test"]] = event["id"]
        elif event["kind"] in ("ar_passed", "ar_failed"):
            spans.append((open_at.pop(event["data"]["test"]), event["id"]))
    assert all(end < start for (_, end), (start, _) in pairwise(spans))
    assert {e["scenario"] for e in site.journal() if e["kind"] == "ar_passed"} == {"a", "b"}
    assert all("schedule" in e["message"] for e in site.journal() if e["kind"] == "ar_started")
    assert snapshots(site) == []


def test_passing_snapshots_are_kept_as_known_good_the_last_n(site: DaemonRunner) -> None:
    write(site, {"lab": files_provider(site)}, scenario(site, "app", "lab", keep_snapshots=1))
    site.start_daemon()
    for _ in range(3):
        done = site.ha("test", "app", "--wait")
        assert done.returncode == 0, done.stdout + done.stderr
    kept = [e["data"]["kept_snapshot"] for e in ended(site)]
    assert snapshots(site) == [f"app-r@{kept[-1]}.snap"]  # the newest known-good one only
    deleted = [e["data"]["snapshot"] for e in site.journal() if e["kind"] == "ar_snapshot_deleted"]
    assert deleted == kept[:2]


def test_a_group_test_waits_for_each_members_result_and_reports_it(site: DaemonRunner) -> None:
    write(
        site,
        {"lab": files_provider(site)},
        scenario(site, "a", "lab", start=["sleep", "0.5"]),
        scenario(site, "b", "lab", timeout="1s", checks=[{"kind": "script", "command": "false"}]),
        groups=[{"name": "farm", "scenarios": ["a", "b"]}],
        recovery_tests={"max_concurrent": 1},
    )
    site.start_daemon()
    done = site.ha("group", "test", "farm", "--wait", timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr  # b failed its rehearsal
    assert "a: passed: recovered in" in done.stdout
    assert "b: failed: checks fail on the replica: ar:script: exit 1" in done.stdout
    journal = site.journal()
    report = next(e for e in journal if e["kind"] == "group_report")
    assert all(e["id"] < report["id"] for e in ended(site))  # it waited for both results
    starts = [e["id"] for e in journal if e["kind"] == "ar_started"]
    assert ended(site)[0]["id"] < starts[1]  # one at a time (max_concurrent)
    assert snapshots(site) == []
    assert [site.state(name) for name in ("a", "b")] == [("running", "production")] * 2


def test_a_group_test_takes_the_result_of_a_members_test_already_running(
    site: DaemonRunner,
) -> None:
    write(
        site,
        {"lab": files_provider(site)},
        scenario(site, "a", "lab", start=["sleep", "4"], timeout="10s"),
        scenario(site, "b", "lab"),
        groups=[{"name": "farm", "scenarios": ["a", "b"]}],
    )
    site.start_daemon()
    assert site.ha("test", "a").returncode == 0
    site.wait_until(lambda: "ar_started" in kinds(site), 10, "a's own test started")
    done = site.ha("group", "test", "farm", "--wait", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr  # a was not refused
    assert "a: passed: recovered in" in done.stdout
    assert "(the test that was running)" in done.stdout
    started = [e["scenario"] for e in site.journal() if e["kind"] == "ar_started"]
    assert sorted(started) == ["a", "b"]  # a rehearsed once, not twice
    assert snapshots(site) == []


def test_a_queued_test_that_cannot_start_ends_aborted_and_its_waiters_learn_why(
    site: DaemonRunner,
) -> None:
    write(
        site,
        {"lab": files_provider(site)},
        scenario(site, "a", "lab", start=["sleep", "6"], timeout="20s"),
        scenario(site, "b", "lab"),
        groups=[{"name": "farm", "scenarios": ["a", "b"]}],
        recovery_tests={"max_concurrent": 1},
    )
    site.start_daemon()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(site.ha, "group", "test", "farm", "--wait", timeout=60)
        site.wait_until(lambda: "ar_started" in kinds(site), 10, "a's test started, b's queued")
        again = site.ha("group", "test", "farm")
        assert "group farm is busy: test in progress" in again.stderr, again.stdout
        assert site.ha("group", "failover", "farm", "--dry-run").returncode == 0  # not held
        (site.dir / "b@127.0.0.2.alive").unlink()  # b's production dies: b fails over
        site.wait_state("switched", name="b")  # though the group's rehearsal goes on
        status = site.ha("status").stdout
        assert "group_report" not in kinds(site, "group_")  # the status above was meanwhile
        assert "group farm: degraded" in status  # not "test in progress": b did fail over
        done = waiting.result()
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.index("a ar_passed") < done.stdout.index("group_report")
    assert "a: passed" in done.stdout
    assert "b: aborted: queued test (group:farm) not started: a failover runbook" in done.stdout
    assert [e["kind"] for e in ended(site) if e["scenario"] == "b"] == ["ar_aborted"]
    site.wait_state("switched", name="b")
    assert snapshots(site) == []


REHEARSAL = """\
- name: Rehearse app
  tasks:
    - name: Rehearse the recovery of app on its replica
      test: {scenario: app}
      register: rehearsal
    - name: Production still serves
      check: {scenario: app, side: production}
      when: rehearsal.ended.data.recovery_time < 60
"""


def test_a_playbook_test_task_waits_for_the_result_and_registers_it(site: DaemonRunner) -> None:
    write(site, {"lab": files_provider(site)}, scenario(site, "app", "lab", timeout="2s"))
    (site.dir / "rehearsal.yaml").write_text(REHEARSAL)
    site.start_daemon()

    checked = site.ha("play", "--check", str(site.dir / "rehearsal.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "would: test: 2. take a snapshot" in checked.stdout
    assert kinds(site) == []  # the dry run tested nothing

    done = site.ha("play", str(site.dir / "rehearsal.yaml"), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recovered in" in done.stdout
    assert "TASK [Production still serves]\n  app running; production passes" in done.stdout
    assert [e["kind"] for e in ended(site)] == ["ar_passed"]
    commands = [e for e in site.journal() if e["kind"] == "command"]
    assert "play 'Rehearse app' task" in commands[0]["actor"]

    (site.dir / "app@127.0.0.3.alive").unlink()  # the replica fails its checks
    failed = site.ha("play", str(site.dir / "rehearsal.yaml"), timeout=60)
    assert failed.returncode == 1
    assert "failed: test of app did not complete: " in failed.stdout
    assert "TASK [Production still serves]" not in failed.stdout


def test_the_rehearsal_playbook_tests_every_member_and_leaves_production_alone(
    site: DaemonRunner,
) -> None:
    write(
        site,
        {"lab": files_provider(site)},
        scenario(site, "a", "lab"),
        scenario(site, "b", "lab"),
        groups=[{"name": "farm", "scenarios": ["a", "b"], "ordered": True}],
    )
    site.start_daemon()
    playbook = str(PLAYBOOKS / "ar-rehearsal.yaml")
    checked = site.ha("play", "--check", playbook, "-e", "group=farm")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "would: wave 1: b: test" in checked.stdout  # all at once, though b comes after a
    assert kinds(site) == []

    done = site.ha("play", playbook, "-e", "group=farm", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "group farm: test done: a: passed: recovered in" in done.stdout
    assert sorted(e["scenario"] for e in ended(site) if e["kind"] == "ar_passed") == ["a", "b"]
    assert "TASK [Production is still healthy after it]\n  group farm is protected" in done.stdout
    assert site.transitions("a") == site.transitions("b") == []
    assert snapshots(site) == []
