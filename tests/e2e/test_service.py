"""The daemon as a service: one daemon per state file, nothing done when it cannot listen, and a
stop that does not wait for SDK calls nobody needs any more."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.site import NAME, DaemonRunner, Site
from tests.servers.ports import free_port


def daemon(site: Site, config: str) -> subprocess.CompletedProcess[str]:
    """``ha daemon`` as an operator starts it; it must end by itself (refused)."""
    return subprocess.run(
        [sys.executable, "-m", "ha", "daemon", "-c", config],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_second_daemon_on_the_same_state_is_refused_and_the_first_goes_on(site: Site) -> None:
    site.write_config()
    site.start_daemon()
    assert site.daemon is not None
    # Another port, so that only the state tells them apart: two deciders for one scenario.
    config = yaml.safe_load(site.config_path.read_text())
    config["api"]["port"] = free_port()
    other = site.dir / "other.yaml"
    other.write_text(yaml.safe_dump(config))

    second = daemon(site, str(other))
    assert second.returncode == 1
    assert second.stderr == (
        f"ha: state file {site.dir / 'ha-state.db'} is in use by another daemon"
        f" (pid {site.daemon.pid}; lock {site.dir / 'ha-state.db.lock'}): stop that one first,"
        " or give this one a state file of its own\n"
    )  # and nothing else: it did not start (no log line)
    os.kill(site.running_pid("production"), signal.SIGKILL)  # the first one still decides
    site.wait_state("switched", timeout=20)
    assert site.ha("status").returncode == 0


def test_a_taken_api_port_stops_the_daemon_before_it_resumes_anything(site: Site) -> None:
    site.write_config(delay=0.6)
    site.start_daemon()
    os.kill(site.running_pid("production"), signal.SIGSTOP)  # hung production: a failover
    site.wait_until(
        lambda: any(e["kind"] == "step_started" for e in site.journal()), 20, "a step started"
    )
    assert site.stop_daemon(signal.SIGKILL) == -signal.SIGKILL  # the runbook is left in flight
    before = site.journal()

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        taken.bind(("127.0.0.1", site.api_port))
        taken.listen()
        refused = daemon(site, str(site.config_path))
    assert refused.returncode == 1
    assert refused.stderr == (
        f"ha: api: cannot listen on 127.0.0.1 port {site.api_port}: Address already in use"
        " (another program has it? set api.port)\n"
    )
    assert site.journal() == before  # the runbook was not resumed, to be left again

    site.start_daemon()
    site.wait_state("switched", timeout=30)
    assert [e["kind"] for e in site.journal()].count("runbook_resumed") == 1


def silent_provider(kind: str, port: int) -> dict[str, Any]:
    """A provider of ``kind`` whose API endpoint is the listener on 127.0.0.1 ``port``."""
    if kind == "aws":
        endpoint = f"http://127.0.0.1:{port}"
        return {
            "type": "aws",
            "region": "eu-west-1",
            "endpoint_url": endpoint,
            "read_timeout": "60s",
        }
    login = {"host": "127.0.0.1", "port": port, "user": "ha", "password_env": "HA_TEST_PASSWORD"}
    if kind == "vsphere":
        return {"type": "vsphere", **login, "insecure": True, "call_timeout": "60s"}
    return {
        "type": "hyperv",
        **login,
        "https": False,
        "transport": "basic",
        "allow_basic_over_http": True,
    }


@pytest.mark.parametrize("kind", ["aws", "vsphere", "hyperv"])
def test_a_stopped_daemon_ends_while_an_sdk_call_still_waits_for_a_silent_endpoint(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fencing through a cloud or hypervisor API that accepts connections and answers nothing
    (a listener of this test that never reads): the SDK (boto3, pyVmomi, pywinrm) waits for
    its timeouts in a worker thread, which the interpreter joined before exiting, so the stopped
    daemon lingered, holding its state file, for as long as that (minutes, with boto3's retries).
    The replica is another listener of this test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("HA_TEST_PASSWORD", "test")
    runner = DaemonRunner(tmp_path)
    with (
        socket.create_server(("127.0.0.1", 0)) as api,
        socket.create_server(("127.0.0.3", 0)) as replica,
    ):
        port = replica.getsockname()[1]
        config = {
            "state": "ha-state.db",
            "api": {"port": runner.api_port},
            "log": {"format": "json"},
            "providers": {"cloud": silent_provider(kind, api.getsockname()[1])},
            "scenarios": [
                {
                    "name": NAME,
                    "production": {
                        "address": "127.0.0.2",  # nothing listens: production is dead
                        "machine": {"provider": "cloud", "name": "i-0123456789abcdef0"},
                    },
                    "replica": {"address": "127.0.0.3"},
                    "checks": [{"kind": "tcp", "port": port, "interval": "200ms"}],
                    "failover": {"mode": "automatic", "failures": 1},
                    "fence": True,
                    "redirect": [{"script": {"set": "true", "get": "echo 127.0.0.2"}}],
                }
            ],
        }
        runner.config_path.write_text(yaml.safe_dump(config))
        try:
            runner.start_daemon()
            runner.wait_until(
                lambda: any(e["step"] == "fence_production" for e in runner.journal()),
                20,
                "fencing started",
            )
            assert runner.stop_daemon(signal.SIGTERM, timeout=15) == 0
        finally:
            runner.stop()
    left = [json.loads(line) for line in runner.log().splitlines() if "left behind" in line]
    assert [(e["event"], e["waited"]) for e in left] == [("calls in flight left behind", 5.0)]
    steps = [(e["kind"], e["step"]) for e in runner.journal() if e["step"] == "fence_production"]
    assert steps == [("step_started", "fence_production")]  # resumed at the next start
