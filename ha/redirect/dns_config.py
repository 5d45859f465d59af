"""Config models of DNS redirection (RFC 2136): the servers updates go to, and one redirect entry.

``dns_servers`` (top level) names each server once::

    dns_servers:
      lab: {address: 127.0.0.1, port: 5354, tsig: {name: ha-key, secret_file: tsig.key}}

and a scenario's ``redirect: - dns: {server: lab, zone: example.test, name: web01, ttl: 30}``
points at it. This module must not import ``ha.config`` (which imports it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Literal, Self

import dns.exception
import dns.name
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from checks.database import SecretFilePath
from ha.duration import Duration, parse_duration
from ha.redirect import Target
from ha.redirect.dns_tsig import Algorithm, TsigKey, load_key

RecordType = Literal["A", "AAAA", "CNAME"]
MAX_TTL = 2**31 - 1


def _whole_seconds(value: object) -> int:
    seconds = parse_duration(value)
    if seconds != int(seconds):
        raise ValueError("a TTL is a whole number of seconds")
    if seconds > MAX_TTL:
        raise ValueError(f"a TTL is at most {MAX_TTL} seconds")
    return int(seconds)


Ttl = Annotated[int, BeforeValidator(_whole_seconds)]
"""A DNS TTL: whole seconds, written as ``30``, ``30s`` or ``5m``."""


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _dns_name(value: str) -> str:
    try:
        dns.name.from_text(value)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{value!r} is not a valid DNS name: {exc}") from None
    return value


IpAddress = Annotated[str, AfterValidator(_ip_address)]
DnsName = Annotated[str, Field(min_length=1), AfterValidator(_dns_name)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TsigConfig(Model):
    name: str | None = Field(None, description="the key's name; default: the one in the key file")
    algorithm: Algorithm | None = Field(
        None, description="default: what the key file says, else hmac-sha256"
    )
    secret_file: SecretFilePath = Field(
        description="a BIND key file (tsig-keygen output) or a file holding the base64 secret"
    )

    @model_validator(mode="after")
    def _key_is_usable(self) -> Self:
        self.key()
        return self

    def key(self) -> TsigKey:
        """The key, read from its file now. Raises KeyFileError (a ValueError)."""
        return load_key(self.secret_file, self.name, self.algorithm)


class DnsServerConfig(Model):
    address: IpAddress = Field(description="IP address of the server")
    port: int = Field(53, ge=1, le=65535)
    tsig: TsigConfig | None = Field(
        None, description="key that signs updates (needed where updates are sent)"
    )
    timeout: Duration = Field(
        5.0, gt=0, description="deadline of one query or UPDATE exchange with this server"
    )


class VerifyConfig(Model):
    servers: list[str] | None = Field(
        None,
        min_length=1,
        description="names under dns_servers that must answer the new address;"
        " default: the zone's NS set",
    )
    port: int = Field(53, ge=1, le=65535, description="port the NS set's servers answer on")
    deadline: Duration = Field(
        30.0, gt=0, description="how long every server has to answer the new address"
    )


class DnsRedirectConfig(Model):
    server: str = Field(description="name of an entry under dns_servers: where updates go")
    zone: DnsName = Field(description="the zone the record lives in")
    name: DnsName = Field(
        description="the record, relative to the zone (or absolute, ending with a dot)"
    )
    type: RecordType | None = Field(
        None, description="default: A or AAAA by the scenario's address family"
    )
    ttl: Ttl = Field(60, description="TTL of the record written at redirect")
    prelower_ttl: Ttl | None = Field(
        None,
        description="while production is active, lower its record's TTL to this,"
        " so that clients follow a failover sooner",
    )
    verify: VerifyConfig = VerifyConfig()
    force: bool = Field(False, description="overwrite a record that someone else changed")

    @model_validator(mode="after")
    def _name_in_zone(self) -> Self:
        if not self.fqdn().is_subdomain(self.origin()):
            raise ValueError(f"name {self.name!r} is not inside zone {self.zone!r}")
        return self

    def origin(self) -> dns.name.Name:
        return dns.name.from_text(self.zone)

    def fqdn(self) -> dns.name.Name:
        return dns.name.from_text(self.name, self.origin())


def record_type(configured: RecordType | None, target: Target) -> RecordType:
    """The configured type, or A/AAAA by the family of production's address."""
    if configured is not None:
        return configured
    return "AAAA" if _family(target.production) == 6 else "A"


def problems(
    config: DnsRedirectConfig, target: Target, servers: Mapping[str, DnsServerConfig]
) -> list[tuple[str, str]]:
    """What no single field can see: (path inside the ``dns`` entry, message) for each problem."""
    found: list[tuple[str, str]] = []
    known = ", ".join(sorted(servers)) or "none"
    server = servers.get(config.server)
    if server is None:
        found.append(("server", f"unknown DNS server {config.server!r} (defined: {known})"))
    elif server.tsig is None:
        found.append(("server", f"DNS server {config.server!r} has no tsig key to sign updates"))
    for i, name in enumerate(config.verify.servers or []):
        if name not in servers:
            found.append(
                (f"verify.servers[{i}]", f"unknown DNS server {name!r} (defined: {known})")
            )
    return found + address_problems(config.type, target)


def address_problems(configured: RecordType | None, target: Target) -> list[tuple[str, str]]:
    """("type", message) for each of the scenario's addresses the record type cannot hold."""
    found: list[tuple[str, str]] = []
    kind = record_type(configured, target)
    sides = {"production": target.production, "replica": target.replica}
    for side, address in sides.items():
        family = _family(address)
        if kind == "CNAME" and family is not None:
            found.append(("type", f"a CNAME points at a host name, but {side} is {address}"))
        elif kind != "CNAME" and family != (4 if kind == "A" else 6):
            wanted = "an IPv4" if kind == "A" else "an IPv6"
            hint = "" if configured is not None or family is not None else " (or set type: CNAME)"
            found.append(("type", f"{kind} needs {wanted} address, but {side} is {address}{hint}"))
    return found


def _family(address: str) -> int | None:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None
