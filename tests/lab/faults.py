"""Faults on demand, each with its repair: the test or benchmark says what breaks, and when.

- :func:`kill`: SIGKILL the service (dead: connections are refused at once)
- :func:`hang`: SIGSTOP (hung: connects are accepted by the kernel's backlog, requests never
  answered; stopping the service resumes it first)
- :func:`cut` / :func:`restore`: the orchestrator's end of the link down / up (silent loss)
- :func:`drop` / :func:`lose` / :func:`clear`: nftables inside the server's namespace dropping every
  packet to a port, or a random share of them (``numgen random mod 100 < N``)

Stopping BIND9 and SIGKILLing the daemon are methods of what runs them (:class:`LabDns`,
:class:`~tests.e2e.site.DaemonRunner`).
"""

from __future__ import annotations

import os
import signal
import subprocess

from tests.lab.namespaces import LabNetwork
from tests.lab.services import Service

TABLE = "halab"


def kill(service: Service) -> None:
    os.kill(service.pid, signal.SIGKILL)


def hang(service: Service) -> None:
    os.kill(service.pid, signal.SIGSTOP)


def cut(network: LabNetwork, side: str) -> None:
    network.set_link(side, up=False)


def restore(network: LabNetwork, side: str) -> None:
    network.set_link(side, up=True)


def drop(network: LabNetwork, side: str, port: int) -> None:
    """Every TCP packet to ``port`` in ``side``'s namespace is dropped."""
    _rule(network, side, f"tcp dport {port} drop")


def lose(network: LabNetwork, side: str, port: int, percent: int) -> None:
    """A random ``percent`` of the TCP packets to ``port`` in ``side``'s namespace is dropped."""
    _rule(network, side, f"tcp dport {port} numgen random mod 100 < {percent} drop")


def clear(network: LabNetwork, side: str) -> None:
    """Remove the lab's nftables table from ``side``'s namespace (no error if there is none)."""
    _nft(network, side, f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n")


def _rule(network: LabNetwork, side: str, rule: str) -> None:
    _nft(
        network,
        side,
        f"table inet {TABLE} {{\n"
        "  chain input { type filter hook input priority 0; policy accept; }\n"
        "}\n"
        f"flush chain inet {TABLE} input\n"
        f"add rule inet {TABLE} input {rule}\n",
    )


def _nft(network: LabNetwork, side: str, script: str) -> None:
    result = subprocess.run(
        network.argv(network.ns[side], ["nft", "-f", "-"]),
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nft in {network.ns[side]}: {result.stderr.strip()}")
