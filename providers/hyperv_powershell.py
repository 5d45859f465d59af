"""The PowerShell side of the Hyper-V provider: the scripts, how values enter them, and how their
errors (and WinRM's) read.

A script is the prelude plus one action's body. Values replace ``@NAME@`` tokens and are always
rendered by :func:`arg`: base64 of their UTF-8 bytes inside a single-quoted literal, decoded on
the host. The base64 alphabet has no quote, ``$``, backtick or newline, so no value can end the
literal or be evaluated: a VM name is data whatever it contains.

Every script prints exactly one line of JSON on success (the shell runs in code page 65001, so
non-ASCII names arrive as UTF-8). A terminating error makes PowerShell
exit 1 with the error record as CLIXML on stderr; :func:`powershell_error` keeps its message.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from typing import Any

from ha.lazy import LazyModule

requests: Any = LazyModule("requests")
winrm_exceptions: Any = LazyModule("winrm.exceptions")

MESSAGE_LIMIT = 300
_TOKEN = re.compile(r"@[A-Z]+@")
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_POSITION = ("At line:", "At char:", "+ ")  # PowerShell's pointer to the failing line

PRELUDE = r"""$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
function Get-Arg([string]$Text) {
  [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($Text))
}
function Find-HaVM([string]$Name) {
  $found = @(Get-VM | Where-Object { $_.Name -eq $Name -or [string]$_.Id -eq $Name })
  if ($found.Count -eq 0) { throw "no VM named '$Name' on $env:COMPUTERNAME" }
  if ($found.Count -gt 1) {
    $ids = ($found | ForEach-Object { [string]$_.Id }) -join ', '
    throw "$($found.Count) VMs are named '$Name': $ids; name the machine by id"
  }
  $found[0]
}
function Find-HaSnapshot($Machine, [string]$Name) {
  $found = @(Get-VMSnapshot -VM $Machine |
    Where-Object { $_.Name -eq $Name -or [string]$_.Id -eq $Name })
  if ($found.Count -eq 0) { throw "$($Machine.Name) has no snapshot '$Name'" }
  if ($found.Count -gt 1) {
    $ids = ($found | ForEach-Object { [string]$_.Id }) -join ', '
    throw "$($Machine.Name) has $($found.Count) snapshots named '$Name': $ids"
  }
  $found[0]
}
function Stop-HaVMHard($Machine) {
  if ($Machine.State -like 'Saved*') { Remove-VMSavedState -VM $Machine }
  elseif ($Machine.State -notlike 'Off*') { Stop-VM -VM $Machine -TurnOff -Confirm:$false }
}
function Out-HaVM($Machine, $Note) {
  ConvertTo-HaVM (Get-VM -Id $Machine.Id) $Note | ConvertTo-Json -Compress
}
function ConvertTo-HaVM($Machine, $Note) {
  $ip = @($Machine.NetworkAdapters.IPAddresses | Where-Object { $_ -match '^\d+(\.\d+){3}$' })
  [pscustomobject]@{ Name = $Machine.Name; Id = [string]$Machine.Id;
    State = [string]$Machine.State; Host = $Machine.ComputerName; Address = $ip[0]; Note = $Note }
}
"""

SCRIPTS = {
    "state": "Out-HaVM (Find-HaVM @VM@)\n",
    "on": r"""$vm = Find-HaVM @VM@
if ($vm.State -like 'Paused*') { Resume-VM -VM $vm }
elseif ($vm.State -notlike 'Running*') { Start-VM -VM $vm }
Out-HaVM $vm
""",
    "off": r"""$vm = Find-HaVM @VM@
Stop-HaVMHard $vm
Out-HaVM $vm
""",
    "shutdown": r"""$vm = Find-HaVM @VM@
$note = $null
if ($vm.State -notlike 'Off*') {
  try {
    $job = Stop-VM -VM $vm -Force -AsJob
    if (-not (Wait-Job -Job $job -Timeout @SECONDS@)) {
      Stop-Job -Job $job
      throw ('the guest did not shut down within ' + @LIMIT@)
    }
    Receive-Job -Job $job
  } catch {
    if (-not @FALLBACK@) { throw }
    $note = $_.Exception.Message
    Stop-HaVMHard (Get-VM -Id $vm.Id)
  }
}
Out-HaVM $vm $note
""",
    "snapshot": r"""$vm = Find-HaVM @VM@
$s = Checkpoint-VM -VM $vm -SnapshotName @SNAPSHOT@ -Passthru
[pscustomobject]@{ Name = $s.Name; Id = [string]$s.Id } | ConvertTo-Json -Compress
""",
    "revert": r"""$vm = Find-HaVM @VM@
Restore-VMSnapshot -VMSnapshot (Find-HaSnapshot $vm @SNAPSHOT@) -Confirm:$false
Out-HaVM $vm
""",
    "delete": r"""$vm = Find-HaVM @VM@
Remove-VMSnapshot -VMSnapshot (Find-HaSnapshot $vm @SNAPSHOT@) -Confirm:$false
Out-HaVM $vm
""",
    "list": r"""$vms = @(Get-VM | ForEach-Object { ConvertTo-HaVM $_ })
[pscustomobject]@{ VMs = $vms } | ConvertTo-Json -Compress -Depth 3
""",
}


def arg(value: str) -> str:
    """``value`` as a PowerShell expression that evaluates to it and cannot be anything else."""
    return f"(Get-Arg '{base64.b64encode(value.encode('utf-8')).decode('ascii')}')"


def script(action: str, **values: str) -> str:
    """The whole script of ``action``: a comment naming it, the prelude, and its body."""
    body = SCRIPTS[action]
    for key, value in values.items():
        body = body.replace(f"@{key.upper()}@", value)
    left = _TOKEN.findall(body)
    if left:
        raise ValueError(f"script {action}: no value for {', '.join(left)}")
    return f"# ha-orchestrator hyperv: {action}\n{PRELUDE}{body}"


def powershell_error(stderr: bytes, stdout: bytes, code: int) -> str:
    """The message of a failed PowerShell run: the error records, without position lines."""
    text = stderr.decode("utf-8", "replace").strip()
    if text.startswith("#< CLIXML"):
        text = _clixml_errors(text) or text
    if not text:
        text = stdout.decode("utf-8", "replace").strip()
    lines = []
    for line in text.splitlines():
        if line.strip().startswith(_POSITION):
            break
        if line.strip():
            lines.append(line.strip())
    message = " ".join(lines) or f"PowerShell exited {code} without a message"
    return message[:MESSAGE_LIMIT]


def _clixml_errors(text: str) -> str:
    _, _, xml = text.partition("\n")
    try:
        root = ET.fromstring(xml.strip())
    except ET.ParseError:
        return ""
    parts = [
        node.text or ""
        for node in root.iter()
        if node.tag.rpartition("}")[2] == "S" and node.get("S") == "Error"
    ]
    return _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), "".join(parts))


def winrm_error(exc: Exception, endpoint: str, user: str) -> str:
    """The one mapping of pywinrm, requests and XML errors into a message."""
    if isinstance(exc, winrm_exceptions.InvalidCredentialsError):
        return f"{endpoint} refused the login of user {user!r}"
    if isinstance(exc, winrm_exceptions.WSManFaultError):
        return f"{endpoint}: WS-Management fault: {exc.reason}"
    if isinstance(exc, winrm_exceptions.WinRMTransportError):
        return f"{endpoint} answered HTTP {exc.code}"
    if isinstance(exc, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return (
                f"TLS certificate of {endpoint} not trusted; give its CA in ca_file,"
                " or set cert_validation: false on a lab"
            )
        return f"TLS with {endpoint} failed"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{endpoint} did not answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot reach {endpoint}"
    if isinstance(exc, winrm_exceptions.WinRMError):
        return f"{endpoint}: {exc}"
    if isinstance(exc, ET.ParseError | StopIteration | AssertionError | KeyError):
        return f"{endpoint} gave an answer that is not WS-Management ({type(exc).__name__})"
    return f"{endpoint}: {type(exc).__name__}: {exc}"
