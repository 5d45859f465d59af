"""The VPC redirectors against moto's server, which stands in for AWS (EC2, VPC) here.

The server runs on 127.0.0.1 (tests/servers/moto_aws.py) and is the only thing the tests talk to:
moto's Elastic IPs are 127.x addresses and the instances' addresses exist only on paper, so
nothing connects to them. What a user would see is read back through the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ha.errors import RedirectError
from ha.redirect import Target
from ha.redirect.aws import (
    ElasticIpRedirectConfig,
    ElasticIpRedirector,
    EniRedirectConfig,
    EniRedirector,
    RouteRedirectConfig,
    RouteRedirector,
    SecondaryIpRedirectConfig,
    SecondaryIpRedirector,
)
from providers import PowerState
from providers.aws import AwsProvider, AwsProviderConfig
from tests.servers.moto_aws import (
    REGION,
    MotoServer,
    Vpc,
    record,
)

TARGET = Target("web01", production="10.0.1.10", replica="10.0.1.20")


@dataclass(frozen=True)
class Pair:
    """Production and replica instances, as the scenario names them."""

    production: str
    replica: str


@pytest.fixture
async def cloud(moto_aws: MotoServer, dummy_aws_credentials: None) -> AsyncIterator[AwsProvider]:
    config = AwsProviderConfig.model_validate(
        {
            "type": "aws",
            "region": REGION,
            "endpoint_url": moto_aws.endpoint,
            "wait_timeout": "10s",
            "poll_interval": "50ms",
        }
    )
    provider = AwsProvider("cloud", config)
    yield provider
    await provider.close()


@pytest.fixture
def pair(aws_vpc: Vpc) -> Pair:
    return Pair(aws_vpc.launch("web01"), aws_vpc.launch("web01-standby"))


def sides(production: str = "web01", replica: str = "web01-standby") -> dict[str, object]:
    return {
        "provider": "cloud",
        "production": {"instance": production},
        "replica": {"instance": replica},
    }


async def test_the_elastic_ip_moves_to_the_replica_and_back(
    aws_vpc: Vpc, pair: Pair, cloud: AwsProvider
) -> None:
    allocation = aws_vpc.ec2.allocate_address(Domain="aws_vpc")["AllocationId"]
    aws_vpc.ec2.associate_address(AllocationId=allocation, InstanceId=pair.production)
    config = ElasticIpRedirectConfig.model_validate({**sides(), "allocation_id": allocation})
    eip = ElasticIpRedirector(TARGET, config, cloud)
    associations = record(await cloud.api.client(), "AssociateAddress")
    assert await eip.current() == TARGET.production

    await eip.point_to(TARGET.replica)
    assert _eip_eni(aws_vpc, allocation) == aws_vpc.primary_eni(pair.replica)
    assert await eip.current() == TARGET.replica
    await eip.point_to(TARGET.replica)  # already there: nothing to do
    assert [p["AllowReassociation"] for p in associations.params] == [True]

    await eip.point_to(TARGET.production)
    assert _eip_eni(aws_vpc, allocation) == aws_vpc.primary_eni(pair.production)
    assert eip.describe(TARGET.replica) == (
        f"associate Elastic IP {allocation} with instance web01-standby "
        "(the replica, 10.0.1.20); read it back"
    )


async def test_an_elastic_ip_elsewhere_is_described(
    aws_vpc: Vpc, pair: Pair, cloud: AwsProvider
) -> None:
    other = aws_vpc.launch("build")
    allocation = aws_vpc.ec2.allocate_address(Domain="aws_vpc")["AllocationId"]
    config = ElasticIpRedirectConfig.model_validate({**sides(), "allocation_id": allocation})
    eip = ElasticIpRedirector(TARGET, config, cloud)
    assert await eip.current() == f"Elastic IP {allocation} (on nothing)"
    aws_vpc.ec2.associate_address(AllocationId=allocation, InstanceId=other)
    assert await eip.current() == f"Elastic IP {allocation} on {aws_vpc.primary_eni(other)}"


async def test_an_address_of_neither_side_is_refused(
    aws_vpc: Vpc, pair: Pair, cloud: AwsProvider
) -> None:
    allocation = aws_vpc.ec2.allocate_address(Domain="aws_vpc")["AllocationId"]
    config = ElasticIpRedirectConfig.model_validate({**sides(), "allocation_id": allocation})
    eip = ElasticIpRedirector(TARGET, config, cloud)
    with pytest.raises(RedirectError, match=r"10\.9\.9\.9 is neither production \(10\.0\.1\.10\)"):
        await eip.point_to("10.9.9.9")
    assert _eip_eni(aws_vpc, allocation) is None


async def test_the_route_points_the_vip_at_the_replica(
    aws_vpc: Vpc, pair: Pair, cloud: AwsProvider
) -> None:
    table = aws_vpc.ec2.create_route_table(VpcId=aws_vpc.vpc_id)["RouteTable"]["RouteTableId"]
    vip = "10.9.0.10/32"
    config = RouteRedirectConfig.model_validate(
        {
            **sides(production=pair.production),
            "route_table_id": table,
            "destination_cidr": vip,
        }
    )
    route = RouteRedirector(TARGET, config, cloud)
    assert await route.current() == f"route {vip} in {table} (on nothing)"
    await route.point_to(TARGET.production)  # no route yet: created
    assert _route_eni(aws_vpc, table, vip) == aws_vpc.primary_eni(pair.production)
    await route.point_to(TARGET.replica)  # replaced
    assert _route_eni(aws_vpc, table, vip) == aws_vpc.primary_eni(pair.replica)
    assert await route.current() == TARGET.replica


async def test_the_secondary_ip_moves_to_the_replica_eni(
    aws_vpc: Vpc, pair: Pair, cloud: AwsProvider
) -> None:
    production_eni, replica_eni = (
        aws_vpc.primary_eni(pair.production),
        aws_vpc.primary_eni(pair.replica),
    )
    aws_vpc.ec2.assign_private_ip_addresses(
        NetworkInterfaceId=production_eni, PrivateIpAddresses=["10.0.1.200"]
    )
    config = SecondaryIpRedirectConfig.model_validate(
        {
            "provider": "cloud",
            "address": "10.0.1.200",
            "production": {"eni": production_eni},
            "replica": {"eni": replica_eni},
        }
    )
    secondary = SecondaryIpRedirector(TARGET, config, cloud)
    assert await secondary.current() == TARGET.production
    await secondary.point_to(TARGET.replica)
    assert _holders(aws_vpc, "10.0.1.200", production_eni, replica_eni) == [replica_eni]
    assert await secondary.current() == TARGET.replica


async def test_the_eni_moves_to_the_replica_instance(
    aws_vpc: Vpc, pair: Pair, cloud: AwsProvider
) -> None:
    eni = aws_vpc.ec2.create_network_interface(SubnetId=aws_vpc.subnet_id)["NetworkInterface"]
    eni_id = eni["NetworkInterfaceId"]
    aws_vpc.ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=pair.production, DeviceIndex=1
    )
    config = EniRedirectConfig.model_validate(
        {"provider": "cloud", "eni": eni_id, "production": "web01", "replica": pair.replica}
    )
    moving = EniRedirector(TARGET, config, cloud)
    assert await moving.current() == TARGET.production
    await moving.point_to(TARGET.replica)
    found = aws_vpc.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])
    attachment = found["NetworkInterfaces"][0]["Attachment"]
    assert (attachment["InstanceId"], attachment["DeviceIndex"]) == (pair.replica, 1)
    assert await moving.current() == TARGET.replica


async def test_failover_to_a_stopped_replica_in_the_cloud(aws_vpc: Vpc, cloud: AwsProvider) -> None:
    """Virtual standby: production runs, the replica is stopped until failover. The runbook's
    AWS steps: fence production, power on the replica, move the Elastic IP, read it all back."""
    production, replica = aws_vpc.launch("web01"), aws_vpc.launch("web01-standby", running=False)
    allocation = aws_vpc.ec2.allocate_address(Domain="aws_vpc")["AllocationId"]
    aws_vpc.ec2.associate_address(AllocationId=allocation, InstanceId=production)
    config = ElasticIpRedirectConfig.model_validate({**sides(), "allocation_id": allocation})
    eip = ElasticIpRedirector(TARGET, config, cloud)

    await cloud.power_off("web01", hard=True)
    assert await cloud.power_state("web01") == PowerState.OFF
    await cloud.power_on("web01-standby")
    assert await cloud.power_state("web01-standby") == PowerState.ON
    await eip.point_to(TARGET.replica)
    assert await eip.current() == TARGET.replica

    assert (aws_vpc.state(production), aws_vpc.state(replica)) == ("stopped", "running")
    address = aws_vpc.ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    eni = aws_vpc.ec2.describe_network_interfaces(
        NetworkInterfaceIds=[address["NetworkInterfaceId"]]
    )
    assert eni["NetworkInterfaces"][0]["Attachment"]["InstanceId"] == replica


def _eip_eni(aws_vpc: Vpc, allocation: str) -> str | None:
    address = aws_vpc.ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    eni: str | None = address.get("NetworkInterfaceId") or None
    return eni


def _route_eni(aws_vpc: Vpc, table: str, cidr: str) -> str | None:
    routes = aws_vpc.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    return next(
        (r.get("NetworkInterfaceId") for r in routes if r["DestinationCidrBlock"] == cidr), None
    )


def _holders(aws_vpc: Vpc, address: str, *enis: str) -> list[str]:
    found = aws_vpc.ec2.describe_network_interfaces(NetworkInterfaceIds=list(enis))
    return sorted(
        eni["NetworkInterfaceId"]
        for eni in found["NetworkInterfaces"]
        if address in [a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]]
    )
