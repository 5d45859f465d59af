"""Auto-discovery: from the VMs a provider lists, draft scenarios for ``ha discover``.

Pure: no SDK here, so every provider that lists machines (vSphere, Hyper-V) can share it. One
scenario per VM that no scenario protects yet, gathered in one group per host (or per the host or
cluster asked for), so that a whole host is protected in one step.

A draft is not a finished scenario: the replica's address (and the production's, when the guest
does not report one) is left ``None``, so the configuration refuses the draft until an operator
fills it in, and failover is ``manual`` until they have looked at it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from providers.base import PowerState

NAME_LIMIT = 63
UNPLACED = "unplaced"
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class MachineInfo:
    """One VM as a provider lists it."""

    id: str  # vSphere managed object id (vm-123) or Hyper-V VM id (a GUID)
    name: str
    power: PowerState
    host: str | None = None  # the hypervisor host it runs on
    cluster: str | None = None
    address: str | None = None  # as the guest reports it, when it does


@runtime_checkable
class ListsMachines(Protocol):
    """A provider that can list its machines (vSphere, Hyper-V)."""

    name: str

    async def list_machines(self, host: str | None = None) -> list[MachineInfo]: ...


async def discover(
    provider: ListsMachines, host: str | None = None, protected: Collection[str] = ()
) -> dict[str, list[dict[str, Any]]]:
    """``ha discover PROVIDER [--host H]``: drafts for the machines not yet protected."""
    machines = await provider.list_machines(host)
    return discovered_config(machines, provider.name, protected=protected, group=host)


def scenario_name(text: str) -> str:
    """``text`` as a valid scenario or group name: letters, digits, ``_.-``, 63 at most."""
    name = _NOT_IN_NAMES.sub("-", text).lstrip("_.-")[:NAME_LIMIT]
    return name or "vm"


def discovered_config(
    machines: Sequence[MachineInfo],
    provider: str,
    *,
    protected: Collection[str] = (),
    group: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Draft ``scenarios`` and ``groups`` for the machines that no scenario protects yet.

    ``protected`` holds the machine references (names or ids) that scenarios of this provider
    already use. Machines are grouped under ``group`` when given (the ``--host`` asked for), else
    per host. A machine is referred to by name when the name is unique, else by its id.
    """
    counts: dict[str, int] = {}
    for machine in machines:
        counts[machine.name] = counts.get(machine.name, 0) + 1
    taken: set[str] = set()
    scenarios: list[dict[str, Any]] = []
    groups: dict[str, list[str]] = {}
    for machine in machines:
        if machine.name in protected or machine.id in protected:
            continue
        name = scenario_name(machine.name)
        if name in taken:
            name = scenario_name(f"{machine.name}-{machine.id}")
        taken.add(name)
        reference = machine.name if counts[machine.name] == 1 else machine.id
        scenarios.append(_draft(name, provider, reference, machine.address))
        groups.setdefault(scenario_name(group or machine.host or UNPLACED), []).append(name)
    return {
        "scenarios": scenarios,
        "groups": [{"name": name, "scenarios": members} for name, members in groups.items()],
    }


def _draft(name: str, provider: str, reference: str, address: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "production": {"address": address, "machine": {"provider": provider, "name": reference}},
        "replica": {"address": None},
        "checks": [{"kind": "ping"}],
        "failover": {"mode": "manual"},
        "fence": True,
    }
