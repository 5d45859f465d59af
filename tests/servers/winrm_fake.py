"""A local WS-Management endpoint that stands in for a Windows host running Hyper-V.

No Windows host can run here, and no WinRM server exists on Debian or PyPI. This aiohttp server
answers the five shell actions pywinrm really sends, over HTTP Basic: transfer/Create (a shell,
named by a ``ShellId`` selector), shell/Command, shell/Receive (base64 stdout and stderr, then
``Done`` with an ExitCode), shell/Signal and transfer/Delete. It decodes each
``powershell.exe -EncodedCommand`` it is given (UTF-16LE, base64), records the script, and answers
with what the test's ``respond(script)`` returns: recorded outputs of real PowerShell (a JSON line,
a CLIXML error record and exit 1).

A reply with ``hang=True`` never finishes: every Receive answers WS-Management's "operation
timeout" fault, as a host does while a command is still running.
"""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import encode_basic_auth, web

from tests.servers.ports import free_port

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS = {"s": SOAP, "a": ADDRESSING, "w": WSMAN, "rsp": SHELL}
OPERATION_TIMEOUT_CODE = "2150858793"


@dataclass(frozen=True)
class Reply:
    """What one PowerShell run prints and how it exits."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    hang: bool = False


@dataclass
class WinrmFake:
    """The endpoint's facts for a provider config, and what it received."""

    port: int
    user: str = "ha"
    password: str = "fake-winrm-password"
    respond: Callable[[str], Reply] = field(default=lambda script: Reply(stdout="{}"))
    scripts: list[str] = field(default_factory=list)
    command_lines: list[str] = field(default_factory=list)
    shell_options: list[dict[str, str]] = field(default_factory=list)
    _replies: dict[str, Reply] = field(default_factory=dict)

    def provider_config(self, password_file: str, **overrides: object) -> dict[str, object]:
        """A hyperv provider config for this endpoint: basic over http, explicitly allowed."""
        config: dict[str, object] = {
            "type": "hyperv",
            "host": "127.0.0.1",
            "port": self.port,
            "transport": "basic",
            "https": False,
            "allow_basic_over_http": True,
            "user": self.user,
            "password_file": password_file,
        }
        return {**config, **overrides}

    async def handle(self, request: web.Request) -> web.Response:
        expected = encode_basic_auth(self.user, self.password)
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="WSMAN"'})
        envelope = ET.fromstring(await request.read())
        action = envelope.findtext("s:Header/a:Action", "", NS).rsplit("/", 1)[-1]
        message_id = envelope.findtext("s:Header/a:MessageID", "", NS)
        if action == "Create":
            options = envelope.iterfind("s:Header/w:OptionSet/w:Option", NS)
            self.shell_options.append({o.get("Name", ""): o.text or "" for o in options})
            shell = f'<w:SelectorSet><w:Selector Name="ShellId">{uuid.uuid4()}</w:Selector>'
            return _answer(
                f"<x:ResourceCreated><a:ReferenceParameters>{shell}</w:SelectorSet>"
                "</a:ReferenceParameters></x:ResourceCreated>"
            )
        if action == "Command":
            return _answer(self._command(envelope))
        if action == "Receive":
            stream = envelope.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            reply = self._replies[stream.get("CommandId", "") if stream is not None else ""]
            return _timeout_fault() if reply.hang else _answer(_output(stream, reply))
        if action in ("Signal", "Delete"):
            return _answer("", relates_to=message_id)
        return web.Response(status=400, text=f"unknown action {action}")

    def _command(self, envelope: ET.Element) -> str:
        line = envelope.find("s:Body/rsp:CommandLine", NS)
        command = line.findtext("rsp:Command", "", NS) if line is not None else ""
        arguments = (line.findtext("rsp:Arguments", "", NS) if line is not None else "").split()
        self.command_lines.append(" ".join([command, *arguments]))
        encoded = arguments[arguments.index("-EncodedCommand") + 1]
        script = base64.b64decode(encoded).decode("utf-16-le")
        self.scripts.append(script)
        command_id = str(uuid.uuid4()).upper()
        self._replies[command_id] = self.respond(script)
        answer = f"<rsp:CommandId>{command_id}</rsp:CommandId>"
        return f"<rsp:CommandResponse>{answer}</rsp:CommandResponse>"


def _output(stream: ET.Element | None, reply: Reply) -> str:
    command_id = stream.get("CommandId", "") if stream is not None else ""
    parts = [
        f'<rsp:Stream Name="{name}" CommandId="{command_id}">'
        f"{base64.b64encode(text.encode()).decode()}</rsp:Stream>"
        for name, text in (("stdout", reply.stdout), ("stderr", reply.stderr))
        if text
    ]
    done = f"{SHELL}/CommandState/Done"
    state = (
        f'<rsp:CommandState CommandId="{command_id}" State="{done}">'
        f"<rsp:ExitCode>{reply.exit_code}</rsp:ExitCode></rsp:CommandState>"
    )
    return f"<rsp:ReceiveResponse>{''.join(parts)}{state}</rsp:ReceiveResponse>"


def _answer(body: str, relates_to: str = "") -> web.Response:
    header = f"<a:RelatesTo>{relates_to}</a:RelatesTo>" if relates_to else ""
    xml = (
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}" '
        f'xmlns:rsp="{SHELL}" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )
    return web.Response(text=xml, content_type="application/soap+xml")


def _timeout_fault() -> web.Response:
    fault = (
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body><s:Fault>'
        "<s:Code><s:Value>s:Receiver</s:Value></s:Code>"
        '<s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the'
        " operation within the time specified in OperationTimeout.</s:Text></s:Reason>"
        '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"'
        f' Code="{OPERATION_TIMEOUT_CODE}" Machine="hv01"/></s:Detail>'
        "</s:Fault></s:Body></s:Envelope>"
    )
    return web.Response(status=500, text=fault, content_type="application/soap+xml")


@pytest.fixture
async def winrm_fake() -> AsyncIterator[WinrmFake]:
    """The endpoint on a free loopback port, served by the test's own event loop."""
    fake = WinrmFake(port=free_port())
    app = web.Application()
    app.router.add_post("/wsman", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", fake.port).start()
        yield fake
    finally:
        await runner.cleanup()
