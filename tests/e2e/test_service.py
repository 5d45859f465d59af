"""The daemon as a service: one daemon per state file, and nothing done when it cannot listen."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import yaml

from tests.e2e.site import Site
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
