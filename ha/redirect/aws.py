"""Redirection inside an AWS VPC: users follow an address that moves between two instances.

- :class:`ElasticIpRedirector` re-associates an Elastic IP (AllowReassociation).
- :class:`SecondaryIpRedirector` moves a secondary private IP between two network interfaces.
- :class:`EniRedirector` detaches a network interface (ENI) and attaches it to the other instance.
- :class:`RouteRedirector` points a route table entry (a VIP routed in the VPC) at an ENI; the
  ENIs need source/destination checks turned off, which is the operator's to set.

Each side is an ENI, or an instance (id or Name tag) meaning its primary ENI. ``point_to`` reads
the API first (already there: nothing to do), acts, and reads back, and fails if the read-back
differs. ``current`` answers the address of the side the API shows, the replica's side looked
up first (production's instance may be gone after a failover), or a description of where the
address is when it is on neither side. Redirectors share their AWS provider's session; errors
are RedirectError (retried), or NotSupported when retrying cannot help (access denied).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ha.errors import RedirectError
from ha.redirect import Redirector, Target

if TYPE_CHECKING:  # the config models stay importable without boto3
    from providers.aws import AwsProvider

Response = dict[str, Any]

Side = Literal["production", "replica"]
S = TypeVar("S")  # what names a side: an Endpoint, or an instance


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Model):
    """One side: an ENI, or an instance's primary ENI."""

    instance: str | None = Field(None, min_length=1, description="instance id or Name tag")
    eni: str | None = Field(None, pattern=r"^eni-[0-9a-f]+$", description="network interface id")

    @model_validator(mode="after")
    def _exactly_one(self) -> Endpoint:
        if (self.instance is None) == (self.eni is None):
            raise ValueError("give exactly one of instance, eni")
        return self

    def __str__(self) -> str:
        return f"instance {self.instance}" if self.instance is not None else f"{self.eni}"


class _VpcConfig(_Model):
    provider: str = Field(min_length=1, description="name of an aws provider")
    production: Endpoint
    replica: Endpoint


class ElasticIpRedirectConfig(_VpcConfig):
    allocation_id: str = Field(pattern=r"^eipalloc-[0-9a-f]+$")


class SecondaryIpRedirectConfig(_VpcConfig):
    address: IPv4Address = Field(description="the secondary private IP that moves")


class RouteRedirectConfig(_VpcConfig):
    route_table_id: str = Field(pattern=r"^rtb-[0-9a-f]+$")
    destination_cidr: IPv4Network = Field(description="the routed VIP, e.g. 10.9.0.10/32")


class EniRedirectConfig(_Model):
    provider: str = Field(min_length=1, description="name of an aws provider")
    eni: str = Field(pattern=r"^eni-[0-9a-f]+$", description="the interface that moves")
    device_index: int = Field(1, ge=1, description="where it is attached on the instance")
    production: str = Field(min_length=1, description="instance id or Name tag")
    replica: str = Field(min_length=1, description="instance id or Name tag")


class _VpcRedirector(Redirector, Generic[S]):
    """Moves one thing (``what``) between the holders ``sides`` name: ENIs or instances.

    ``plan`` says what moving does, with ``{what}`` and ``{to}`` (the side) in it.
    """

    plan: ClassVar[str]

    def __init__(
        self, target: Target, provider: AwsProvider, what: str, sides: Mapping[Side, S]
    ) -> None:
        self.target = target
        self.api = provider.api
        self.what = what
        self.sides: Mapping[Side, S] = sides

    @abstractmethod
    async def _holder(self) -> str | None:
        """Where the thing is now, read from the API: an ENI (instance) id, or None."""

    @abstractmethod
    async def _resolve(self, side: Side) -> str:
        """The ENI (instance) id of ``side``."""

    @abstractmethod
    async def _move(self, to: str) -> None:
        """Move the thing to ``to``, an ENI (instance) id."""

    async def point_to(self, address: str) -> None:
        want = await self._resolve(self._side(address))
        if await self._holder() == want:
            return
        await self._move(want)
        after = await self._holder()
        if after != want:
            raise RedirectError(f"{self.what} is on {after or 'nothing'} after the move to {want}")

    async def current(self) -> str | None:
        holder = await self._holder()
        if holder is None:
            return f"{self.what} (on nothing)"
        if holder == await self._resolve("replica"):
            return self.target.replica
        if holder == await self._resolve("production"):
            return self.target.production
        return f"{self.what} on {holder}"

    def describe(self, address: str) -> str:
        if address not in (self.target.production, self.target.replica):
            return f"refuse to point {self.what} at {address}: neither production nor replica"
        side = self._side(address)
        plan = self.plan.format(what=self.what, to=self.sides[side])
        return f"{plan} (the {side}, {address}); read it back"

    def _side(self, address: str) -> Side:
        if address == self.target.replica:
            return "replica"
        if address == self.target.production:
            return "production"
        raise RedirectError(
            f"{address} is neither production ({self.target.production}) nor the replica "
            f"({self.target.replica}) of {self.target.scenario}"
        )

    async def _call(self, action: str, subject: str, **params: object) -> Response:
        return await self.api.call(action, subject, transient=RedirectError, **params)


class _EniSides(_VpcRedirector[Endpoint]):
    """Both sides are ENIs: given, or an instance's primary ENI (device index 0)."""

    async def _resolve(self, side: Side) -> str:
        endpoint = self.sides[side]
        if endpoint.eni is not None:
            return endpoint.eni
        assert endpoint.instance is not None
        instance = await self.api.instance(endpoint.instance, transient=RedirectError)
        for eni in instance.get("NetworkInterfaces", []):
            if eni.get("Attachment", {}).get("DeviceIndex") == 0:
                found: str = eni["NetworkInterfaceId"]
                return found
        raise RedirectError(f"instance {endpoint.instance} has no primary network interface")


def _endpoints(config: _VpcConfig) -> dict[Side, Endpoint]:
    return {"production": config.production, "replica": config.replica}


class ElasticIpRedirector(_EniSides):
    plan = "associate {what} with {to}"

    def __init__(
        self, target: Target, config: ElasticIpRedirectConfig, provider: AwsProvider
    ) -> None:
        super().__init__(target, provider, f"Elastic IP {config.allocation_id}", _endpoints(config))
        self.config = config

    async def _holder(self) -> str | None:
        allocation = self.config.allocation_id
        found = await self._call("DescribeAddresses", allocation, AllocationIds=[allocation])
        for address in found["Addresses"]:
            holder: str | None = address.get("NetworkInterfaceId") or None
            return holder
        return None

    async def _move(self, to: str) -> None:
        allocation = self.config.allocation_id
        await self._call(
            "AssociateAddress",
            allocation,
            AllocationId=allocation,
            NetworkInterfaceId=to,
            AllowReassociation=True,
        )


class SecondaryIpRedirector(_EniSides):
    """AssignPrivateIpAddresses with AllowReassignment moves the address on AWS; an endpoint
    that leaves it on the old ENI too (moto does) gets it unassigned there."""

    plan = "move {what} to {to}"

    def __init__(
        self, target: Target, config: SecondaryIpRedirectConfig, provider: AwsProvider
    ) -> None:
        super().__init__(target, provider, f"secondary IP {config.address}", _endpoints(config))
        self.config = config

    async def _holders(self) -> list[str]:
        """The ENIs that hold the address, in the replica's subnet (it must stay in one)."""
        replica = await self._resolve("replica")
        found = await self._call(
            "DescribeNetworkInterfaces", replica, NetworkInterfaceIds=[replica]
        )
        subnet = found["NetworkInterfaces"][0]["SubnetId"]
        pages = await self.api.pages(
            "DescribeNetworkInterfaces",
            subnet,
            transient=RedirectError,
            Filters=[{"Name": "subnet-id", "Values": [subnet]}],
        )
        address = str(self.config.address)
        return sorted(
            eni["NetworkInterfaceId"]
            for page in pages
            for eni in page["NetworkInterfaces"]
            if any(a["PrivateIpAddress"] == address for a in eni.get("PrivateIpAddresses", []))
        )

    async def _holder(self) -> str | None:
        return " and ".join(await self._holders()) or None

    async def _move(self, to: str) -> None:
        address = str(self.config.address)
        if to not in await self._holders():
            await self._call(
                "AssignPrivateIpAddresses",
                to,
                NetworkInterfaceId=to,
                PrivateIpAddresses=[address],
                AllowReassignment=True,
            )
        for other in await self._holders():
            if other != to:
                await self._call(
                    "UnassignPrivateIpAddresses",
                    other,
                    NetworkInterfaceId=other,
                    PrivateIpAddresses=[address],
                )


class RouteRedirector(_EniSides):
    """ReplaceRoute, or CreateRoute when the table has no route for the destination yet."""

    plan = "point {what} at {to}"

    def __init__(self, target: Target, config: RouteRedirectConfig, provider: AwsProvider) -> None:
        what = f"route {config.destination_cidr} in {config.route_table_id}"
        super().__init__(target, provider, what, _endpoints(config))
        self.config = config

    async def _route(self) -> Response | None:
        table = self.config.route_table_id
        found = await self._call("DescribeRouteTables", table, RouteTableIds=[table])
        cidr = str(self.config.destination_cidr)
        routes: list[Response] = found["RouteTables"][0].get("Routes", [])
        return next((r for r in routes if r.get("DestinationCidrBlock") == cidr), None)

    async def _holder(self) -> str | None:
        route = await self._route()
        return route.get("NetworkInterfaceId") if route is not None else None

    async def _move(self, to: str) -> None:
        exists = await self._route() is not None
        await self._call(
            "ReplaceRoute" if exists else "CreateRoute",
            self.config.route_table_id,
            RouteTableId=self.config.route_table_id,
            DestinationCidrBlock=str(self.config.destination_cidr),
            NetworkInterfaceId=to,
        )


class EniRedirector(_VpcRedirector[str]):
    """Both sides are instances: the ENI is detached (not forced) and attached to the other."""

    plan = "move {what} to instance {to}"

    def __init__(self, target: Target, config: EniRedirectConfig, provider: AwsProvider) -> None:
        sides: dict[Side, str] = {"production": config.production, "replica": config.replica}
        super().__init__(target, provider, f"network interface {config.eni}", sides)
        self.config = config

    async def _resolve(self, side: Side) -> str:
        instance = await self.api.instance(self.sides[side], transient=RedirectError)
        found: str = instance["InstanceId"]
        return found

    async def _interface(self) -> Response:
        eni = self.config.eni
        found = await self._call("DescribeNetworkInterfaces", eni, NetworkInterfaceIds=[eni])
        interface: Response = found["NetworkInterfaces"][0]
        return interface

    async def _holder(self) -> str | None:
        attachment = (await self._interface()).get("Attachment") or {}
        holder: str | None = attachment.get("InstanceId")
        return holder

    async def _move(self, to: str) -> None:
        eni = self.config.eni
        attachment = (await self._interface()).get("Attachment") or {}
        if "AttachmentId" in attachment:
            await self._call("DetachNetworkInterface", eni, AttachmentId=attachment["AttachmentId"])
            await self.api.wait(
                "network_interface_available",
                eni,
                "detached",
                time.monotonic() + self.api.config.wait_timeout,
                transient=RedirectError,
                NetworkInterfaceIds=[eni],
            )
        await self._call(
            "AttachNetworkInterface",
            eni,
            NetworkInterfaceId=eni,
            InstanceId=to,
            DeviceIndex=self.config.device_index,
        )
