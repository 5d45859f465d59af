"""Zone serials, watched per server and zone, so that verification asks each record once.

After an update, a zone's serial at the primary is at least the serial of the version that holds
the change; a secondary serves that change once its own serial has reached it (zone transfers
move whole versions). So rather than every waiting record asking every server again and again, a
caller learns the primary's serial once (:meth:`SerialWatch.fresh`, one SOA question shared by
the callers that ask at the same moment) and then waits (:meth:`SerialWatch.reach`) on one
poller per server and zone, which asks that server's SOA with backoff for everyone. The records
themselves are then read back once each, by the runbook's verify step: what a user would see.

Serials compare by RFC 1982 (they wrap around at 2**32).
"""

from __future__ import annotations

import asyncio
import contextlib

import dns.name
import dns.rdataclass
import dns.rdatatype

from ha.redirect.dns_client import FAILURES, QueryClient, Server, ServerError, answer_of

FIRST_POLL = 0.01  # seconds between two SOA questions to a server that lags, doubling ...
LAST_POLL = 0.25  # ... up to this


def serial_reached(serial: int, target: int) -> bool:
    """``serial`` is ``target`` or later (RFC 1982 serial number arithmetic)."""
    return serial == target or 0 < (serial - target) % 2**32 < 2**31


class SerialWatch:
    """The SOA serial of one zone at one server. One per event loop (see dns_hub)."""

    def __init__(self, client: QueryClient, server: Server, zone: dns.name.Name) -> None:
        self.client = client
        self.server = server
        self.zone = zone
        self.seen: int | None = None  # the latest serial read (serials only grow)
        self._next: asyncio.Future[int] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._poller: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()

    async def fresh(self) -> int:
        """The serial, from a question sent after this call. Raises the errors in FAILURES."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._read_next())
        return await asyncio.shield(self._next)

    async def reach(self, target: int, give_up: float) -> bool:
        """True once the server's serial reaches ``target``; False at ``give_up`` (loop time)."""
        if self.seen is not None and serial_reached(self.seen, target):
            return True
        loop = asyncio.get_running_loop()
        waiter: tuple[int, asyncio.Future[None]] = (target, loop.create_future())
        self._waiters.append(waiter)
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll())
        else:
            self._woken.set()
        try:
            async with asyncio.timeout_at(give_up):
                await waiter[1]
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def _read_next(self) -> int:
        await asyncio.sleep(0)  # callers of this moment join this question ...
        self._next = None  # ... later ones need a question sent after theirs: the next one
        return await self._read()

    async def _read(self) -> int:
        response = await self.client.query(self.zone, dns.rdatatype.SOA, self.server.timeout)
        answer_of(response, self.zone, dns.rdatatype.SOA)  # raises if not authoritative
        soa = response.get_rrset(response.answer, self.zone, dns.rdataclass.IN, dns.rdatatype.SOA)
        if soa is None:
            raise ServerError("the zone has no SOA record there")
        serial: int = soa[0].serial
        if self.seen is None or serial_reached(serial, self.seen):
            self.seen = serial
        return serial

    async def _poll(self) -> None:
        pause = FIRST_POLL
        while self._waiters:
            with contextlib.suppress(*FAILURES):
                serial = await self._read()
                for target, future in self._waiters:
                    if serial_reached(serial, target) and not future.done():
                        future.set_result(None)
            self._waiters = [(t, f) for t, f in self._waiters if not f.done()]
            if not self._waiters:
                return
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._woken.wait()
            pause = FIRST_POLL if self._woken.is_set() else min(pause * 2, LAST_POLL)
