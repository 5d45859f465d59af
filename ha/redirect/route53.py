"""The Route 53 redirector (boto3): repoint one record of a hosted zone, compare-and-set as far as
the API allows, and wait until the change is INSYNC.

``point_to(address)`` reads the record set first. If it already holds ``address``: nothing to do.
If it holds one of the scenario's own addresses (production or replica), one change batch DELETEs
exactly what was read (name, type, TTL, values) and CREATEs the new set: Route 53 applies a
batch atomically and refuses a DELETE that does not match the current set, so a record changed
between the read and the write is not overwritten (the batch fails, and the record is read
again). Anything else was changed behind our back: reported, not overwritten, unless ``force``
(then one UPSERT). The call returns once GetChange says INSYNC (every Route 53 name server
answers the new set), within ``deadline``.

boto3 blocks: every call runs in the redirector's worker threads (ha.workers), never on the
event loop. botocore's errors become RedirectError naming the zone and the record in one place
(:meth:`Route53Redirector._call`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ha.duration import Duration, format_duration
from ha.errors import RedirectError
from ha.lazy import LazyModule
from ha.redirect import Redirector, Target
from ha.redirect.dns_config import RecordType, Ttl, record_type
from ha.workers import Workers

boto3: Any = LazyModule("boto3")  # loaded when a redirector acts, not when a config is read
botocore_config: Any = LazyModule("botocore.config")
botocore_exceptions: Any = LazyModule("botocore.exceptions")

WORKERS = 1  # thread per redirector: its calls come one at a time (a step awaits each)
ATTEMPTS = 5  # reads and conditional changes before giving up on a record that keeps changing
FIRST_POLL = 0.5  # seconds between two GetChange calls, doubling ...
LAST_POLL = 10.0  # ... up to this
RACED = "Tried to delete resource record set"  # what Route 53 says when our DELETE did not match
BOTO_SETTINGS: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 15,
    "retries": {"max_attempts": 3, "mode": "standard"},
}

T = TypeVar("T")
RecordSet = dict[str, Any]


class Route53RedirectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hosted_zone_id: str | None = Field(None, description="the hosted zone's id (Z...)")
    zone: str | None = Field(None, description="the hosted zone's name, when no id is given")
    name: str = Field(
        min_length=1, description="the record, relative to the zone (or absolute, ending in a dot)"
    )
    type: RecordType | None = Field(
        None, description="default: A or AAAA by the scenario's address family"
    )
    ttl: Ttl = Field(60, description="TTL of the record written at redirect")
    region: str = Field("us-east-1", min_length=1)
    endpoint_url: str | None = Field(None, description="another endpoint (a test server)")
    profile: str | None = Field(None, description="AWS profile; default: the usual chain")
    deadline: Duration = Field(120.0, gt=0, description="how long the change has to be INSYNC")
    force: bool = Field(False, description="overwrite a record that someone else changed")

    @model_validator(mode="after")
    def _zone_given(self) -> Self:
        if self.hosted_zone_id is None and self.zone is None:
            raise ValueError("give hosted_zone_id or zone")
        return self


class Route53Redirector(Redirector):
    def __init__(self, target: Target, config: Route53RedirectConfig) -> None:
        self.target = target
        self.config = config
        self.type = record_type(config.type, target)
        self.ours = {
            self._canonical(target.production): target.production,
            self._canonical(target.replica): target.replica,
        }
        self._client: Any = None
        self._connecting = asyncio.Lock()
        self._workers = Workers("route53", WORKERS)
        self._zone: tuple[str, str] | None = None  # id, name (ending in a dot)
        self._old_ttl: int | None = None
        self._change: tuple[str, str, bool] | None = None  # address, change id, INSYNC yet

    @property
    def record(self) -> str:
        name = self.config.name
        zone = self._zone[1] if self._zone is not None else self.config.zone
        if not name.endswith(".") and zone is not None:
            name = f"{name}.{zone.rstrip('.')}"
        return f"{name.rstrip('.')} {self.type}"

    @property
    def zone_label(self) -> str:
        return self.config.zone or self.config.hosted_zone_id or "?"

    def describe(self, address: str) -> str:
        held = "until its TTL runs out" if self._old_ttl is None else f"up to {self._old_ttl}s"
        change = self._change
        synced = ""
        if change is not None and change[0] == address and change[2]:
            synced = f"; change {change[1]} INSYNC"
        return (
            f"route53 {self.record} -> {address} in zone {self.zone_label}"
            f" (ttl {self.config.ttl}s: clients may hold the old answer {held}{synced})"
        )

    async def point_to(self, address: str) -> None:
        value = self._canonical(address)
        zone_id, fqdn = await self._where()
        new = self._record_set(fqdn, [address])
        for _ in range(ATTEMPTS):
            held = await self._call("read", _read, zone_id, fqdn, self.type)
            values = self._values(held)
            if values == {value}:
                if self._change is not None and self._change[0] == address:
                    await self._until_in_sync(address, self._change[1])  # ours, maybe pending
                return
            self._old_ttl = held.get("TTL") if held else None
            if self.config.force:
                changes = [{"Action": "UPSERT", "ResourceRecordSet": new}]
            elif held is not None and len(values) == 1 and values <= self.ours.keys():
                changes = [
                    {"Action": "DELETE", "ResourceRecordSet": held},
                    {"Action": "CREATE", "ResourceRecordSet": new},
                ]
            else:
                raise RedirectError(self._changed_behind_our_back(held))
            change_id = await self._call("change", _change, zone_id, changes)
            if change_id is not None:
                await self._until_in_sync(address, change_id)
                return
        raise RedirectError(
            f"route53 {self._where_text}: the record kept changing while we updated it"
        )

    async def current(self) -> str | None:
        zone_id, fqdn = await self._where()
        held = await self._call("read", _read, zone_id, fqdn, self.type)
        values = self._values(held)
        if not values:
            raise RedirectError(f"route53 {self._where_text}: no such record")
        return ", ".join(sorted(self.ours.get(value, value) for value in values))

    async def close(self) -> None:
        client, self._client = self._client, None
        await self._workers.close(client.close if client is not None else None)

    @property
    def _where_text(self) -> str:
        return f"{self.record} in zone {self.zone_label}"

    async def _call(self, action: str, call: Callable[..., T], *args: Any) -> T:
        """Run a boto3 call in a worker thread; the one place botocore's errors are mapped."""
        try:
            async with self._connecting:
                if self._client is None:
                    self._client = await self._workers.run(_connect, self.config)
            return await self._workers.run(call, self._client, *args)
        except (botocore_exceptions.ClientError, botocore_exceptions.BotoCoreError) as exc:
            raise RedirectError(f"route53 {action} {self._where_text}: {_reason(exc)}") from exc

    async def _where(self) -> tuple[str, str]:
        """The hosted zone's id and the record's absolute name."""
        if self._zone is None:
            zones = await self._call(
                "find the zone of", _find_zones, self.config.hosted_zone_id, self.config.zone
            )
            if len(zones) != 1:
                found = f"{len(zones)} hosted zones" if zones else "no hosted zone"
                raise RedirectError(
                    f"route53 {self._where_text}: {found} of that name (give hosted_zone_id)"
                )
            self._zone = zones[0]
        zone_id, zone_name = self._zone
        name = self.config.name
        fqdn = name if name.endswith(".") else f"{name}.{zone_name}"
        return zone_id, fqdn.lower()

    async def _until_in_sync(self, address: str, change_id: str) -> None:
        self._change = (address, change_id, False)
        give_up = time.monotonic() + self.config.deadline
        pause = FIRST_POLL
        while True:
            status = await self._call("wait for", _status, change_id)
            if status == "INSYNC":
                self._change = (address, change_id, True)
                return
            if time.monotonic() + pause > give_up:
                raise RedirectError(
                    f"route53 {self._where_text}: change {change_id} is still {status}"
                    f" after {format_duration(self.config.deadline)}"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_POLL)

    def _record_set(self, fqdn: str, values: list[str]) -> RecordSet:
        return {
            "Name": fqdn,
            "Type": self.type,
            "TTL": self.config.ttl,
            "ResourceRecords": [{"Value": value} for value in values],
        }

    def _values(self, held: RecordSet | None) -> set[str]:
        if held is None:
            return set()
        return {self._canonical(r["Value"]) for r in held.get("ResourceRecords", [])}

    def _canonical(self, value: str) -> str:
        if self.type == "CNAME":
            return value.rstrip(".").lower()
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value

    def _changed_behind_our_back(self, held: RecordSet | None) -> str:
        values = self._values(held)
        now = f"holds {', '.join(sorted(values))}" if values else "does not exist"
        if held is not None and not values:
            now = "is an alias or a routing-policy record"
        return (
            f"route53 {self._where_text} {now}, not {self.target.production} (production) or"
            f" {self.target.replica} (replica): it was changed behind our back;"
            " left as it is (set force: true to overwrite it)"
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, botocore_exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', exc)}"
    if isinstance(exc, botocore_exceptions.NoCredentialsError):
        return "no AWS credentials (environment, profile or instance role)"
    return str(exc)


# The boto3 calls, run in worker threads.


def _connect(config: Route53RedirectConfig) -> Any:
    session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
    settings = botocore_config.Config(**BOTO_SETTINGS)
    return session.client("route53", endpoint_url=config.endpoint_url, config=settings)


def _find_zones(client: Any, zone_id: str | None, zone: str | None) -> list[tuple[str, str]]:
    """(id, name) of the hosted zone with that id, or of every hosted zone with that name."""
    if zone_id is not None:
        found = client.get_hosted_zone(Id=zone_id)["HostedZone"]
        return [(str(found["Id"]), str(found["Name"]).lower())]
    name = (zone or "").rstrip(".").lower() + "."
    listed = client.list_hosted_zones_by_name(DNSName=name)["HostedZones"]
    return [(str(z["Id"]), name) for z in listed if str(z["Name"]).lower() == name]


def _read(client: Any, zone_id: str, fqdn: str, rdtype: str) -> RecordSet | None:
    listed = client.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=fqdn, StartRecordType=rdtype, MaxItems="1"
    )["ResourceRecordSets"]
    for record in listed:
        if str(record["Name"]).lower() == fqdn and record["Type"] == rdtype:
            return dict(record)
    return None


def _change(client: Any, zone_id: str, changes: list[dict[str, Any]]) -> str | None:
    """The change's id; None if our DELETE no longer matched (the record changed since read)."""
    try:
        info = client.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={"Comment": "ha-orchestrator redirect", "Changes": changes},
        )["ChangeInfo"]
    except botocore_exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "InvalidChangeBatch" and RACED in str(error.get("Message")):
            return None
        raise
    return str(info["Id"])


def _status(client: Any, change_id: str) -> str:
    return str(client.get_change(Id=change_id)["ChangeInfo"]["Status"])
