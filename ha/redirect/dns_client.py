"""Talking to one DNS server: queries (many in flight over one UDP socket), UPDATE messages (TCP),
and the one place where dnspython's and the network's errors become a sentence a user can act on.

A :class:`QueryClient` opens its UDP socket when the first query starts and closes it when the
last one ends, so nothing stays open between failovers. Queries are resent (UDP may drop) until
their deadline; a truncated answer is asked again over TCP.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncquery
import dns.entropy
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig

from ha.duration import format_duration

IN_FLIGHT = 64  # queries in flight per server: their answers fit in a socket's receive buffer
FIRST_RESEND = 0.2  # seconds before a query is sent again (then doubling)

Endpoint = tuple[asyncio.DatagramTransport, "_Protocol"]


@dataclass(frozen=True, slots=True)
class Server:
    """A DNS server to talk to, and how messages name it."""

    name: str  # its name under dns_servers, or in the zone's NS set
    address: str
    port: int
    timeout: float  # deadline of one exchange

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.name} ({host}:{self.port})"


class ServerError(Exception):
    """The server answered, but not for the zone (REFUSED, SERVFAIL, not authoritative)."""


FAILURES = (dns.exception.DNSException, OSError, TimeoutError, ServerError)
"""What talking to a DNS server may raise; :func:`explain` says what each means."""


def explain(exc: BaseException, timeout: float) -> str:
    """What went wrong, for a user: never the key's secret."""
    if isinstance(exc, dns.tsig.PeerBadSignature):
        return "BADSIG: the server rejects our TSIG signature (wrong secret for the key?)"
    if isinstance(exc, dns.tsig.PeerBadKey):
        return "BADKEY: the server does not know our TSIG key (wrong key name or algorithm?)"
    if isinstance(exc, dns.tsig.PeerBadTime):
        return "BADTIME: the server's clock and ours differ too much for TSIG"
    if isinstance(exc, dns.tsig.PeerError):
        return f"the server rejects our TSIG signature: {exc}"
    if isinstance(exc, dns.tsig.BadSignature | dns.tsig.BadKey | dns.message.UnknownTSIGKey):
        return "the server's answer fails our TSIG check (does it use another secret?)"
    if isinstance(exc, TimeoutError | dns.exception.Timeout):
        return f"no answer within {format_duration(timeout)} (server down or unreachable?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (server down?)"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    if isinstance(exc, ServerError):
        return str(exc)
    return f"bad answer: {exc}"


_UPDATE_RCODES = {
    dns.rcode.REFUSED: "REFUSED: the server does not allow this update in the zone"
    " (allow-update or update-policy does not grant it to our key)",
    dns.rcode.NOTAUTH: "NOTAUTH: the server is not authoritative for the zone"
    " (no such zone there?) or does not accept our key",
    dns.rcode.NOTZONE: "NOTZONE: the record is outside the zone",
    dns.rcode.SERVFAIL: "SERVFAIL: the server failed to apply the update (see its log)",
    dns.rcode.FORMERR: "FORMERR: the server could not parse the update",
    dns.rcode.NOTIMP: "NOTIMP: the server does not take dynamic updates",
}


def explain_update_rcode(rcode: dns.rcode.Rcode) -> str:
    return _UPDATE_RCODES.get(rcode, f"{dns.rcode.to_text(rcode)}: the update was not applied")


def normalize(rdtype: dns.rdatatype.RdataType, value: str) -> str:
    """The canonical text of an address (A, AAAA) or a host name (CNAME, NS), for comparing."""
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(ipaddress.ip_address(value))
    return dns.name.from_text(value).to_text().lower()


@functools.lru_cache(maxsize=4096)
def rdata(rdtype: dns.rdatatype.RdataType, value: str) -> dns.rdata.Rdata:
    """The record data (immutable, so shared: a group failover writes few distinct values)."""
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value)


@dataclass(frozen=True, slots=True)
class Answer:
    """One record set as a server gives it: the values (canonical text) and its TTL."""

    values: frozenset[str]
    ttl: int | None  # None: no such record

    def show(self) -> str:
        return ", ".join(sorted(self.values)) or "nothing"


def answer_of(
    response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> Answer:
    """The record set ``name``/``rdtype`` in an authoritative answer. Raises ServerError."""
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise ServerError(
            f"{dns.rcode.to_text(rcode)}: the server does not answer for the zone"
            " (not loaded there, or not authoritative?)"
        )
    if not response.flags & dns.flags.AA:
        raise ServerError("the server is not authoritative for the zone")
    rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
    if rrset is None:
        return Answer(frozenset(), None)
    return Answer(frozenset(normalize(rdtype, r.to_text()) for r in rrset), rrset.ttl)


async def send_update(
    message: dns.message.Message, address: str, port: int, timeout: float
) -> dns.rcode.Rcode:
    """Send one (signed) UPDATE over TCP; its rcode. Raises dns.exception.TooBig before sending
    when the message does not fit in one DNS message, and the errors in FAILURES."""
    response = await dns.asyncquery.tcp(message, address, timeout=timeout, port=port)
    return response.rcode()


@functools.lru_cache(maxsize=4096)
def _question(
    name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> tuple[dns.message.Message, bytes]:
    """A query and its wire form, built once per record: each send gets a fresh id."""
    query = dns.message.make_query(name, rdtype)
    return query, query.to_wire()


_ERRORS_WITHOUT_QUESTION = {
    dns.rcode.FORMERR,
    dns.rcode.SERVFAIL,
    dns.rcode.NOTIMP,
    dns.rcode.REFUSED,
}


def _answers(query: dns.message.Message, response: dns.message.Message) -> bool:
    """``response`` answers ``query`` (whose id was checked already): dnspython's is_response."""
    if not response.flags & dns.flags.QR or response.opcode() != query.opcode():
        return False
    if response.rcode() in _ERRORS_WITHOUT_QUESTION and not response.question:
        return True
    return response.question == query.question


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, tuple[dns.message.Message, asyncio.Future[dns.message.Message]]]
        self.waiting = {}

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        entry = self.waiting.get(int.from_bytes(data[:2], "big"))
        if entry is None:
            return
        query, future = entry
        try:
            response = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not an answer we can read: wait for the next one
        if _answers(query, response) and not future.done():
            future.set_result(response)

    def error_received(self, exc: Exception) -> None:
        self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("socket closed"))

    def _fail(self, exc: Exception) -> None:
        for _, future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)


class QueryClient:
    """Queries to one server over one UDP socket, up to IN_FLIGHT at once. One per event loop."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._endpoint: asyncio.Future[Endpoint] | None = None
        self._users = 0

    async def query(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float
    ) -> dns.message.Message:
        """The server's answer. Raises the errors in FAILURES.

        The query keeps the RD flag, as dig does: an authoritative server answers from its zones
        either way, and BIND (minimal-responses no-auth-recursive, its default) then leaves out
        the authority and additional sections, which halves the work of reading the answer.
        """
        query, wire = _question(name, rdtype)
        self._users += 1
        try:
            async with asyncio.timeout(timeout), self._slots:
                response = await self._exchange(query, wire)
        finally:
            self._users -= 1
            if self._users == 0:
                self._close()
        if response.flags & dns.flags.TC:
            response = await dns.asyncquery.tcp(query, self.address, timeout, self.port)
        return response

    async def _exchange(self, query: dns.message.Message, wire: bytes) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        transport, protocol = await self._open()
        qid = dns.entropy.random_16()
        while qid in protocol.waiting:
            qid = dns.entropy.random_16()
        wire = qid.to_bytes(2, "big") + wire[2:]
        future: asyncio.Future[dns.message.Message] = loop.create_future()
        protocol.waiting[qid] = (query, future)
        stop_resending = _resend(loop, transport, wire)
        try:
            transport.sendto(wire)
            return await future
        finally:
            stop_resending()
            del protocol.waiting[qid]

    async def _open(self) -> Endpoint:
        if self._endpoint is None:
            loop = asyncio.get_running_loop()
            self._endpoint = asyncio.ensure_future(
                loop.create_datagram_endpoint(_Protocol, remote_addr=(self.address, self.port))
            )
        endpoint = self._endpoint
        try:
            return await asyncio.shield(endpoint)
        except OSError:
            if self._endpoint is endpoint:
                self._endpoint = None
            raise

    def _close(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.add_done_callback(_close_endpoint)


def _close_endpoint(endpoint: asyncio.Future[Endpoint]) -> None:
    if not endpoint.cancelled() and endpoint.exception() is None:
        endpoint.result()[0].close()


def _resend(
    loop: asyncio.AbstractEventLoop, transport: asyncio.DatagramTransport, wire: bytes
) -> Callable[[], None]:
    """Send ``wire`` again after FIRST_RESEND, then after twice as long, ...; returns the stop."""
    handle: asyncio.TimerHandle | None = None

    def again(delay: float) -> None:
        nonlocal handle
        if not transport.is_closing():
            transport.sendto(wire)
        handle = loop.call_later(delay * 2, again, delay * 2)

    handle = loop.call_later(FIRST_RESEND, again, FIRST_RESEND)

    def stop() -> None:
        if handle is not None:
            handle.cancel()

    return stop
