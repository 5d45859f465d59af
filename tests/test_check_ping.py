"""The ping check, on loopback addresses only (never anything else).

Each ICMP permission case runs the check in a fresh network namespace (``unshare --net``) set up
for it: unprivileged ICMP sockets allowed or not, CAP_NET_RAW kept or dropped, loopback up or down,
echo requests answered or ignored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from checks.ping import NOT_PERMITTED, PingCheck

REPO = Path(__file__).resolve().parents[1]
NO_UNPRIVILEGED_ICMP = "1 0"
ROOT_MAY_PING = "0 0"
PROBE = """\
import asyncio, json, sys
from checks.ping import PingCheck, icmp_mode
config = PingCheck.Config.model_validate({"kind": "ping", "timeout": "500ms"})
result = asyncio.run(PingCheck(config, sys.argv[1]).probe())
print(json.dumps({"mode": icmp_mode(), "ok": result.ok, "detail": result.detail}))
"""


def probe_in_namespace(
    *,
    ping_group_range: str,
    net_raw: bool = True,
    loopback_up: bool = True,
    answer_echo: bool = True,
) -> dict[str, Any]:
    """Probe 127.0.0.1 from a child process in a new network namespace set up as asked."""
    setup = [f"sysctl -qw net.ipv4.ping_group_range='{ping_group_range}'"]
    if loopback_up:
        setup.append("ip link set lo up")
    if not answer_echo:
        setup.append("sysctl -qw net.ipv4.icmp_echo_ignore_all=1")
    child = [sys.executable, "-c", PROBE, "127.0.0.1"]
    if not net_raw:
        child = ["setpriv", "--bounding-set=-net_raw", *child]
    script = " && ".join([*setup, 'exec "$@"'])
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", *child],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"probe in a namespace failed:\n{done.stdout}{done.stderr}"
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


@pytest.mark.parametrize("target", ["127.0.0.1", "127.0.0.2"])
async def test_loopback_answers(target: str) -> None:
    config = PingCheck.Config.model_validate({"kind": "ping"})

    result = await PingCheck(config, target).probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "echo reply")
    assert result.detail.endswith("ms")
    assert result.latency > 0


def test_unprivileged_icmp_when_the_kernel_allows_it() -> None:
    outcome = probe_in_namespace(ping_group_range=ROOT_MAY_PING, net_raw=False)

    assert (outcome["mode"], outcome["ok"]) == ("unprivileged", True)


def test_raw_socket_with_cap_net_raw() -> None:
    outcome = probe_in_namespace(ping_group_range=NO_UNPRIVILEGED_ICMP)

    assert (outcome["mode"], outcome["ok"]) == ("privileged", True)


def test_not_permitted() -> None:
    outcome = probe_in_namespace(ping_group_range=NO_UNPRIVILEGED_ICMP, net_raw=False)

    assert outcome == {"mode": None, "ok": False, "detail": NOT_PERMITTED}


def test_no_route() -> None:
    outcome = probe_in_namespace(ping_group_range=NO_UNPRIVILEGED_ICMP, loopback_up=False)

    detail = "cannot send an echo request to 127.0.0.1"
    assert outcome == {"mode": "privileged", "ok": False, "detail": detail}


def test_no_answer_times_out() -> None:
    outcome = probe_in_namespace(ping_group_range=NO_UNPRIVILEGED_ICMP, answer_echo=False)

    assert outcome == {"mode": "privileged", "ok": False, "detail": "timed out after 0.5s"}


def test_config_has_only_common_settings() -> None:
    config = PingCheck.Config.model_validate({"kind": "ping", "interval": "2s", "timeout": "300ms"})

    assert (config.interval, config.timeout, config.label) == (2.0, 0.3, "ping")
