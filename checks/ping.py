"""Ping check: one ICMP echo request to the target must be answered within the timeout.

ICMP needs a permission, decided once per process: unprivileged ICMP sockets when the kernel
allows them for our group (``net.ipv4.ping_group_range``), else raw sockets when we have
CAP_NET_RAW (root has it), else every probe fails and says so.
"""

from __future__ import annotations

import socket
from functools import cache
from typing import ClassVar, Literal

from icmplib import async_ping

from checks.base import Check, CheckConfig, CheckFailed

IcmpMode = Literal["unprivileged", "privileged"]
NOT_PERMITTED = (
    "ICMP not permitted: run as root or allow unprivileged ping (sysctl net.ipv4.ping_group_range)"
)


@cache
def icmp_mode() -> IcmpMode | None:
    """How this process may send ICMP echo requests, found by opening each kind of socket once."""
    modes: tuple[tuple[IcmpMode, int], ...] = (
        ("unprivileged", socket.SOCK_DGRAM),
        ("privileged", socket.SOCK_RAW),
    )
    for mode, kind in modes:
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
        except PermissionError:
            continue
        return mode
    return None


class PingConfig(CheckConfig):
    kind: Literal["ping"]


class PingCheck(Check):
    kind: ClassVar[str] = "ping"
    Config: ClassVar[type[CheckConfig]] = PingConfig
    config: PingConfig

    async def attempt(self) -> str:
        mode = icmp_mode()
        if mode is None:
            raise CheckFailed(NOT_PERMITTED)
        host = await async_ping(
            self.target, count=1, timeout=self.config.timeout, privileged=mode == "privileged"
        )
        if host.packets_sent == 0:
            raise CheckFailed(f"cannot send an echo request to {self.target}")
        if not host.is_alive:
            raise CheckFailed(f"no echo reply from {self.target}")
        return f"echo reply in {host.avg_rtt:.2f}ms"
