"""The DNS redirector: RFC 2136 dynamic updates signed with TSIG (dnspython), compare-and-set,
batched per zone, and verified at every authoritative server.

``point_to(address)``:

1. know what the record set holds at the primary (the ``server`` updates go to): what this
   redirector last read or wrote there (``prepare()`` reads it while production runs), else read
   it now. A set that already holds exactly ``address`` is read again to be sure (idempotent:
   nothing is sent);
2. if it holds one of the scenario's own addresses (production or replica: what the orchestrator
   writes), replace it on the condition that it still holds exactly that (an update
   *prerequisite*, checked by the server: compare-and-set). If what we knew was stale, the
   prerequisite fails, nothing changes, and the set is read and judged again. Anything else was
   changed behind our back: reported, not overwritten, unless ``force``. The change goes out with
   those of other scenarios in the same zone (dns_update says how each keeps its prerequisite);
3. wait until every authoritative server serves the change (its zone serial reached the
   primary's: dns_verify), within ``verify.deadline``; past it, RedirectError names each server
   that lags and what it answers. ``current()`` (the runbook's verify step) reads the record
   back at each.

Knowing the set before a failover is what lets a group failover send all its changes at once,
in one UPDATE, without first asking about each record.

Every error is a RedirectError naming the server, the zone and the record. A stopped server
fails within the server's ``timeout``, so that the runbook step can retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import dns.rdatatype

from ha.errors import RedirectError
from ha.redirect import Redirector, Target
from ha.redirect.dns_client import FAILURES, Answer, Server, explain, normalize
from ha.redirect.dns_config import DnsRedirectConfig, DnsServerConfig, problems, record_type
from ha.redirect.dns_hub import DnsHub, shared_hub
from ha.redirect.dns_update import Change, UpdateBatcher
from ha.redirect.dns_verify import ask, authoritative_servers, wait_until_answered

ATTEMPTS = 5  # reads and conditional updates before giving up on a record that keeps changing


class DnsRedirector(Redirector):
    def __init__(
        self,
        target: Target,
        config: DnsRedirectConfig,
        servers: Mapping[str, DnsServerConfig],
        *,
        hub: DnsHub | None = None,
    ) -> None:
        errors = problems(config, target, servers)
        if errors:
            raise ValueError("; ".join(f"{path}: {message}" for path, message in errors))
        self.target = target
        self.config = config
        self.servers = dict(servers)
        self.server = servers[config.server]
        self.primary = Server(
            config.server, self.server.address, self.server.port, self.server.timeout
        )
        self.zone = config.origin()
        self.name = config.fqdn()
        self.type = record_type(config.type, target)
        self.rdtype = dns.rdatatype.from_text(self.type)
        self.record = f"{self.name.to_text(omit_final_dot=True)} {self.type}"  # in every message
        self.ours = {
            normalize(self.rdtype, target.production): target.production,
            normalize(self.rdtype, target.replica): target.replica,
        }
        self._hub = hub
        self._known: Answer | None = None  # the record at the primary, as last read or written
        self._replaced: tuple[str, int | None] | None = None  # value set, TTL of the one before

    @property
    def where(self) -> str:
        return f"{self.record} in zone {self.config.zone} at {self.primary.label}"

    def describe(self, address: str) -> str:
        ttl = self._known.ttl if self._known is not None else None
        if self._replaced is not None and self._replaced[0] == self._canonical(address):
            ttl = self._replaced[1]
        held = "until its TTL runs out" if ttl is None else f"up to {ttl}s"
        return (
            f"{self.record} -> {address} in zone {self.config.zone} at {self.config.server}"
            f" (ttl {self.config.ttl}s: clients may hold the old answer {held})"
        )

    async def point_to(self, address: str) -> None:
        value = self._value(address)
        hub = self._hub or shared_hub()
        held = self._known
        for _ in range(ATTEMPTS):
            if held is None or not self._ours(held) or held.values == {value} or self.config.force:
                held = await self._read(hub)
                if held.values == {value}:
                    break
                if not self.config.force and not self._ours(held):
                    raise RedirectError(self._changed_behind_our_back(held))
            expect = None if self.config.force else held.values
            change = Change(self.name, self.rdtype, self.config.ttl, value, expect)
            if await self._batcher(hub).apply(change):
                self._replaced = (value, held.ttl)
                self._known = Answer(frozenset({value}), self.config.ttl)
                break
            held = None  # it changed since we knew it: read it again
        else:
            raise RedirectError(f"{self.where}: the record kept changing while we updated it")
        servers = await self._authorities(hub)
        await wait_until_answered(
            hub,
            self.primary,
            servers,
            self.zone,
            self.name,
            self.rdtype,
            value,
            self.config.verify.deadline,
        )

    async def current(self) -> str | None:
        """What every authoritative server answers; RedirectError if they disagree, if one cannot
        be asked, or if there is no such record."""
        hub = self._hub or shared_hub()
        servers = await self._authorities(hub)
        answers = await asyncio.gather(*(self._ask(hub, server) for server in servers))
        if len({answer.values for answer in answers}) > 1:
            said = "; ".join(
                f"{server.label} answers {answer.show()}"
                for server, answer in zip(servers, answers, strict=True)
            )
            raise RedirectError(f"{self.record}: the authoritative servers disagree: {said}")
        values = answers[0].values if answers else frozenset()
        if not values:
            raise RedirectError(f"{self.record}: no such record at {servers[0].label}")
        return ", ".join(sorted(self.ours.get(value, value) for value in values))

    async def prepare(self) -> str | None:
        """Get ready for a failover while production is active: read the record (so that
        point_to can send its conditional update at once, and the journal knows the TTL clients
        may hold), and lower the TTL of production's record to ``prelower_ttl`` if configured.

        A journal line when it lowered the TTL; None when there was nothing to change (no
        prelower_ttl, the TTL is already that low, or the record does not hold production's
        address alone). Idempotent; one query when there is nothing to change. Raises
        RedirectError.
        """
        hub = self._hub or shared_hub()
        held = await self._read(hub)
        lower = self.config.prelower_ttl
        production = self._value(self.target.production)
        if lower is None or held.values != {production} or held.ttl is None or held.ttl <= lower:
            return None
        change = Change(self.name, self.rdtype, lower, production, held.values)
        if not await self._batcher(hub).apply(change):
            self._known = None  # changed since read: the next call looks again
            return None
        self._known = Answer(held.values, lower)
        return (
            f"{self.record} -> {self.target.production} in zone {self.config.zone}"
            f" at {self.config.server}: TTL lowered"
            f" from {held.ttl}s to {lower}s (after {held.ttl}s, clients follow a failover"
            f" within {lower}s)"
        )

    async def show(self) -> list[str]:
        """One line per server (the primary, then the authoritative ones): what it answers now."""
        hub = self._hub or shared_hub()
        lines: list[str] = []
        try:
            servers = await self._authorities(hub)
        except RedirectError as exc:
            servers, lines = [], [f"{self.record}: {exc}"]
        if all((s.address, s.port) != (self.primary.address, self.primary.port) for s in servers):
            servers = [self.primary, *servers]
        for server in servers:
            try:
                answer = await ask(hub, server, self.name, self.rdtype)
            except FAILURES as exc:
                lines.append(f"{self.record} at {server.label}: {explain(exc, server.timeout)}")
                continue
            ttl = "no such record" if answer.ttl is None else f"ttl {answer.ttl}s"
            lines.append(f"{self.record} at {server.label}: {answer.show()} ({ttl})")
        return lines

    def _canonical(self, address: str) -> str | None:
        try:
            return normalize(self.rdtype, address)
        except ValueError:
            return None

    def _value(self, address: str) -> str:
        value = self._canonical(address)
        if value is None:
            raise RedirectError(f"{self.where}: a {self.type} record cannot point at {address}")
        return value

    def _ours(self, held: Answer) -> bool:
        return len(held.values) == 1 and held.values <= self.ours.keys()

    def _changed_behind_our_back(self, held: Answer) -> str:
        now = f"holds {held.show()}" if held.values else "does not exist"
        return (
            f"{self.where} {now}, not {self.target.production} (production) or"
            f" {self.target.replica} (replica): it was changed behind our back;"
            " left as it is (set force: true to overwrite it)"
        )

    async def _read(self, hub: DnsHub) -> Answer:
        try:
            self._known = await ask(hub, self.primary, self.name, self.rdtype)
            return self._known
        except FAILURES as exc:
            raise RedirectError(
                f"cannot read {self.where}: {explain(exc, self.primary.timeout)}"
            ) from exc

    async def _ask(self, hub: DnsHub, server: Server) -> Answer:
        try:
            return await ask(hub, server, self.name, self.rdtype)
        except FAILURES as exc:
            raise RedirectError(
                f"cannot read {self.record} at {server.label}: {explain(exc, server.timeout)}"
            ) from exc

    async def _authorities(self, hub: DnsHub) -> list[Server]:
        return await authoritative_servers(
            hub, self.primary, self.zone, self.config.verify, self.servers
        )

    def _batcher(self, hub: DnsHub) -> UpdateBatcher:
        return hub.batcher(self.primary, self.server.tsig, self.zone)


async def show(
    target: Target,
    config: DnsRedirectConfig,
    servers: Mapping[str, DnsServerConfig],
) -> list[str]:
    """For ``ha dns show NAME``: what each server answers now for one redirect entry."""
    return await DnsRedirector(target, config, servers).show()
