"""The vSphere provider against the vCenter simulator (govmomi's vcsim, a real vSphere API server).

What the simulator cannot show: a guest that ignores a shutdown (vcsim's ShutdownGuest powers the
VM off at once, and does not itself refuse when Tools are not running), and a task that outlives
its deadline (vcsim finishes every task before answering the call that started it).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from pydantic import ValidationError
from pyVim import task as pyvim_task
from pyVmomi import vim as pyvmomi_vim

from ha.config import ScenarioConfig
from ha.errors import NotSupported, ProviderError
from providers.base import PowerState
from providers.vsphere import VsphereConfig, VsphereProvider
from providers.vsphere_discover import MachineInfo, discover, discovered_config
from providers.vsphere_session import IDLE_CHECK, Session, wait_for_task
from tests.servers.ports import free_port

if TYPE_CHECKING:
    from tests.servers.vcsim import Vcsim

PROD = "DC0_H0_VM0"
REPLICA = "DC0_C0_RP0_VM0"
SPARE = "DC0_H0_VM1"
TOOLS_VM = "DC0_C0_RP0_VM1"
# pyVmomi and pyVim ship py.typed but leave much untyped: use them as Any.
tasks: Any = pyvim_task
vim: Any = pyvmomi_vim


def provider(vcsim: Vcsim, **overrides: Any) -> VsphereProvider:
    return VsphereProvider("dc1", VsphereConfig.model_validate(vcsim.provider_config(**overrides)))


@pytest.fixture
async def dc1(vcsim: Vcsim) -> AsyncIterator[VsphereProvider]:
    lab = provider(vcsim)
    try:
        yield lab
    finally:
        await lab.close()


@pytest.fixture
def admin(vcsim: Vcsim) -> Iterator[Any]:
    """The service content of a separate session, to arrange VMs and read them back."""
    with vcsim.client() as content:
        yield content


def vm(content: Any, name: str) -> Any:
    found = content.searchIndex.FindByInventoryPath(f"DC0/vm/{name}")
    assert found is not None, name
    return found


def power(content: Any, name: str) -> str:
    return str(vm(content, name).runtime.powerState)


def set_power(content: Any, name: str, state: str) -> None:
    machine = vm(content, name)
    if machine.runtime.powerState != state:
        start = machine.PowerOnVM_Task if state == "poweredOn" else machine.PowerOffVM_Task
        tasks.WaitForTask(start())


def clone(content: Any, name: str, folder: Any, new_name: str) -> Any:
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec())
    task = vm(content, name).CloneVM_Task(folder=folder, name=new_name, spec=spec)
    tasks.WaitForTask(task)
    return task.info.result


def guest_shutdowns(content: Any, name: str) -> int:
    by_vm = vim.event.EventFilterSpec.ByEntity(entity=vm(content, name), recursion="self")
    spec = vim.event.EventFilterSpec(entity=by_vm, eventTypeId=["VmGuestShutdownEvent"])
    return len(content.eventManager.QueryEvents(spec))


async def test_finds_a_vm_by_name_inventory_path_and_id(dc1: VsphereProvider, admin: Any) -> None:
    set_power(admin, PROD, "poweredOn")
    moid = vm(admin, PROD)._moId
    for machine in (PROD, f"DC0/vm/{PROD}", moid):
        assert await dc1.power_state(machine) == PowerState.ON


async def test_what_is_not_found_is_named(dc1: VsphereProvider, vcsim: Vcsim) -> None:
    at = vcsim.host
    cases = {
        "nope": f"power state of nope: no VM named 'nope' at {at}",
        "DC0/vm/nope": "power state of DC0/vm/nope: nothing at inventory path 'DC0/vm/nope'",
        "vm-99999": f"power state of vm-99999: no VM with id vm-99999 at {at}",
        "DC0/host/DC0_H0": "'DC0/host/DC0_H0' is a ComputeResource, not a VM",
    }
    for machine, message in cases.items():
        with pytest.raises(ProviderError, match=re.escape(message)):
            await dc1.power_state(machine)


async def test_a_name_matching_two_vms_is_an_error_naming_both(
    dc1: VsphereProvider, admin: Any
) -> None:
    folder_name = f"copies-{secrets.token_hex(3)}"
    folder = vm(admin, SPARE).parent.CreateFolder(folder_name)
    copy = clone(admin, SPARE, folder, SPARE)
    try:
        original = vm(admin, SPARE)._moId
        with pytest.raises(ProviderError) as caught:
            await dc1.power_state(SPARE)
        listed = sorted(
            [f"{original} (DC0/vm/{SPARE})", f"{copy._moId} (DC0/vm/{folder_name}/{SPARE})"]
        )
        message = str(caught.value)
        assert message.startswith(f"power state of {SPARE}: 2 VMs are named '{SPARE}': ")
        assert message.endswith("; name the machine by inventory path or id")
        assert sorted(re.findall(r"vm-\d+ \([^)]*\)", message)) == listed
        assert await dc1.power_state(f"DC0/vm/{folder_name}/{SPARE}") == PowerState.OFF
        assert await dc1.power_state(original) == PowerState.ON
    finally:
        tasks.WaitForTask(copy.Destroy_Task())
        tasks.WaitForTask(folder.Destroy_Task())


async def test_fencing_powers_off_hard_and_power_on_brings_it_back(
    dc1: VsphereProvider, admin: Any
) -> None:
    set_power(admin, PROD, "poweredOn")
    for _ in range(2):  # idempotent
        await dc1.power_off(PROD, hard=True)
        assert await dc1.power_state(PROD) == PowerState.OFF
    assert power(admin, PROD) == "poweredOff"
    for _ in range(2):
        await dc1.power_on(PROD)
        assert await dc1.power_state(PROD) == PowerState.ON
    assert power(admin, PROD) == "poweredOn"


async def test_a_guest_shutdown_without_vmware_tools_is_refused(
    dc1: VsphereProvider, admin: Any
) -> None:
    set_power(admin, PROD, "poweredOn")
    with pytest.raises(ProviderError) as caught:
        await dc1.power_off(PROD, hard=False)
    assert str(caught.value) == (
        f"shut down {PROD}: VMware Tools are not running in the guest; "
        "power it off hard, or set soft_fallback"
    )
    assert power(admin, PROD) == "poweredOn"


async def test_a_guest_shutdown_falls_back_to_hard_when_allowed(vcsim: Vcsim, admin: Any) -> None:
    set_power(admin, PROD, "poweredOn")
    before = guest_shutdowns(admin, PROD)
    lab = provider(vcsim, soft_fallback=True)
    try:
        await lab.power_off(PROD, hard=False)
        assert await lab.power_state(PROD) == PowerState.OFF
    finally:
        await lab.close()
    assert (power(admin, PROD), guest_shutdowns(admin, PROD)) == ("poweredOff", before)


async def test_a_guest_shutdown_goes_through_vmware_tools(dc1: VsphereProvider, admin: Any) -> None:
    set_power(admin, TOOLS_VM, "poweredOn")
    tools = vim.option.OptionValue(key="SET.guest.toolsRunningStatus", value="guestToolsRunning")
    tasks.WaitForTask(vm(admin, TOOLS_VM).ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[tools])))
    before = guest_shutdowns(admin, TOOLS_VM)
    await dc1.power_off(TOOLS_VM, hard=False)
    assert await dc1.power_state(TOOLS_VM) == PowerState.OFF
    assert guest_shutdowns(admin, TOOLS_VM) == before + 1


async def test_snapshots_are_taken_reverted_to_and_deleted(
    dc1: VsphereProvider, admin: Any
) -> None:
    first = await dc1.snapshot(SPARE, "before-ar")
    second = await dc1.snapshot(SPARE, "during-ar")
    assert [re.sub(r"\d+", "N", first), re.sub(r"\d+", "N", second)] == ["snapshot-N"] * 2

    def current() -> str:
        return str(vm(admin, SPARE).snapshot.currentSnapshot._moId)

    assert current() == second
    await dc1.revert(SPARE, first)  # by id, not the current one: RevertToSnapshot_Task
    assert current() == first
    await dc1.revert(SPARE, "during-ar")  # by name
    assert current() == second
    with pytest.raises(ProviderError, match=f"{SPARE} has no snapshot 'nope'; it has before-ar"):
        await dc1.revert(SPARE, "nope")

    await dc1.delete_snapshot(SPARE, second)
    await dc1.delete_snapshot(SPARE, "before-ar")
    with pytest.raises(ProviderError, match=f"revert {SPARE} to {first}: {SPARE} has no snapshots"):
        await dc1.revert(SPARE, first)  # the unset property, read without dropping the connection
    assert await dc1.power_state(SPARE) == PowerState.ON


async def test_two_snapshots_with_one_name_are_not_guessed(dc1: VsphereProvider) -> None:
    ids = [await dc1.snapshot(SPARE, "nightly") for _ in range(2)]
    try:
        with pytest.raises(
            ProviderError, match=f"has 2 snapshots named 'nightly': {', '.join(ids)}"
        ):
            await dc1.revert(SPARE, "nightly")
    finally:
        for snapshot in ids:
            await dc1.delete_snapshot(SPARE, snapshot)


def test_a_failed_task_reports_its_own_message(vcsim: Vcsim) -> None:
    """vcsim's task messages are Go type names; vCenter's are sentences. Either is passed on,
    and a method the server does not have is NotSupported (never retried by runbooks)."""
    with vcsim.client() as admin:
        set_power(admin, PROD, "poweredOn")
        moid = vm(admin, PROD)._moId
    session = Session(VsphereConfig.model_validate(vcsim.provider_config()))

    def power_on_again(connection: Any) -> Any:
        machine = connection.managed(vim.VirtualMachine, moid)
        return wait_for_task(connection, machine.PowerOnVM_Task(), timeout=5)

    def migrate(connection: Any) -> Any:
        machine = connection.managed(vim.VirtualMachine, moid)
        return machine.MigrateVM_Task(priority="defaultPriority")

    try:
        with pytest.raises(ProviderError) as failed:
            session.call("power on web01", power_on_again, retry=False)
        with pytest.raises(NotSupported) as unknown:  # vcsim has no MigrateVM
            session.call("migrate web01", migrate, retry=False)
    finally:
        session.close()
    assert str(failed.value) == "power on web01: InvalidPowerState: *types.InvalidPowerState"
    assert str(unknown.value) == (
        f"migrate web01: MethodNotFound: VirtualMachine:{moid} does not implement: MigrateVM_Task"
    )


async def test_a_refused_call_reports_the_fault_message(dc1: VsphereProvider, admin: Any) -> None:
    name = f"template-{secrets.token_hex(3)}"
    template = clone(admin, SPARE, vm(admin, SPARE).parent, name)
    template.MarkAsTemplate()
    try:
        with pytest.raises(ProviderError) as caught:
            await dc1.power_on(name)
        assert str(caught.value) == f"power on {name}: InvalidState: cannot powerOn a template"
    finally:
        tasks.WaitForTask(template.Destroy_Task())


async def test_the_provider_logs_in_again_after_vcsim_restarts(
    dc1: VsphereProvider, vcsim: Vcsim
) -> None:
    assert await dc1.power_state(PROD) == PowerState.ON  # the restarted inventory has it on
    vcsim.restart()  # the session is unknown to the new server, the keep-alive socket is dead
    with structlog.testing.capture_logs() as logs:
        await dc1.power_off(PROD, hard=True)  # a task: refused without a session
    assert [e["event"] for e in logs] == ["vsphere connection lost, reconnecting", "vsphere login"]
    with vcsim.client() as admin:
        assert power(admin, PROD) == "poweredOff"
        set_power(admin, PROD, "poweredOn")


async def test_the_provider_logs_in_again_when_its_session_is_ended(
    dc1: VsphereProvider, admin: Any
) -> None:
    set_power(admin, PROD, "poweredOn")
    assert await dc1.power_state(PROD) == PowerState.ON
    sessions = admin.sessionManager
    mine = sessions.currentSession.key
    sessions.TerminateSession([s.key for s in sessions.sessionList if s.key != mine])
    with structlog.testing.capture_logs() as logs:
        await dc1.power_off(PROD, hard=True)
    assert [e["event"] for e in logs] == [
        "vsphere session expired, logging in again",
        "vsphere login",
    ]
    assert power(admin, PROD) == "poweredOff"


async def test_an_ended_session_is_not_rerun_for_a_snapshot(
    dc1: VsphereProvider, admin: Any, vcsim: Vcsim
) -> None:
    """Taking a snapshot is not idempotent: it fails once, and the next call logs in again."""
    assert await dc1.power_state(SPARE) in (PowerState.ON, PowerState.OFF)
    sessions = admin.sessionManager
    mine = sessions.currentSession.key
    sessions.TerminateSession([s.key for s in sessions.sessionList if s.key != mine])
    where = f"{vcsim.host}:{vcsim.port}"
    with pytest.raises(ProviderError) as caught:
        await dc1.snapshot(SPARE, "once")
    assert str(caught.value) == (
        f"snapshot {SPARE}: {where} ended the session; the next call logs in again"
    )
    snapshot = await dc1.snapshot(SPARE, "once")
    await dc1.delete_snapshot(SPARE, snapshot)

    # A session unused for a while is checked before use: an ended one is renewed first.
    sessions.TerminateSession([s.key for s in sessions.sessionList if s.key != mine])
    session = dc1._session._connection
    assert session is not None
    session.used -= IDLE_CHECK + 1
    with structlog.testing.capture_logs() as logs:
        snapshot = await dc1.snapshot(SPARE, "after-idle")
    assert [e["event"] for e in logs] == ["vsphere session expired while idle", "vsphere login"]
    await dc1.delete_snapshot(SPARE, snapshot)


async def test_an_unreachable_vcenter_is_reported(vcsim: Vcsim) -> None:
    port = free_port()
    lab = provider(vcsim, port=port)
    with pytest.raises(ProviderError) as caught:
        await lab.power_off(PROD, hard=True)
    assert str(caught.value) == (
        f"power off {PROD}: cannot reach {vcsim.host}:{port}: Connection refused"
    )


async def test_a_datacenter_limits_where_names_are_looked_up(vcsim: Vcsim) -> None:
    lab = provider(vcsim, datacenter="DC0")
    try:
        assert await lab.power_state(PROD) in (PowerState.ON, PowerState.OFF)
    finally:
        await lab.close()
    message = f"power state of {PROD}: no datacenter named 'DC9' at {vcsim.host}:{vcsim.port}"
    with pytest.raises(ProviderError, match=re.escape(message)):
        await provider(vcsim, datacenter="DC9").power_state(PROD)


async def test_tls_is_verified_unless_insecure(vcsim: Vcsim) -> None:
    where = f"{vcsim.host}:{vcsim.port}"
    unverified = provider(vcsim, ca_file=None)
    with pytest.raises(ProviderError, match=re.escape(f"TLS certificate of {where} not trusted")):
        await unverified.power_state(PROD)
    lab = provider(vcsim, ca_file=None, insecure=True)
    try:
        assert await lab.power_state(PROD) in (PowerState.ON, PowerState.OFF)
    finally:
        await lab.close()


async def test_a_wrong_password_is_refused_and_never_shown(vcsim: Vcsim, tmp_path: Path) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    (tmp_path / "password").write_text(wrong)
    lab = provider(vcsim, password_file=str(tmp_path / "password"))
    with pytest.raises(ProviderError) as caught:
        await lab.power_state(PROD)
    where = f"{vcsim.host}:{vcsim.port}"
    assert str(caught.value) == f"power state of {PROD}: {where} refused the login of user 'ha'"
    assert wrong not in repr(lab.config)
    assert wrong not in repr(caught.value.__cause__)


def test_the_config_wants_one_password_source_and_no_ca_when_insecure(vcsim: Vcsim) -> None:
    with pytest.raises(ValidationError, match="give exactly one of password_env or password_file"):
        VsphereConfig.model_validate(vcsim.provider_config(password_file=None))
    with pytest.raises(ValidationError, match="insecure: true verifies nothing"):
        VsphereConfig.model_validate(vcsim.provider_config(insecure=True))
    assert VsphereConfig.model_validate(vcsim.provider_config()).insecure is False


async def test_failover_fences_production_and_powers_the_replica_on(
    dc1: VsphereProvider, admin: Any
) -> None:
    set_power(admin, PROD, "poweredOn")
    set_power(admin, REPLICA, "poweredOff")
    await dc1.power_off(PROD, hard=True)  # fence
    assert await dc1.power_state(PROD) == PowerState.OFF  # verified before activating
    await dc1.power_on(REPLICA)  # virtual standby comes up
    assert await dc1.power_state(REPLICA) == PowerState.ON
    assert (power(admin, PROD), power(admin, REPLICA)) == ("poweredOff", "poweredOn")


async def test_discovery_lists_a_host_or_a_cluster_and_drafts_scenarios(
    dc1: VsphereProvider, admin: Any
) -> None:
    set_power(admin, "DC0_H0_VM0", "poweredOn")
    set_power(admin, "DC0_H0_VM1", "poweredOff")
    everything = await dc1.list_machines()
    assert sorted((m.name, m.host, m.cluster) for m in everything) == [
        ("DC0_C0_RP0_VM0", "DC0_C0_H1", "DC0_C0"),
        ("DC0_C0_RP0_VM1", "DC0_C0_H0", "DC0_C0"),
        ("DC0_H0_VM0", "DC0_H0", None),
        ("DC0_H0_VM1", "DC0_H0", None),
    ]
    cluster = await dc1.list_machines("DC0_C0")
    assert sorted(m.name for m in cluster) == ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"]
    with pytest.raises(ProviderError, match="no host or cluster named 'DC9'"):
        await dc1.list_machines("DC9")

    host = await dc1.list_machines("DC0_H0")
    assert sorted((m.name, m.power) for m in host) == [
        ("DC0_H0_VM0", PowerState.ON),
        ("DC0_H0_VM1", PowerState.OFF),
    ]
    drafts = await discover(dc1, "DC0_H0", protected={"DC0_H0_VM0"})
    assert drafts == {
        "scenarios": [
            {
                "name": "DC0_H0_VM1",
                "production": {
                    "address": None,
                    "machine": {"provider": "dc1", "name": "DC0_H0_VM1"},
                },
                "replica": {"address": None},
                "checks": [{"kind": "ping"}],
                "failover": {"mode": "manual"},
                "fence": True,
            }
        ],
        "groups": [{"name": "DC0_H0", "scenarios": ["DC0_H0_VM1"]}],
    }
    draft = drafts["scenarios"][0]
    with pytest.raises(ValidationError, match=r"replica\.address"):
        ScenarioConfig.model_validate(draft)
    filled = {
        **draft,
        "production": {**draft["production"], "address": "10.0.0.5"},
        "replica": {"address": "10.0.1.5"},
    }
    assert ScenarioConfig.model_validate(filled).fence == "required"


def test_discovery_refers_to_same_named_vms_by_id_and_keeps_names_valid() -> None:
    machines = [
        MachineInfo("vm-1", "web 01", PowerState.ON, host="esx1"),
        MachineInfo("vm-2", "web 01", PowerState.ON, host="esx2"),
        MachineInfo("vm-3", "_db", PowerState.OFF),
    ]
    drafts = discovered_config(machines, "dc1")
    assert [(s["name"], s["production"]["machine"]["name"]) for s in drafts["scenarios"]] == [
        ("web-01", "vm-1"),
        ("web-01-vm-2", "vm-2"),
        ("db", "_db"),
    ]
    assert drafts["groups"] == [
        {"name": "esx1", "scenarios": ["web-01"]},
        {"name": "esx2", "scenarios": ["web-01-vm-2"]},
        {"name": "unplaced", "scenarios": ["db"]},
    ]
