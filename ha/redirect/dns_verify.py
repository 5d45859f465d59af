"""Asking the authoritative servers of a zone what they answer, and waiting until each serves a
change (its zone serial has caught up with the primary's: dns_serial).

Which servers: the ``verify.servers`` of the redirect entry (names under ``dns_servers``), or by
default the zone's NS set, read from the primary (the server updates go to), each name resolved
through the primary (in-zone names) or else the system resolver, and asked on ``verify.port``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import dns.asyncresolver
import dns.name
import dns.rdatatype

from ha.duration import format_duration
from ha.errors import RedirectError
from ha.redirect.dns_client import FAILURES, Answer, Server, answer_of, explain
from ha.redirect.dns_config import DnsServerConfig, VerifyConfig
from ha.redirect.dns_hub import DnsHub

FIRST_POLL = 0.01  # seconds between two questions to a server that does not answer it yet
LAST_POLL = 0.5  # ... doubling up to this
MIN_QUERY_TIMEOUT = 0.1  # a question asked at the deadline still gets this long


async def ask(
    hub: DnsHub, server: Server, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> Answer:
    """What ``server`` answers for the record now. Raises the errors in FAILURES."""
    response = await hub.client(server.address, server.port).query(name, rdtype, server.timeout)
    return answer_of(response, name, rdtype)


async def authoritative_servers(
    hub: DnsHub,
    primary: Server,
    zone: dns.name.Name,
    verify: VerifyConfig,
    servers: Mapping[str, DnsServerConfig],
) -> list[Server]:
    """The servers that must answer the new address. Raises RedirectError."""
    if verify.servers is not None:
        return [
            Server(name, servers[name].address, servers[name].port, servers[name].timeout)
            for name in verify.servers
        ]
    return await hub.servers(
        ("ns", primary, zone, verify.port), lambda: _ns_set(hub, primary, zone, verify.port)
    )


async def _ns_set(hub: DnsHub, primary: Server, zone: dns.name.Name, port: int) -> list[Server]:
    shown = zone.to_text(omit_final_dot=True)
    try:
        ns = await ask(hub, primary, zone, dns.rdatatype.NS)
    except FAILURES as exc:
        raise RedirectError(
            f"cannot read the NS set of zone {shown} at {primary.label}:"
            f" {explain(exc, primary.timeout)}"
        ) from exc
    if not ns.values:
        raise RedirectError(f"zone {shown} has no NS records at {primary.label}")
    found: list[Server] = []
    for target in sorted(ns.values):
        label = target.rstrip(".")
        for address in await _addresses(hub, primary, dns.name.from_text(target)):
            found.append(Server(label, address, port, primary.timeout))
    return found


async def _addresses(hub: DnsHub, primary: Server, target: dns.name.Name) -> list[str]:
    addresses: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            addresses += sorted((await ask(hub, primary, target, rdtype)).values)
        except FAILURES:
            continue  # not in the primary's zones: the system resolver may know it
    if addresses:
        return addresses
    try:
        answer = await dns.asyncresolver.resolve_name(target, lifetime=primary.timeout)
    except FAILURES as exc:
        raise RedirectError(
            f"cannot find the address of name server {target.to_text(omit_final_dot=True)}:"
            f" {explain(exc, primary.timeout)}"
        ) from exc
    return sorted(answer.addresses())


async def wait_until_answered(
    hub: DnsHub,
    primary: Server,
    servers: list[Server],
    zone: dns.name.Name,
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    value: str,
    deadline: float,
) -> None:
    """Return once every server serves the change; RedirectError naming each server that does
    not within ``deadline`` seconds, with what it answers instead.

    Each server is awaited until its serial reaches the primary's (dns_serial): zone transfers
    move whole versions, so it then serves the change. Without a serial (the primary does not
    answer for the SOA), each server is asked for the record (with backoff) until it answers
    ``value`` or time is up; so is a server whose serial did not arrive in time, to say what it
    answers instead.
    """
    give_up = asyncio.get_running_loop().time() + deadline
    serial: int | None = None
    with contextlib.suppress(*FAILURES):  # no serial: ask the record itself until give_up
        serial = await hub.watch(primary, zone).fresh()
    lagging = await asyncio.gather(
        *(_answers(hub, server, zone, serial, name, rdtype, value, give_up) for server in servers)
    )
    late = [f"{server.label} {seen}" for server, seen in zip(servers, lagging, strict=True) if seen]
    if late:
        record = f"{name.to_text(omit_final_dot=True)} {dns.rdatatype.to_text(rdtype)}"
        raise RedirectError(
            f"{record} was set to {value}, but after {format_duration(deadline)} " + "; ".join(late)
        )


async def _answers(
    hub: DnsHub,
    server: Server,
    zone: dns.name.Name,
    serial: int | None,
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    value: str,
    give_up: float,
) -> str | None:
    """None once ``server`` serves the change (its serial reached ``serial``, the primary's
    after the update) or, with no serial to go by, answers ``value``; what it answers instead if
    it does not in time. The record itself is read back by the runbook's verify step."""
    if serial is not None and await hub.watch(server, zone).reach(serial, give_up):
        return None
    loop = asyncio.get_running_loop()
    client = hub.client(server.address, server.port)
    pause = FIRST_POLL
    while True:
        timeout = min(server.timeout, max(give_up - loop.time(), MIN_QUERY_TIMEOUT))
        try:
            answer = answer_of(await client.query(name, rdtype, timeout), name, rdtype)
        except FAILURES as exc:
            seen = f"does not answer: {explain(exc, server.timeout)}"
        else:
            if answer.values == {value}:
                return None
            seen = f"still answers {answer.show()}"
        left = give_up - loop.time()
        if left <= 0:
            return seen
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, LAST_POLL)
