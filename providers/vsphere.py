"""The vSphere provider: VMs on vCenter or ESXi, through pyVmomi.

A machine is named by its VM name, its inventory path (``DC0/vm/folder/web01``) or its managed
object id (``vm-123``). A name that matches several VMs is an error naming every one of them,
never a guess. Power on and power off are idempotent; a task that fails while the VM reached the
wanted state anyway (someone else did it) counts as done.

``power_off(hard=False)`` shuts the guest down through VMware Tools. When Tools are not running or
the guest is still on after ``shutdown_timeout``, it powers off hard if ``soft_fallback`` is set,
and otherwise fails saying why.

Every pyVmomi call runs in the provider's small thread pool; vsphere_session.py holds the session
(lazy login, log in again when expired), property reads, task waits with a deadline, and the one
mapping of pyVmomi faults into our errors.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, Self, TypeVar

import structlog
from pydantic import Field, model_validator

from checks.database import EnvVarName, SecretFilePath
from ha.duration import Duration, format_duration
from ha.errors import ProviderError
from ha.lazy import LazyModule
from ha.workers import Workers
from providers.base import PowerState, Provider, ProviderConfig
from providers.vsphere_discover import MachineInfo
from providers.vsphere_session import Connection, Session, read, read_all, type_name, wait_for_task

vim: Any = LazyModule("pyVmomi", "vim")
vmodl: Any = LazyModule("pyVmomi", "vmodl")

log = structlog.get_logger("providers.vsphere")

T = TypeVar("T")
WORKERS = 4  # threads per provider: concurrent vSphere calls
SHUTDOWN_POLL = 0.5  # seconds between two reads of the power state during a guest shutdown
VM_ID = re.compile(r"^vm-\d+$")
TOOLS_RUNNING = "guestToolsRunning"
_POWER = {
    "poweredOn": PowerState.ON,
    "poweredOff": PowerState.OFF,
    "suspended": PowerState.SUSPENDED,
}


class VsphereConfig(ProviderConfig):
    type: Literal["vsphere"]
    host: str = Field(min_length=1, pattern=r"^[^\s/]+$", description="vCenter or ESXi host")
    port: int = Field(443, ge=1, le=65535)
    user: str = Field(min_length=1)
    password_env: EnvVarName | None = Field(None, description="variable holding the password")
    password_file: SecretFilePath | None = Field(None, description="file holding the password")
    insecure: bool = Field(False, description="skip TLS certificate verification (labs only)")
    ca_file: SecretFilePath | None = Field(
        None, description="PEM file of the CA that signed the server certificate; default: system"
    )
    datacenter: str | None = Field(
        None, description="find VMs by name, and list them, in this datacenter only"
    )
    call_timeout: Duration = Field(
        30.0, gt=0, description="deadline of one API call on the wire: connecting, each answer"
    )
    task_timeout: Duration = Field(50.0, gt=0, description="deadline of one vSphere task")
    shutdown_timeout: Duration = Field(40.0, gt=0, description="how long a guest shutdown may take")
    soft_fallback: bool = Field(
        False, description="power off hard when a guest shutdown is impossible or too slow"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        if self.insecure and self.ca_file is not None:
            raise ValueError("insecure: true verifies nothing, so ca_file would be ignored")
        return self


class VsphereProvider(Provider):
    type = "vsphere"
    Config = VsphereConfig
    config: VsphereConfig

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self._session = Session(self.config)
        self._workers = Workers(f"vsphere-{name}", WORKERS)

    async def _run(self, what: str, action: Callable[[Connection], T], *, retry: bool = True) -> T:
        """Run ``action`` in a worker thread on a live session (``retry``: it is idempotent)."""
        return await self._workers.run(self._session.call, what, action, retry=retry)

    async def power_state(self, machine: str) -> PowerState:
        return await self._run(
            f"power state of {machine}", lambda c: self._power(c, self._find(c, machine))
        )

    async def power_on(self, machine: str) -> None:
        def power_on(connection: Connection) -> None:
            vm = self._find(connection, machine)
            self._set_power(connection, vm, PowerState.ON, vm.PowerOnVM_Task)

        await self._run(f"power on {machine}", power_on)

    async def power_off(self, machine: str, *, hard: bool) -> None:
        def power_off(connection: Connection) -> None:
            vm = self._find(connection, machine)
            if hard:
                self._set_power(connection, vm, PowerState.OFF, vm.PowerOffVM_Task)
            else:
                self._shut_down(connection, vm, machine)

        await self._run(f"power off {machine}" if hard else f"shut down {machine}", power_off)

    async def snapshot(self, machine: str, name: str) -> str:
        """Take a snapshot (without memory); return its id (``snapshot-123``)."""

        def take(connection: Connection) -> str:
            vm = self._find(connection, machine)
            task = vm.CreateSnapshot_Task(
                name=name, description="taken by ha-orchestrator", memory=False, quiesce=False
            )
            return str(wait_for_task(connection, task, self.config.task_timeout)._moId)

        return await self._run(f"snapshot {machine}", take, retry=False)

    async def revert(self, machine: str, snapshot: str) -> None:
        """Revert to a snapshot given by id or by (unique) name."""

        def revert(connection: Connection) -> None:
            target = self._snapshot(connection, self._find(connection, machine), machine, snapshot)
            wait_for_task(connection, target.RevertToSnapshot_Task(), self.config.task_timeout)

        await self._run(f"revert {machine} to {snapshot}", revert)

    async def delete_snapshot(self, machine: str, snapshot: str) -> None:
        """Delete one snapshot (by id or unique name), keeping its children."""

        def delete(connection: Connection) -> None:
            target = self._snapshot(connection, self._find(connection, machine), machine, snapshot)
            task = target.RemoveSnapshot_Task(removeChildren=False)
            wait_for_task(connection, task, self.config.task_timeout)

        await self._run(f"delete snapshot {snapshot} of {machine}", delete, retry=False)

    async def list_machines(self, host: str | None = None) -> list[MachineInfo]:
        """The VMs (not templates) in scope, or those of one host or cluster."""
        where = f" on {host}" if host else ""
        return await self._run(f"list VMs{where}", lambda c: self._list(c, host))

    async def close(self) -> None:
        """Log out (a silent vCenter's session expires by itself) and stop the threads."""
        await self._workers.close(self._session.close)

    # Blocking helpers below: they run in worker threads only.

    def _find(self, connection: Connection, machine: str) -> Any:
        if VM_ID.match(machine):
            vm = connection.managed(vim.VirtualMachine, machine)
            try:
                read(connection, vm, ["name"])
            except vmodl.fault.ManagedObjectNotFound:
                raise ProviderError(f"no VM with id {machine} at {self._where}") from None
            return vm
        if "/" in machine:
            found = connection.content.searchIndex.FindByInventoryPath(machine)
            if found is None:
                raise ProviderError(f"nothing at inventory path {machine!r} at {self._where}")
            if not isinstance(found, vim.VirtualMachine):
                raise ProviderError(f"{machine!r} is a {type_name(found)}, not a VM")
            return found
        vms = read_all(connection, connection.vms, vim.VirtualMachine, ["name"])
        matches = [vm for vm, props in vms if props.get("name") == machine]
        if not matches:
            raise ProviderError(f"no VM named {machine!r} at {self._where}")
        if len(matches) > 1:
            listed = ", ".join(f"{vm._moId} ({_inventory_path(connection, vm)})" for vm in matches)
            raise ProviderError(
                f"{len(matches)} VMs are named {machine!r}: {listed}; "
                "name the machine by inventory path or id"
            )
        return matches[0]

    @property
    def _where(self) -> str:
        scope = f" datacenter {self.config.datacenter}" if self.config.datacenter else ""
        return f"{self.config.host}{scope}"

    def _power(self, connection: Connection, vm: Any) -> PowerState:
        state = read(connection, vm, ["runtime.powerState"]).get("runtime.powerState")
        return _POWER.get(str(state), PowerState.UNKNOWN)

    def _set_power(
        self, connection: Connection, vm: Any, want: PowerState, start: Callable[[], Any]
    ) -> None:
        if self._power(connection, vm) == want:
            return
        try:
            wait_for_task(connection, start(), self.config.task_timeout)
        except ProviderError:
            if self._power(connection, vm) != want:
                raise

    def _shut_down(self, connection: Connection, vm: Any, machine: str) -> None:
        props = read(connection, vm, ["runtime.powerState", "guest.toolsRunningStatus"])
        if props.get("runtime.powerState") == "poweredOff":
            return
        problem = "VMware Tools are not running in the guest"
        if props.get("guest.toolsRunningStatus") == TOOLS_RUNNING:
            try:
                vm.ShutdownGuest()
            except vim.fault.ToolsUnavailable:
                pass
            else:
                if self._off_within(connection, vm, self.config.shutdown_timeout):
                    return
                limit = format_duration(self.config.shutdown_timeout)
                problem = f"the guest did not shut down within {limit}"
        if not self.config.soft_fallback:
            raise ProviderError(f"{problem}; power it off hard, or set soft_fallback")
        log.warning("guest shutdown impossible, powering off hard", machine=machine, reason=problem)
        self._set_power(connection, vm, PowerState.OFF, vm.PowerOffVM_Task)

    def _off_within(self, connection: Connection, vm: Any, timeout: float) -> bool:
        give_up = time.monotonic() + timeout
        while self._power(connection, vm) != PowerState.OFF:
            if time.monotonic() + SHUTDOWN_POLL > give_up:
                return False
            time.sleep(SHUTDOWN_POLL)
        return True

    def _snapshot(self, connection: Connection, vm: Any, machine: str, wanted: str) -> Any:
        info = read(connection, vm, ["snapshot"]).get("snapshot")
        trees = list(_walk(info.rootSnapshotList)) if info is not None else []
        if not trees:
            raise ProviderError(f"{machine} has no snapshots")
        matches = [t for t in trees if t.snapshot._moId == wanted] or [
            t for t in trees if t.name == wanted
        ]
        if not matches:
            known = ", ".join(f"{t.name} ({t.snapshot._moId})" for t in trees)
            raise ProviderError(f"{machine} has no snapshot {wanted!r}; it has {known}")
        if len(matches) > 1:
            ids = ", ".join(t.snapshot._moId for t in matches)
            raise ProviderError(f"{machine} has {len(matches)} snapshots named {wanted!r}: {ids}")
        return matches[0].snapshot

    def _list(self, connection: Connection, host: str | None) -> list[MachineInfo]:
        hosts = _host_names(connection)
        machines: list[MachineInfo] = []
        paths = ["name", "runtime.powerState", "runtime.host", "config.template", "guest.ipAddress"]
        for vm, props in read_all(connection, connection.vms, vim.VirtualMachine, paths):
            if props.get("config.template"):
                continue
            ref = props.get("runtime.host")
            host_name, cluster = hosts.get(ref._moId, (None, None)) if ref else (None, None)
            machines.append(
                MachineInfo(
                    id=str(vm._moId),
                    name=str(props.get("name")),
                    power=_POWER.get(str(props.get("runtime.powerState")), PowerState.UNKNOWN),
                    host=host_name,
                    cluster=cluster,
                    address=props.get("guest.ipAddress"),
                )
            )
        if host is None:
            return machines
        if not any(host in names for names in hosts.values()):
            raise ProviderError(f"no host or cluster named {host!r} at {self._where}")
        return [m for m in machines if host in (m.host, m.cluster)]


def _host_names(connection: Connection) -> dict[str, tuple[str, str | None]]:
    """Every host's id with its name and its cluster's name (None for a standalone host)."""
    view = connection.content.viewManager.CreateContainerView(
        connection.root, [vim.HostSystem], True
    )
    try:
        hosts = read_all(connection, view, vim.HostSystem, ["name", "parent"])
    finally:
        view.DestroyView()
    clusters: dict[str, str] = {}
    for _, props in hosts:
        parent = props.get("parent")
        if isinstance(parent, vim.ClusterComputeResource) and parent._moId not in clusters:
            clusters[parent._moId] = str(read(connection, parent, ["name"]).get("name"))
    names: dict[str, tuple[str, str | None]] = {}
    for host, props in hosts:
        parent = props.get("parent")
        cluster = clusters.get(parent._moId) if parent is not None else None
        names[str(host._moId)] = (str(props.get("name")), cluster)
    return names


def _inventory_path(connection: Connection, entity: Any) -> str:
    """``DC0/vm/folder/name``, the form FindByInventoryPath takes (the root folder left out)."""
    names: list[str] = []
    while entity is not None:
        paths = ["name", "parent"]
        if isinstance(entity, vim.VirtualMachine):
            paths.append("parentVApp")
        props = read(connection, entity, paths)
        parent = props.get("parent") or props.get("parentVApp")
        if parent is None:
            break
        names.append(str(props.get("name")))
        entity = parent
    return "/".join(reversed(names))


def _walk(trees: Any) -> Iterator[Any]:
    for tree in trees or []:
        yield tree
        yield from _walk(tree.childSnapshotList)
