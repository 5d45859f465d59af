"""moto's server, standing in for AWS (EC2, VPC, IAM) in the AWS provider and redirector tests.

``moto_server`` from the venv runs as a subprocess on 127.0.0.1 and a free port for the whole
session; it is stopped by its PID at the end, also when a test fails. Tests talk to nothing
else: moto's Elastic IPs are 127.x addresses and instance addresses are made up, so tests never
connect to them.

A plugin that the test modules list in ``pytest_plugins`` and also import helpers from; as they
import it before pytest registers it, assertion rewriting is off here: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from tests.servers.ports import free_port

HOST = "127.0.0.1"
REGION = "eu-west-1"

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


@dataclass(frozen=True)
class MotoServer:
    endpoint: str  # http://127.0.0.1:PORT
    image_id: str = ""  # one of moto's built-in AMIs (the same after every reset)

    def reset(self) -> None:
        """Forget every resource (instances, VPCs, IAM users...)."""
        self._post("/moto-api/reset", b"")

    def require_auth(self, after: float) -> str:
        """Check signatures and IAM policies from the ``after``-th request on (``inf``: never).
        Returns the previous setting, to restore."""
        answer = json.loads(self._post("/moto-api/reset-auth", str(after).encode()))
        previous: str = answer["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
        return previous

    def _post(self, path: str, body: bytes) -> bytes:
        request = urllib.request.Request(
            self.endpoint + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with _direct.open(request, timeout=10) as response:
            answer: bytes = response.read()
            return answer


@pytest.fixture(scope="session")
def moto_aws() -> Iterator[MotoServer]:
    """One moto server for the session."""
    binary = Path(sys.executable).parent / "moto_server"
    port = free_port(HOST)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(binary), "-H", HOST, "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            server = MotoServer(f"http://{HOST}:{port}")
            _wait_ready(server, process, log)
            images = ec2_client(server).describe_images(Owners=["amazon"])["Images"]
            yield replace(server, image_id=images[0]["ImageId"])
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials in the environment (boto3's standard chain), no shared files, no IMDS."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("NO_PROXY", "no_proxy"):  # boto3 talks to moto on loopback, never via a proxy
        monkeypatch.setenv(name, HOST)


@pytest.fixture
def aws_vpc(moto_aws: MotoServer, dummy_aws_credentials: None) -> Vpc:
    """A fresh moto (every resource of earlier tests forgotten) with a VPC and a subnet."""
    moto_aws.reset()
    return Vpc.create(moto_aws)


def _wait_ready(server: MotoServer, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited with {process.returncode}: {_tail(log)}")
        try:
            with _direct.open(server.endpoint + "/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"moto_server did not answer on {server.endpoint} within 30s: {_tail(log)}")


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-2000:]


def ec2_client(server: MotoServer) -> Any:
    """A plain boto3 EC2 client on moto, for the tests' own setup and read-backs."""
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass(frozen=True)
class Vpc:
    """A VPC with one subnet, and instances launched into it."""

    ec2: Any
    vpc_id: str
    subnet_id: str
    image_id: str

    @classmethod
    def create(cls, server: MotoServer) -> Vpc:
        ec2 = ec2_client(server)
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(
            VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone="eu-west-1a"
        )
        return cls(ec2, vpc_id, subnet["Subnet"]["SubnetId"], server.image_id)

    def launch(self, name: str, *, running: bool = True) -> str:
        """An instance tagged Name=``name`` with a root (/dev/sda1) and a data (/dev/sdf) volume."""
        instance = self.ec2.run_instances(
            ImageId=self.image_id,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            SubnetId=self.subnet_id,
            BlockDeviceMappings=[
                {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}},
                {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 4, "DeleteOnTermination": False}},
            ],
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}
            ],
        )["Instances"][0]
        iid: str = instance["InstanceId"]
        if not running:
            self.ec2.stop_instances(InstanceIds=[iid])
        return iid

    def instance(self, iid: str) -> dict[str, Any]:
        found: dict[str, Any] = self.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0][
            "Instances"
        ][0]
        return found

    def state(self, iid: str) -> str:
        state: str = self.instance(iid)["State"]["Name"]
        return state

    def primary_eni(self, iid: str) -> str:
        for eni in self.instance(iid)["NetworkInterfaces"]:
            if eni["Attachment"]["DeviceIndex"] == 0:
                found: str = eni["NetworkInterfaceId"]
                return found
        raise AssertionError(f"{iid} has no primary ENI")


@dataclass
class Calls:
    """What a boto3 client sent for one operation: each call's parameters, each attempt."""

    params: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0


def record(client: Any, operation: str) -> Calls:
    """Record every call of ``operation`` (``"StopInstances"``) that ``client`` makes."""
    calls = Calls()

    def on_params(params: dict[str, Any], **_: Any) -> None:
        calls.params.append(dict(params))

    def on_send(**_: Any) -> None:
        calls.attempts += 1

    client.meta.events.register(f"provide-client-params.ec2.{operation}", on_params)
    client.meta.events.register(f"before-send.ec2.{operation}", on_send)
    return calls


def fail_next(client: Any, operation: str, code: str, times: int = 1) -> None:
    """Answer the next ``times`` attempts of ``operation`` with EC2 error ``code`` (HTTP 400)
    instead of sending them: botocore parses and handles it like a real answer."""
    left = [times]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        f"<Code>{code}</Code><Message>injected by the test</Message>"
        "</Error></Errors><RequestID>test</RequestID></Response>"
    ).encode()

    def on_send(request: Any, **_: Any) -> AWSResponse | None:
        if left[0] <= 0:
            return None
        left[0] -= 1
        return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Raw(body))

    client.meta.events.register(f"before-send.ec2.{operation}", on_send)


@dataclass(frozen=True)
class _Raw:
    body: bytes

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body
