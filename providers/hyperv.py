"""The Hyper-V provider: VMs on a Hyper-V host, through PowerShell over WinRM (pywinrm).

Each action is one PowerShell script in a fresh WinRM shell: find the VM, act (Start-VM; Stop-VM
-TurnOff to fence, a graceful Stop-VM otherwise; Checkpoint-VM, Restore-VMSnapshot,
Remove-VMSnapshot) and print the outcome as one line of JSON (ConvertTo-Json), parsed into the
same types as the other providers. The first line of each script names the action, for the host's
script block log.

Names never become code: every VM and snapshot name travels base64-encoded (UTF-8) and is decoded
inside the script into a string, so quotes, ``$()``, backticks or newlines in a name stay data.
VMs and snapshots match by exact name or id, never as wildcards; a name that several VMs share is
an error listing their ids. PowerShell errors (CLIXML on stderr, a non-zero exit) come back as
their message, without PowerShell's position lines.

Transport: NTLM, Kerberos or CredSSP (pywinrm encrypts the messages over plain HTTP), HTTPS by
default. Basic sends the password readable on plain HTTP, so it needs HTTPS unless
``allow_basic_over_http`` is set (test endpoints only). Environment proxies are not used.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Literal, Self

import certifi
import structlog
from pydantic import Field, model_validator

from checks.base import CheckFailed
from checks.database import EnvVarName, SecretFilePath, read_secret
from ha.duration import Duration, format_duration
from ha.errors import ProviderError
from ha.lazy import LazyModule
from ha.workers import Workers
from providers.base import PowerState, Provider, ProviderConfig
from providers.hyperv_powershell import arg, powershell_error, script, winrm_error
from providers.vsphere_discover import MachineInfo

winrm_protocol: Any = LazyModule("winrm.protocol")
winrm_exceptions: Any = LazyModule("winrm.exceptions")

log = structlog.get_logger("providers.hyperv")

WORKERS = 4  # threads per provider: concurrent PowerShell runs
READ_TIMEOUT = 30  # seconds: one WS-Management call, above the operation timeout
OPERATION_TIMEOUT = 20  # seconds the host may hold one Receive before answering "no output yet"
UTF8_CODEPAGE = 65001  # the shell's code page: PowerShell's output arrives as UTF-8
_STATES = {
    "Running": PowerState.ON,
    "Off": PowerState.OFF,
    "Saved": PowerState.SUSPENDED,
    "FastSaved": PowerState.SUSPENDED,
    "Paused": PowerState.SUSPENDED,
    "Hibernated": PowerState.SUSPENDED,
}


class HypervConfig(ProviderConfig):
    type: Literal["hyperv"]
    host: str = Field(min_length=1, pattern=r"^[^\s/]+$", description="the Hyper-V host")
    port: int | None = Field(None, ge=1, le=65535, description="default 5986 (https) or 5985")
    transport: Literal["ntlm", "kerberos", "credssp", "basic"] = "ntlm"
    https: bool = Field(True, description="WinRM over HTTPS")
    allow_basic_over_http: bool = Field(
        False, description="let basic send the password unencrypted (test endpoints only)"
    )
    user: str = Field(min_length=1, description="DOMAIN\\user or user@domain")
    password_env: EnvVarName | None = Field(None, description="variable holding the password")
    password_file: SecretFilePath | None = Field(None, description="file holding the password")
    cert_validation: bool = Field(True, description="verify the host's HTTPS certificate")
    ca_file: SecretFilePath | None = Field(None, description="PEM CA bundle; default: system CAs")
    timeout: Duration = Field(50.0, gt=0, description="deadline of one PowerShell run")
    shutdown_timeout: Duration = Field(30.0, gt=0, description="how long a guest shutdown may take")
    soft_fallback: bool = Field(
        False, description="turn the VM off when a graceful shutdown fails or is too slow"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if (
            self.transport != "kerberos"
            and self.password_env is None
            and self.password_file is None
        ):
            raise ValueError(f"transport {self.transport} needs password_env or password_file")
        if self.transport == "basic" and not self.https and not self.allow_basic_over_http:
            raise ValueError(
                "basic over http sends the password readable: use https, another transport,"
                " or allow_basic_over_http: true on a test endpoint"
            )
        if not self.cert_validation and self.ca_file is not None:
            raise ValueError("cert_validation: false verifies nothing, so ca_file would be ignored")
        return self

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = self.port or (5986 if self.https else 5985)
        return f"{'https' if self.https else 'http'}://{host}:{port}/wsman"


class HypervProvider(Provider):
    type = "hyperv"
    Config = HypervConfig
    config: HypervConfig

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self._workers = Workers(f"hyperv-{name}", WORKERS)

    async def close(self) -> None:
        await self._workers.close()

    async def power_state(self, machine: str) -> PowerState:
        return _power(await self._run(f"power state of {machine}", "state", vm=arg(machine)))

    async def power_on(self, machine: str) -> None:
        await self._run(f"power on {machine}", "on", vm=arg(machine))

    async def power_off(self, machine: str, *, hard: bool) -> None:
        if hard:
            await self._run(f"power off {machine}", "off", vm=arg(machine))
            return
        found = await self._run(
            f"shut down {machine}",
            "shutdown",
            vm=arg(machine),
            seconds=str(max(1, round(self.config.shutdown_timeout))),
            limit=arg(format_duration(self.config.shutdown_timeout)),
            fallback="$true" if self.config.soft_fallback else "$false",
        )
        if found.get("Note"):
            log.warning("guest shutdown failed, turned off", machine=machine, reason=found["Note"])

    async def snapshot(self, machine: str, name: str) -> str:
        """Take a checkpoint named ``name``; return its id."""
        found = await self._run(
            f"snapshot {machine}", "snapshot", vm=arg(machine), snapshot=arg(name)
        )
        return str(found["Id"])

    async def revert(self, machine: str, snapshot: str) -> None:
        """Apply the checkpoint given by id or by (unique) name."""
        what = f"revert {machine} to {snapshot}"
        await self._run(what, "revert", vm=arg(machine), snapshot=arg(snapshot))

    async def delete_snapshot(self, machine: str, snapshot: str) -> None:
        """Delete one checkpoint (by id or unique name), keeping its children."""
        what = f"delete snapshot {snapshot} of {machine}"
        await self._run(what, "delete", vm=arg(machine), snapshot=arg(snapshot))

    async def list_machines(self, host: str | None = None) -> list[MachineInfo]:
        """Every VM of the host; ``host``, when given, names it (or a host its VMs report)."""
        found = await self._run(f"list VMs of {self.config.host}", "list")
        machines = [_machine(item) for item in found.get("VMs") or []]
        if host is None or host.lower() == self.config.host.lower():
            return machines
        on_host = [m for m in machines if (m.host or "").lower() == host.lower()]
        if not on_host:
            raise ProviderError(f"list VMs: no VMs of host {host!r} at {self.config.host}")
        return on_host

    async def _run(self, what: str, action: str, **values: str) -> dict[str, Any]:
        return await self._workers.run(self._powershell, what, script(action, **values))

    def _powershell(self, what: str, script: str) -> dict[str, Any]:
        """Run ``script`` on the host (blocking: in a worker thread); its JSON answer."""
        config = self.config
        try:
            secret = read_secret(config.password_env, config.password_file)
        except CheckFailed as exc:
            raise ProviderError(f"{what}: password for {config.host}: {exc}") from None
        password = secret.get_secret_value() if secret is not None else None
        encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
        try:
            protocol = winrm_protocol.Protocol(
                config.endpoint,
                transport=config.transport,
                username=config.user,
                password=password,
                server_cert_validation="validate" if config.cert_validation else "ignore",
                ca_trust_path=str(config.ca_file) if config.ca_file else certifi.where(),
                read_timeout_sec=READ_TIMEOUT,
                operation_timeout_sec=OPERATION_TIMEOUT,
                proxy=None,
            )
            stdout, stderr, code = self._execute(protocol, encoded)
        except ProviderError as exc:
            raise ProviderError(f"{what}: {exc}") from exc
        except Exception as exc:  # pywinrm, requests and XML errors: mapped in one place
            error = winrm_error(exc, config.endpoint, config.user)
            raise ProviderError(f"{what}: {_scrub(error, password)}") from exc
        if code != 0:
            raise ProviderError(
                f"{what}: {_scrub(powershell_error(stderr, stdout, code), password)}"
            )
        try:
            answer = json.loads(stdout.decode("utf-8", "replace"))
        except ValueError:
            raise ProviderError(f"{what}: not JSON from PowerShell: {stdout[:120]!r}") from None
        if not isinstance(answer, dict):
            raise ProviderError(f"{what}: unexpected answer from PowerShell: {stdout[:120]!r}")
        return answer

    def _execute(self, protocol: Any, encoded: str) -> tuple[bytes, bytes, int]:
        shell = protocol.open_shell(codepage=UTF8_CODEPAGE)
        try:
            argv = ["-NoProfile", "-NonInteractive", "-EncodedCommand", encoded]
            command = protocol.run_command(shell, "powershell.exe", argv)
            try:
                return self._receive(protocol, shell, command)
            finally:
                protocol.cleanup_command(shell, command)
        finally:
            protocol.close_shell(shell)

    def _receive(self, protocol: Any, shell: str, command: str) -> tuple[bytes, bytes, int]:
        give_up = time.monotonic() + self.config.timeout
        stdout, stderr = bytearray(), bytearray()
        while time.monotonic() < give_up:
            try:
                out, err, code, done = protocol.get_command_output_raw(shell, command)
            except winrm_exceptions.WinRMOperationTimeoutError:
                continue  # no output yet: ask again
            stdout += out
            stderr += err
            if done:
                return bytes(stdout), bytes(stderr), code
        raise ProviderError(
            f"PowerShell did not finish within {format_duration(self.config.timeout)}"
            " (it may still be running on the host)"
        )


def _power(found: dict[str, Any]) -> PowerState:
    state = str(found.get("State", ""))
    return _STATES.get(state.removesuffix("Critical"), PowerState.UNKNOWN)


def _machine(item: dict[str, Any]) -> MachineInfo:
    return MachineInfo(
        id=str(item["Id"]),
        name=str(item["Name"]),
        power=_power(item),
        host=item.get("Host"),
        address=item.get("Address"),
    )


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text
