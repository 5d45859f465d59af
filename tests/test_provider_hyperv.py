"""The Hyper-V provider through pywinrm against a local WS-Management endpoint.

No Windows host can run here: tests/servers/winrm_fake.py stands in for one. It answers pywinrm's
real SOAP requests; the Hyper-V host below answers each script it receives with recorded outputs
of real PowerShell (Get-VM as ConvertTo-Json, CLIXML error records). What these tests prove is the
client path (WinRM, quoting, parsing, errors), not the PowerShell on a real host.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ha.errors import ProviderError
from providers.base import PowerState
from providers.hyperv import HypervConfig, HypervProvider
from providers.vsphere_discover import MachineInfo, discover
from tests.servers.ports import free_port
from tests.servers.winrm_fake import Reply, WinrmFake

ARG = re.compile(r"\(Get-Arg '([A-Za-z0-9+/=]*)'\)")
ACTION = re.compile(r"^# ha-orchestrator hyperv: (\w+)\n")
WEB01_ID = "5d9b1c3e-8f2a-4b7c-9e1d-2a3b4c5d6e7f"
CLIXML_START_FAILED = (
    '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    "<S S=\"Error\">Start-VM : 'web01' failed to start._x000D__x000A_</S>"
    '<S S="Error">Not enough memory in the system to start the virtual machine web01._x000D__x000A_'
    "</S>"
    '<S S="Error">At line:45 char:56_x000D__x000A_</S>'
    "<S S=\"Error\">+ elseif ($vm.State -notlike 'Running*') { Start-VM -VM $vm }_x000D__x000A_</S>"
    '<S S="Error">+                                         ~~~~~~~~~~~~~~~~~_x000D__x000A_</S>'
    '<S S="Error">    + CategoryInfo          : NotSpecified: (:) [Start-VM], '
    "VirtualizationException_x000D__x000A_</S></Objs>"
)


def reply(**fields: Any) -> Reply:
    """A recorded PowerShell outcome."""
    return Reply(**fields)


def decoded_args(script: str) -> list[str]:
    return [base64.b64decode(b64).decode() for b64 in ARG.findall(script)]


@dataclass
class HyperVHost:
    """A Hyper-V host's answers, recorded from real PowerShell, keyed by the script's action."""

    vms: dict[str, str] = field(default_factory=lambda: {"web01": "Running", "web02": "Off"})
    fail: Reply | None = None

    def vm_json(self, name: str, note: str | None = None) -> str:
        vm_id = WEB01_ID if name == "web01" else "0c6f0a8e-0000-4000-8000-000000000002"
        address = "10.0.0.5" if self.vms[name] == "Running" else None
        return json.dumps(
            {
                "Name": name,
                "Id": vm_id,
                "State": self.vms[name],
                "Host": "HV01",
                "Address": address,
                "Note": note,
            },
            separators=(",", ":"),
        )

    def __call__(self, script: str) -> Reply:
        if self.fail is not None:
            return self.fail
        match = ACTION.match(script)
        assert match is not None, script[:80]
        action, args = match.group(1), decoded_args(script)
        if action == "list":
            vms = [json.loads(self.vm_json(name)) for name in self.vms]
            return reply(stdout=json.dumps({"VMs": vms}))
        name = args[0]
        if name not in self.vms:
            error = f"no VM named '{name}' on HV01"
            return reply(stderr=f'#< CLIXML\r\n<Objs><S S="Error">{error}</S></Objs>', exit_code=1)
        if action == "on":
            self.vms[name] = "Running"
        elif action in ("off", "shutdown"):
            self.vms[name] = "Off"
        elif action == "snapshot":
            snapshot = {"Name": args[1], "Id": "9a8b7c6d-1111-4222-8333-444455556666"}
            return reply(stdout=json.dumps(snapshot))
        return reply(stdout=self.vm_json(name) + "\r\n")


@pytest.fixture
def password_file(tmp_path: Path, winrm_fake: WinrmFake) -> str:
    path = tmp_path / "password"
    path.write_text(winrm_fake.password + "\n")
    return str(path)


@pytest.fixture
async def hv(winrm_fake: WinrmFake, password_file: str) -> AsyncIterator[HypervProvider]:
    winrm_fake.respond = HyperVHost()
    config = HypervConfig.model_validate(winrm_fake.provider_config(password_file))
    lab = HypervProvider("hv", config)
    yield lab
    await lab.close()


def host(winrm_fake: WinrmFake) -> HyperVHost:
    assert isinstance(winrm_fake.respond, HyperVHost)
    return winrm_fake.respond


async def test_power_states_map_from_get_vm(hv: HypervProvider, winrm_fake: WinrmFake) -> None:
    expected = {
        "Running": PowerState.ON,
        "RunningCritical": PowerState.ON,
        "Off": PowerState.OFF,
        "Saved": PowerState.SUSPENDED,
        "Paused": PowerState.SUSPENDED,
        "FastSaved": PowerState.SUSPENDED,
        "Starting": PowerState.UNKNOWN,
        "Stopping": PowerState.UNKNOWN,
    }
    seen = {}
    for state in expected:
        host(winrm_fake).vms["web01"] = state
        seen[state] = await hv.power_state("web01")
    assert seen == expected
    assert winrm_fake.command_lines[0].startswith(
        "powershell.exe -NoProfile -NonInteractive -EncodedCommand "
    )
    assert winrm_fake.shell_options[0]["WINRS_CODEPAGE"] == "65001"  # UTF-8 output


async def test_power_on_fence_and_shutdown(hv: HypervProvider, winrm_fake: WinrmFake) -> None:
    await hv.power_on("web02")
    assert await hv.power_state("web02") == PowerState.ON
    await hv.power_off("web02", hard=True)
    assert await hv.power_state("web02") == PowerState.OFF
    await hv.power_off("web01", hard=False)
    assert await hv.power_state("web01") == PowerState.OFF
    on, _, fence, _, shutdown, _ = winrm_fake.scripts
    assert "elseif ($vm.State -notlike 'Running*') { Start-VM -VM $vm }" in on
    assert fence.endswith("$vm = Find-HaVM (Get-Arg 'd2ViMDI=')\nStop-HaVMHard $vm\nOut-HaVM $vm\n")
    assert "Stop-VM -VM $Machine -TurnOff -Confirm:$false" in fence
    assert "$job = Stop-VM -VM $vm -Force -AsJob" in shutdown
    assert "Wait-Job -Job $job -Timeout 30)" in shutdown
    assert "if (-not $false) { throw }" in shutdown  # no soft_fallback: the error is reported


async def test_snapshots_by_name_and_id(hv: HypervProvider, winrm_fake: WinrmFake) -> None:
    snapshot = await hv.snapshot("web01", "before-ar")
    assert snapshot == "9a8b7c6d-1111-4222-8333-444455556666"
    await hv.revert("web01", snapshot)
    await hv.delete_snapshot("web01", "before-ar")
    take, revert, delete = winrm_fake.scripts
    assert "Checkpoint-VM -VM $vm -SnapshotName (Get-Arg 'YmVmb3JlLWFy') -Passthru" in take
    assert "Restore-VMSnapshot -VMSnapshot (Find-HaSnapshot $vm (Get-Arg" in revert
    assert "Remove-VMSnapshot -VMSnapshot (Find-HaSnapshot $vm (Get-Arg" in delete
    assert [decoded_args(s) for s in (take, revert, delete)] == [
        ["web01", "before-ar"],
        ["web01", snapshot],
        ["web01", "before-ar"],
    ]


async def test_a_powershell_error_comes_back_as_its_message(
    hv: HypervProvider, winrm_fake: WinrmFake
) -> None:
    host(winrm_fake).fail = reply(stderr=CLIXML_START_FAILED, exit_code=1)
    with pytest.raises(ProviderError) as caught:
        await hv.power_on("web01")
    assert str(caught.value) == (
        "power on web01: Start-VM : 'web01' failed to start. "
        "Not enough memory in the system to start the virtual machine web01."
    )
    host(winrm_fake).fail = reply(exit_code=1)
    with pytest.raises(ProviderError, match=r"^power on web01: PowerShell exited 1 without a"):
        await hv.power_on("web01")
    host(winrm_fake).fail = None
    with pytest.raises(ProviderError, match=r"^power state of db09: no VM named 'db09' on HV01$"):
        await hv.power_state("db09")


HOSTILE = [
    "x'; Remove-VM -Name * -Force ; '",
    "x\u2019; Remove-VM -Name * ; \u2018",  # PowerShell takes typographic quotes as quotes too
    'x"; $(Stop-Computer -Force); "',
    "x`; Stop-Computer`n",
    "line one\nRemove-VM -Name *\r\n# comment",
    "@(Get-Process) ${env:PATH} $null",
    "Ünïcode ✓ 名前",
]


@pytest.mark.parametrize("name", HOSTILE)
async def test_a_hostile_vm_name_reaches_powershell_as_data(
    name: str, hv: HypervProvider, winrm_fake: WinrmFake
) -> None:
    host(winrm_fake).vms[name] = "Off"
    await hv.power_on("web02")
    await hv.power_on(name)
    assert host(winrm_fake).vms[name] == "Running"
    benign, hostile = winrm_fake.scripts
    assert decoded_args(hostile) == [name]
    assert ARG.sub("(Get-Arg NAME)", hostile) == ARG.sub("(Get-Arg NAME)", benign)
    for fragment in (
        name,
        "Remove-VM -Name",
        "Stop-Computer",
        "Get-Process",
        "${env:PATH}",
        "line one",
    ):
        assert fragment not in hostile


async def test_a_command_that_never_finishes_hits_the_deadline(
    winrm_fake: WinrmFake, password_file: str
) -> None:
    winrm_fake.respond = lambda script: reply(hang=True)
    config = winrm_fake.provider_config(password_file, timeout="300ms")
    lab = HypervProvider("hv", HypervConfig.model_validate(config))
    with pytest.raises(ProviderError) as caught:
        await lab.power_state("web01")
    assert str(caught.value) == (
        "power state of web01: PowerShell did not finish within 300ms"
        " (it may still be running on the host)"
    )


async def test_a_wrong_password_is_refused_and_never_shown(
    winrm_fake: WinrmFake, tmp_path: Path
) -> None:
    (tmp_path / "wrong").write_text("not-the-password-4711")
    config = winrm_fake.provider_config(str(tmp_path / "wrong"))
    lab = HypervProvider("hv", HypervConfig.model_validate(config))
    with pytest.raises(ProviderError) as caught:
        await lab.power_state("web01")
    endpoint = f"http://127.0.0.1:{winrm_fake.port}/wsman"
    assert str(caught.value) == f"power state of web01: {endpoint} refused the login of user 'ha'"
    assert "not-the-password-4711" not in repr(lab.config)


async def test_an_unreachable_host_is_reported(winrm_fake: WinrmFake, password_file: str) -> None:
    port = free_port()
    config = winrm_fake.provider_config(password_file, port=port)
    lab = HypervProvider("hv", HypervConfig.model_validate(config))
    with pytest.raises(ProviderError) as caught:
        await lab.power_off("web01", hard=True)
    assert str(caught.value) == f"power off web01: cannot reach http://127.0.0.1:{port}/wsman"


async def test_list_machines_for_discovery(hv: HypervProvider) -> None:
    assert await hv.list_machines() == [
        MachineInfo(WEB01_ID, "web01", PowerState.ON, host="HV01", address="10.0.0.5"),
        MachineInfo("0c6f0a8e-0000-4000-8000-000000000002", "web02", PowerState.OFF, host="HV01"),
    ]
    assert len(await hv.list_machines("hv01")) == 2
    with pytest.raises(ProviderError, match="no VMs of host 'HV02'"):
        await hv.list_machines("HV02")
    drafts = await discover(hv, protected={"web01"})
    assert [s["name"] for s in drafts["scenarios"]] == ["web02"]
    assert drafts["groups"] == [{"name": "HV01", "scenarios": ["web02"]}]


def test_the_longest_command_line_fits_cmd_exe(winrm_fake: WinrmFake, password_file: str) -> None:
    from providers.hyperv_powershell import SCRIPTS, arg, script

    values = {"vm": arg("v" * 100), "snapshot": arg("s" * 100), "seconds": "30"}
    values |= {"limit": arg("30s"), "fallback": "$true"}
    longest = max(
        len(base64.b64encode(script(action, **values).encode("utf-16-le"))) for action in SCRIPTS
    )
    assert len("powershell.exe -NoProfile -NonInteractive -EncodedCommand ") + longest < 8191


def test_the_config_refuses_basic_over_http_and_a_missing_password(
    winrm_fake: WinrmFake, password_file: str
) -> None:
    base: dict[str, Any] = winrm_fake.provider_config(password_file)
    with pytest.raises(ValidationError, match="basic over http sends the password readable"):
        HypervConfig.model_validate({**base, "allow_basic_over_http": False})
    with pytest.raises(ValidationError, match="transport ntlm needs password_env or password_file"):
        HypervConfig.model_validate({**base, "transport": "ntlm", "password_file": None})
    kerberos = HypervConfig.model_validate({**base, "transport": "kerberos", "password_file": None})
    assert kerberos.endpoint == f"http://127.0.0.1:{winrm_fake.port}/wsman"
    default = HypervConfig.model_validate(
        {"type": "hyperv", "host": "hv01", "user": "ha", "password_file": password_file}
    )
    assert (default.endpoint, default.transport) == ("https://hv01:5986/wsman", "ntlm")
