"""Route 53 redirection against moto's server, which stands in for AWS here (tests/servers/moto.py):
boto3 talks HTTP to it on loopback with dummy credentials. What a user sees is read back through
the API, as the AWS console would show it.

moto checks a DELETE against the zone's change history rather than the record's current values,
so the race that Route 53 itself refuses (the record changed between our read and our change
batch) cannot be reproduced here; the refusal of a record changed before the read can. moto also
refuses a CREATE identical to one it saw before even when the same batch DELETEs the set first
(Route 53 applies the batch in order), so a test here moves a record at most once each way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from ha.errors import RedirectError
from ha.redirect import Target
from ha.redirect.route53 import Route53RedirectConfig, Route53Redirector
from tests.servers.moto import (
    CREDENTIALS,
    MotoServer,
)
from tests.servers.ports import free_port

PRODUCTION = "192.0.2.10"
REPLICA = "192.0.2.20"
FOREIGN = "198.51.100.7"
TARGET = Target("web01", PRODUCTION, REPLICA)


@pytest.fixture
def route53(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A clean moto account and a boto3 client for it."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    moto_server.reset()
    client = boto3.client("route53", region_name="us-east-1", endpoint_url=moto_server.endpoint_url)
    yield client
    client.close()


@pytest.fixture
def zone_id(route53: Any) -> str:
    """Hosted zone example.test with web01 A pointing at production."""
    zone = route53.create_hosted_zone(Name="example.test", CallerReference="ha-test")
    zone_id = str(zone["HostedZone"]["Id"])
    upsert(route53, zone_id, PRODUCTION, ttl=300)
    return zone_id


def upsert(client: Any, zone_id: str, value: str, ttl: int) -> None:
    record = {
        "Name": "web01.example.test.",
        "Type": "A",
        "TTL": ttl,
        "ResourceRecords": [{"Value": value}],
    }
    client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]},
    )


def held(client: Any, zone_id: str) -> tuple[list[str], int]:
    records = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    (record,) = [r for r in records if r["Name"] == "web01.example.test." and r["Type"] == "A"]
    return [r["Value"] for r in record["ResourceRecords"]], record["TTL"]


def redirector(moto_server: MotoServer, **extra: object) -> Route53Redirector:
    config = Route53RedirectConfig.model_validate(
        {
            "zone": "example.test",
            "name": "web01",
            "ttl": 30,
            "endpoint_url": moto_server.endpoint_url,
            **extra,
        }
    )
    return Route53Redirector(TARGET, config)


async def test_redirect_and_failback_wait_until_the_change_is_in_sync(
    moto_server: MotoServer, route53: Any, zone_id: str
) -> None:
    web01 = redirector(moto_server)
    try:
        await web01.point_to(REPLICA)

        assert held(route53, zone_id) == ([REPLICA], 30)
        assert await web01.current() == REPLICA
        line = web01.describe(REPLICA)
        change_id = line.rsplit("change ", 1)[1].split(" ")[0]
        assert line == (
            "route53 web01.example.test A -> 192.0.2.20 in zone example.test"
            f" (ttl 30s: clients may hold the old answer up to 300s; change {change_id} INSYNC)"
        )
        assert route53.get_change(Id=change_id)["ChangeInfo"]["Status"] == "INSYNC"

        await web01.point_to(PRODUCTION)
        await web01.point_to(PRODUCTION)

        assert held(route53, zone_id) == ([PRODUCTION], 30)
        assert await web01.current() == PRODUCTION
    finally:
        await web01.close()


async def test_a_record_changed_behind_our_back_is_reported_unless_forced(
    moto_server: MotoServer, route53: Any, zone_id: str
) -> None:
    upsert(route53, zone_id, FOREIGN, ttl=300)
    web01 = redirector(moto_server)
    forced = redirector(moto_server, force=True)
    try:
        with pytest.raises(RedirectError) as caught:
            await web01.point_to(REPLICA)
        assert str(caught.value) == (
            "route53 web01.example.test A in zone example.test holds 198.51.100.7, not 192.0.2.10"
            " (production) or 192.0.2.20 (replica): it was changed behind our back;"
            " left as it is (set force: true to overwrite it)"
        )
        assert held(route53, zone_id) == ([FOREIGN], 300)

        await forced.point_to(REPLICA)

        assert held(route53, zone_id) == ([REPLICA], 30)
    finally:
        await web01.close()
        await forced.close()


async def test_unknown_hosted_zone_is_reported_with_zone_and_record(
    moto_server: MotoServer, route53: Any
) -> None:
    by_id = Route53Redirector(
        TARGET,
        Route53RedirectConfig(
            hosted_zone_id="ZNOSUCHZONE",
            name="web01.example.test.",
            endpoint_url=moto_server.endpoint_url,
        ),
    )
    by_name = redirector(moto_server, zone="nowhere.test")
    try:
        with pytest.raises(RedirectError) as caught:
            await by_id.point_to(REPLICA)
        assert str(caught.value) == (
            "route53 find the zone of web01.example.test A in zone ZNOSUCHZONE:"
            " NoSuchHostedZone: No hosted zone found with ID: ZNOSUCHZONE"
        )
        with pytest.raises(RedirectError) as caught:
            await by_name.point_to(REPLICA)
        assert str(caught.value) == (
            "route53 web01.nowhere.test A in zone nowhere.test: no hosted zone of that name"
            " (give hosted_zone_id)"
        )
    finally:
        await by_id.close()
        await by_name.close()


async def test_unreachable_endpoint_is_reported(route53: Any) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    web01 = Route53Redirector(
        TARGET, Route53RedirectConfig(zone="example.test", name="web01", endpoint_url=down)
    )
    try:
        with pytest.raises(RedirectError) as caught:
            await web01.point_to(REPLICA)
        assert str(caught.value) == (
            "route53 find the zone of web01.example.test A in zone example.test:"
            " Could not connect to the endpoint URL:"
            f' "{down}/2013-04-01/hostedzonesbyname?dnsname=example.test."'
        )
    finally:
        await web01.close()
