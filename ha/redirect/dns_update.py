"""Batched, compare-and-set RFC 2136 updates to one zone on one server.

Each :class:`Change` replaces one record set with one value, on the condition (an update
*prerequisite*) that the set still holds exactly what the caller knows it to hold (``expect``:
read, or last written), or unconditionally (``expect=None``, when forcing).

Changes from many callers (the scenarios of a group failover) that arrive within ``window``
seconds of each other, or while the previous message is in flight, go out in one UPDATE. The
protocol makes that safe but coarse: a server checks every prerequisite of a message before it
changes anything and applies all of the message or none of it, and its answer (NXRRSET, ...) does
not say which prerequisite failed. So when a message of several changes fails on a
prerequisite, it is split in two and each half sent again, down to the single change whose
prerequisite no longer holds: that caller alone learns "not applied" (and reads the record
again), every other change still applies, each exactly once. A change whose record set is
already in the message waits for the next one (two changes to one set in one message would
depend on their order). Any other failure (wrong key, REFUSED, server down) concerns the whole
zone: every caller in the message gets it, naming its own record.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.update

from ha.errors import RedirectError
from ha.redirect.dns_client import (
    FAILURES,
    Server,
    explain,
    explain_update_rcode,
    rdata,
    send_update,
)
from ha.redirect.dns_config import TsigConfig
from ha.redirect.dns_tsig import KeyFileError

WINDOW = 0.002  # seconds a change waits for others to join its message
MAX_CHANGES = 1000  # per message; a message that does not fit in 64 KiB is split anyway

PREREQUISITE_FAILED = frozenset(
    {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}
)


@dataclass(frozen=True, slots=True)
class Change:
    """Replace the ``name``/``rdtype`` record set with ``value`` if it holds exactly ``expect``."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    ttl: int
    value: str  # canonical text (dns_client.normalize)
    expect: frozenset[str] | None  # None: unconditional; empty: the set must not exist

    @property
    def record(self) -> str:
        return f"{self.name.to_text(omit_final_dot=True)} {dns.rdatatype.to_text(self.rdtype)}"


Pending = tuple[Change, "asyncio.Future[bool]"]


class UpdateBatcher:
    """Sends the changes to one zone on one server; one per event loop (see dns_hub)."""

    def __init__(
        self,
        server: Server,
        tsig: TsigConfig | None,
        zone: dns.name.Name,
        *,
        window: float = WINDOW,
        max_changes: int = MAX_CHANGES,
    ) -> None:
        self.server = server
        self.tsig = tsig
        self.zone = zone
        self.window = window
        self.max_changes = max_changes
        self.messages = 0  # UPDATE messages sent (tests and the benchmark count them)
        self._pending: list[Pending] = []
        self._sender: asyncio.Task[None] | None = None

    async def apply(self, change: Change) -> bool:
        """True once the server applied ``change``; False if its prerequisite did not hold (the
        record changed since it was read: nothing was changed). Raises RedirectError naming the
        server, zone and record. Cancelling the caller withdraws a change not yet sent."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((change, future))
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_pending())
        return await future

    async def _send_pending(self) -> None:
        while self._pending:
            if self.window:
                await asyncio.sleep(self.window)
            batch = self._take()
            try:
                await self._settle(batch)
            except Exception as exc:  # a bug: let every caller see it rather than hang
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    def _take(self) -> list[Pending]:
        """The next message's changes: at most max_changes, one per record set."""
        batch: list[Pending] = []
        later: list[Pending] = []
        sets: set[tuple[dns.name.Name, dns.rdatatype.RdataType]] = set()
        for change, future in self._pending:
            if future.done():
                continue
            key = (change.name, change.rdtype)
            if key in sets or len(batch) >= self.max_changes:
                later.append((change, future))
            else:
                sets.add(key)
                batch.append((change, future))
        self._pending = later
        return batch

    async def _settle(self, batch: list[Pending]) -> None:
        batch = [(change, future) for change, future in batch if not future.done()]
        if not batch:
            return
        try:
            message = self._message([change for change, _ in batch])
            rcode = await send_update(
                message, self.server.address, self.server.port, self.server.timeout
            )
        except dns.exception.TooBig:
            if len(batch) == 1:
                self._fail(batch, "the change does not fit in one DNS message")
            else:
                await self._split(batch)
            return
        except KeyFileError as exc:
            self._fail(batch, str(exc))
            return
        except FAILURES as exc:
            self.messages += 1
            self._fail(batch, explain(exc, self.server.timeout), exc)
            return
        self.messages += 1
        if rcode == dns.rcode.NOERROR:
            for _, future in batch:
                if not future.done():
                    future.set_result(True)
        elif rcode in PREREQUISITE_FAILED and len(batch) > 1:
            await self._split(batch)
        elif rcode in PREREQUISITE_FAILED:
            if not batch[0][1].done():
                batch[0][1].set_result(False)
        else:
            self._fail(batch, explain_update_rcode(rcode))

    async def _split(self, batch: list[Pending]) -> None:
        half = len(batch) // 2
        await self._settle(batch[:half])
        await self._settle(batch[half:])

    def _message(self, changes: list[Change]) -> dns.update.UpdateMessage:
        key = self.tsig.key() if self.tsig is not None else None
        message = dns.update.UpdateMessage(
            self.zone, keyring=key.signer() if key is not None else None
        )
        for change in changes:
            new = rdata(change.rdtype, change.value)
            if change.expect:
                held = [rdata(change.rdtype, value) for value in sorted(change.expect)]
                message.present(change.name, *held)
            elif change.expect is not None:
                message.absent(change.name, change.rdtype)
            message.replace(change.name, change.ttl, new)
        return message

    def _fail(self, batch: list[Pending], reason: str, cause: BaseException | None = None) -> None:
        zone = self.zone.to_text(omit_final_dot=True)
        for change, future in batch:
            if future.done():
                continue
            error = RedirectError(
                f"cannot update {change.record} in zone {zone} at {self.server.label}: {reason}"
            )
            error.__cause__ = cause
            future.set_exception(error)
