"""The AWS EC2 provider against moto's server, which stands in for AWS (EC2, VPC, IAM) here.

The server runs on 127.0.0.1 (tests/servers/moto_aws.py); the tests talk only to it, never to an
instance's or an Elastic IP's address. Credentials are dummies in the environment, so boto3's
standard chain is what finds them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
import structlog

from ha.errors import NotSupported, ProviderError
from providers import PowerState
from providers.aws import AwsProvider, AwsProviderConfig
from providers.aws_discover import discover
from tests.servers.moto_aws import (
    REGION,
    MotoServer,
    Vpc,
    fail_next,
    record,
)


def make_provider(moto_aws: MotoServer, **settings: Any) -> AwsProvider:
    config = AwsProviderConfig.model_validate(
        {
            "type": "aws",
            "region": REGION,
            "endpoint_url": moto_aws.endpoint,
            "wait_timeout": "10s",
            "poll_interval": "50ms",
            **settings,
        }
    )
    return AwsProvider("cloud", config)


@pytest.fixture
async def cloud(moto_aws: MotoServer, dummy_aws_credentials: None) -> AsyncIterator[AwsProvider]:
    provider = make_provider(moto_aws)
    yield provider
    await provider.close()


async def test_power_state_by_id_and_by_name_tag(aws_vpc: Vpc, cloud: AwsProvider) -> None:
    web = aws_vpc.launch("web01")
    standby = aws_vpc.launch("web01-standby", running=False)
    assert await cloud.power_state(web) == PowerState.ON
    assert await cloud.power_state("web01") == PowerState.ON
    assert await cloud.power_state(standby) == PowerState.OFF
    assert await cloud.power_state("web01-standby") == PowerState.OFF


async def test_power_on_waits_for_running_and_both_status_checks(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    standby = aws_vpc.launch("web01-standby", running=False)
    client = await cloud.api.client()
    starts = record(client, "StartInstances")
    statuses = record(client, "DescribeInstanceStatus")
    await cloud.power_on("web01-standby")
    assert aws_vpc.state(standby) == "running"
    status = aws_vpc.ec2.describe_instance_status(InstanceIds=[standby])["InstanceStatuses"][0]
    assert (status["InstanceStatus"]["Status"], status["SystemStatus"]["Status"]) == ("ok", "ok")
    assert statuses.attempts == 2  # the InstanceStatusOk and SystemStatusOk waiters
    await cloud.power_on(standby)  # already running: nothing to do
    assert starts.params == [{"InstanceIds": [standby]}]


async def test_without_describe_instance_status_running_is_enough(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    standby = aws_vpc.launch("web01-standby", running=False)
    fail_next(await cloud.api.client(), "DescribeInstanceStatus", "InvalidAction")
    with structlog.testing.capture_logs() as logs:
        await cloud.power_on(standby)
    assert aws_vpc.state(standby) == "running"
    assert [(e["event"], e["reason"]) for e in logs] == [
        (
            "status checks skipped",
            f"ec2:DescribeInstanceStatus for {standby}: InvalidAction: injected by the test",
        )
    ]


async def test_fencing_forces_the_stop_and_waits_until_stopped(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    web = aws_vpc.launch("web01")
    stops = record(await cloud.api.client(), "StopInstances")
    await cloud.power_off("web01", hard=True)
    assert aws_vpc.state(web) == "stopped"
    await cloud.power_off(web, hard=True)  # already stopped: nothing to do
    assert stops.params == [{"InstanceIds": [web], "Force": True}]


async def test_a_graceful_stop_is_not_forced(aws_vpc: Vpc, cloud: AwsProvider) -> None:
    web = aws_vpc.launch("web01")
    stops = record(await cloud.api.client(), "StopInstances")
    await cloud.power_off(web, hard=False)
    assert aws_vpc.state(web) == "stopped"
    assert stops.params == [{"InstanceIds": [web], "Force": False}]


async def test_an_instance_that_does_not_exist_is_a_clear_error(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    with pytest.raises(ProviderError) as missing_id:
        await cloud.power_state("i-0123456789abcdef0")
    assert str(missing_id.value) == (
        "ec2:DescribeInstances for i-0123456789abcdef0: InvalidInstanceID.NotFound: "
        "The instance ID 'i-0123456789abcdef0' does not exist"
    )
    with pytest.raises(ProviderError) as missing_name:
        await cloud.power_on("web99")
    assert str(missing_name.value) == (
        "no EC2 instance 'web99' in eu-west-1 (by id or Name tag, not terminated)"
    )


async def test_a_name_tag_on_two_instances_is_refused_naming_both(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    running, stopped = aws_vpc.launch("web01"), aws_vpc.launch("web01", running=False)
    with pytest.raises(NotSupported) as ambiguous:
        await cloud.power_off("web01", hard=True)
    first, second = sorted([running, stopped])
    assert str(ambiguous.value) == (
        f"Name tag 'web01' is ambiguous: {first}, {second}; name the machine by its instance id"
    )
    assert (aws_vpc.state(running), aws_vpc.state(stopped)) == ("running", "stopped")


async def test_a_denied_call_is_not_retried_and_names_the_action(
    aws_vpc: Vpc, moto_aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's own IAM enforcement (``/moto-api/reset-auth``, the server-side form of
    INITIAL_NO_AUTH_ACTION_COUNT) gives a real AccessDenied answer for a user whose policy allows
    only ec2:Describe*: the same path as AWS, signature and policy checked by the server."""
    web = aws_vpc.launch("web01")
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_aws.endpoint)
    iam.create_user(UserName="ha-readonly")
    policy = {"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}
    iam.put_user_policy(
        UserName="ha-readonly",
        PolicyName="describe-only",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
    )
    key = iam.create_access_key(UserName="ha-readonly")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    readonly = make_provider(moto_aws)
    stops = record(await readonly.api.client(), "StopInstances")
    previous = moto_aws.require_auth(after=0)
    try:
        assert await readonly.power_state(web) == PowerState.ON  # Describe* is allowed
        with pytest.raises(NotSupported) as denied:
            await readonly.power_off(web, hard=True)
    finally:
        moto_aws.require_auth(after=float(previous))
        await readonly.close()
    assert str(denied.value) == f"ec2:StopInstances denied for {web} (AccessDenied)"
    assert stops.attempts == 1
    assert aws_vpc.state(web) == "running"


async def test_a_throttled_call_is_retried_by_botocore(aws_vpc: Vpc, cloud: AwsProvider) -> None:
    web = aws_vpc.launch("web01")
    client = await cloud.api.client()
    describes = record(client, "DescribeInstances")
    fail_next(client, "DescribeInstances", "RequestLimitExceeded")
    assert await cloud.power_state(web) == PowerState.ON
    assert describes.attempts == 2


async def test_throttled_past_the_attempts_is_a_transient_error(
    aws_vpc: Vpc, moto_aws: MotoServer
) -> None:
    web = aws_vpc.launch("web01")
    provider = make_provider(moto_aws, retries={"mode": "adaptive", "max_attempts": 2})
    client = await provider.api.client()
    describes = record(client, "DescribeInstances")
    fail_next(client, "DescribeInstances", "RequestLimitExceeded", times=2)
    with pytest.raises(ProviderError) as throttled:
        await provider.power_state(web)
    await provider.close()
    assert type(throttled.value) is ProviderError  # so the runbook step retries it
    assert str(throttled.value) == (
        f"ec2:DescribeInstances for {web}: RequestLimitExceeded: injected by the test"
    )
    assert describes.attempts == 2


async def test_incorrect_instance_state_is_looked_at_again(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    standby = aws_vpc.launch("web01-standby", running=False)
    client = await cloud.api.client()
    starts = record(client, "StartInstances")
    fail_next(client, "StartInstances", "IncorrectInstanceState")
    await cloud.power_on(standby)
    assert aws_vpc.state(standby) == "running"
    assert starts.attempts == 2


async def test_revert_swaps_in_volumes_made_from_the_snapshots(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    standby = aws_vpc.launch("web01-standby")
    before = _volumes(aws_vpc, standby)
    snapshot = await cloud.snapshot("web01-standby", "ar-2024-06-02")
    snapshots = aws_vpc.ec2.describe_snapshots(
        Filters=[{"Name": "tag:ha:snapshot-set", "Values": [snapshot]}]
    )["Snapshots"]
    assert sorted(_tags(s)["ha:device"] for s in snapshots) == ["/dev/sda1", "/dev/sdf"]
    assert {_tags(s)["Name"] for s in snapshots} == {"ar-2024-06-02"}
    made_from = {_tags(s)["ha:device"]: s["SnapshotId"] for s in snapshots}

    await cloud.revert(standby, snapshot)

    after = _volumes(aws_vpc, standby)
    assert sorted(after) == ["/dev/sda1", "/dev/sdf"]
    assert not set(after.values()) & set(before.values())
    volumes = aws_vpc.ec2.describe_volumes(VolumeIds=list(after.values()))["Volumes"]
    assert {v["Attachments"][0]["Device"]: v["SnapshotId"] for v in volumes} == made_from
    left = aws_vpc.ec2.describe_volumes(Filters=[{"Name": "status", "Values": ["available"]}])
    assert left["Volumes"] == []  # the replaced volumes are deleted
    assert aws_vpc.state(standby) == "running"  # it was running before the revert


async def test_revert_to_an_unknown_snapshot_set_is_refused(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    standby = aws_vpc.launch("web01-standby")
    with pytest.raises(NotSupported, match=f"no snapshot set ha-000000000000 of {standby}"):
        await cloud.revert(standby, "ha-000000000000")
    assert aws_vpc.state(standby) == "running"


async def test_discover_drafts_a_scenario_per_tagged_instance(
    aws_vpc: Vpc, cloud: AwsProvider
) -> None:
    web = aws_vpc.launch("web01")
    db = aws_vpc.launch("db 01/primary", running=False)
    untagged = aws_vpc.launch("build")
    aws_vpc.ec2.create_tags(Resources=[web, db], Tags=[{"Key": "ha", "Value": "protect"}])
    drafts = await discover(cloud, {"ha": "protect"})
    assert drafts == [
        {
            "name": "db-01-primary",
            "production": {
                "address": aws_vpc.instance(db)["PrivateIpAddress"],
                "machine": {"provider": "cloud", "name": db},
            },
        },
        {
            "name": "web01",
            "production": {
                "address": aws_vpc.instance(web)["PrivateIpAddress"],
                "machine": {"provider": "cloud", "name": web},
            },
        },
    ]
    assert untagged not in json.dumps(await discover(cloud, {"ha": "*"}))


def _volumes(aws_vpc: Vpc, iid: str) -> dict[str, str]:
    mappings = aws_vpc.instance(iid)["BlockDeviceMappings"]
    return {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in mappings}


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
