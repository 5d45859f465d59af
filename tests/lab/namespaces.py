"""The lab's network: three namespaces, ``orch`` joined to ``prod`` and ``repl`` by veth pairs.

Addresses come from 10.213.0.0/16, one /30 per link, and exist only inside the lab's namespaces::

    ha-lab-<tag>-orch  o-prod 10.213.1.1/30  <->  10.213.1.2/30 eth0  ha-lab-<tag>-prod
    ha-lab-<tag>-orch  o-repl 10.213.2.1/30  <->  10.213.2.2/30 eth0  ha-lab-<tag>-repl

No namespace gets a default route (checked after setup), so a process inside reaches the lab and
its own loopback, nothing else. The veth ends are created straight inside their namespaces, so
names never clash with the root namespace or with another lab. :meth:`LabNetwork.thread` gives a
thread that lives inside a namespace: sockets it opens belong there, which lets a test in the root
namespace ask questions of the lab without any of its own sockets touching a lab address.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
SIDES = ("prod", "repl")


class LabUnavailable(RuntimeError):
    """The lab cannot be built on this machine (not root, no ``ip``)."""


@dataclass(frozen=True)
class Link:
    orch_dev: str  # the veth end in the orchestrator's namespace
    orch_address: str
    address: str  # the server's address, on eth0 in its namespace


LINKS = {
    "prod": Link("o-prod", "10.213.1.1", "10.213.1.2"),
    "repl": Link("o-repl", "10.213.2.1", "10.213.2.2"),
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabUnavailable(
            "the failure lab needs root (network namespaces, veth pairs, nftables): "
            "run the tests or the benchmark as root"
        )
    if shutil.which("ip") is None:
        raise LabUnavailable("the failure lab needs iproute2 (`ip`): apt-get install iproute2")


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class LabNetwork:
    """Namespaces ``ha-lab-<tag>-{orch,prod,repl}``; :meth:`down` deletes exactly those made."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.orch = f"ha-lab-{tag}-orch"
        self.ns = {side: f"ha-lab-{tag}-{side}" for side in SIDES}
        self.made: list[str] = []

    def up(self) -> None:
        require_root()
        for name in (self.orch, *self.ns.values()):
            ip("netns", "add", name)
            self.made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        for side, link in LINKS.items():
            ns = self.ns[side]
            ip("link", "add", link.orch_dev, "netns", self.orch, "type", "veth",
               "peer", "name", "eth0", "netns", ns)  # fmt: skip
            ip("-n", self.orch, "addr", "add", f"{link.orch_address}/30", "dev", link.orch_dev)
            ip("-n", ns, "addr", "add", f"{link.address}/30", "dev", "eth0")
            ip("-n", self.orch, "link", "set", link.orch_dev, "up")
            ip("-n", ns, "link", "set", "eth0", "up")
        for name in self.made:
            routes = subprocess.run(
                ["ip", "-n", name, "route", "show", "default"], capture_output=True, text=True
            )
            if routes.stdout.strip():
                raise RuntimeError(f"{name} has a default route: {routes.stdout.strip()}")

    def down(self) -> None:
        while self.made:
            subprocess.run(["ip", "netns", "delete", self.made.pop()], check=False)

    def argv(self, ns: str, argv: list[str]) -> list[str]:
        """``argv`` run inside namespace ``ns`` (``ip netns exec`` execs it: same PID)."""
        return ["ip", "netns", "exec", ns, *argv]

    def set_link(self, side: str, up: bool) -> None:
        """Bring the server's end of ``side``'s link down or up again. The orchestrator keeps its
        route (its end only loses carrier), so packets vanish: silent loss, as with a cut cable;
        downing the orchestrator's own end would remove the route and fail connects at once."""
        ip("-n", self.ns[side], "link", "set", "eth0", "up" if up else "down")

    def thread(self, ns: str) -> NamespaceThread:
        return NamespaceThread(ns)


class NamespaceThread:
    """One worker thread that has entered namespace ``ns``; :meth:`run` calls a function there."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=ns, initializer=self._enter)
        self.run(lambda: None)  # enter now: an error shows here, not in the first question

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.ns}")
        finally:
            os.close(fd)

    def run(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
