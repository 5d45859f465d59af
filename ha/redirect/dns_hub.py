"""What the DNS redirectors of one event loop share: a query client per server, an update batcher
per (server, zone), a serial watch per (server, zone), and the authoritative servers of each zone,
looked up once for everyone.

Sharing is what turns a group failover of many scenarios in one zone into few UPDATE messages
and one UDP socket per server. Everything here belongs to one event loop (futures, tasks,
sockets), so :func:`shared_hub` keeps one hub per running loop; tests and the benchmark make
their own (``DnsHub(window=0, max_changes=1)`` sends one message per change).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable

import dns.name

from ha.redirect.dns_client import QueryClient, Server
from ha.redirect.dns_config import TsigConfig
from ha.redirect.dns_serial import SerialWatch
from ha.redirect.dns_update import MAX_CHANGES, WINDOW, UpdateBatcher

SERVERS_FOR = 60.0  # seconds a zone's looked-up server list is reused

Lookup = Callable[[], Awaitable[list[Server]]]


class DnsHub:
    def __init__(self, *, window: float = WINDOW, max_changes: int = MAX_CHANGES) -> None:
        self.window = window
        self.max_changes = max_changes
        self._clients: dict[tuple[str, int], QueryClient] = {}
        self._batchers: dict[Hashable, UpdateBatcher] = {}
        self._watches: dict[Hashable, SerialWatch] = {}
        self._servers: dict[Hashable, tuple[float, asyncio.Task[list[Server]]]] = {}

    def client(self, address: str, port: int) -> QueryClient:
        key = (address, port)
        if key not in self._clients:
            self._clients[key] = QueryClient(address, port)
        return self._clients[key]

    def batcher(
        self, server: Server, tsig: TsigConfig | None, zone: dns.name.Name
    ) -> UpdateBatcher:
        key = (server, tsig, zone)
        if key not in self._batchers:
            self._batchers[key] = UpdateBatcher(
                server, tsig, zone, window=self.window, max_changes=self.max_changes
            )
        return self._batchers[key]

    def watch(self, server: Server, zone: dns.name.Name) -> SerialWatch:
        key = (server.address, server.port, zone)
        if key not in self._watches:
            client = self.client(server.address, server.port)
            self._watches[key] = SerialWatch(client, server, zone)
        return self._watches[key]

    @property
    def messages(self) -> int:
        """UPDATE messages sent so far, over all zones and servers."""
        return sum(batcher.messages for batcher in self._batchers.values())

    async def servers(self, key: Hashable, lookup: Lookup) -> list[Server]:
        """``lookup()``'s result, shared by every caller with the same key for SERVERS_FOR
        seconds; callers that arrive while it runs wait for the same lookup. Failures are not
        kept."""
        now = time.monotonic()
        cached = self._servers.get(key)
        if cached is None or cached[0] < now:
            cached = (now + SERVERS_FOR, asyncio.ensure_future(lookup()))
            self._servers[key] = cached
        task = cached[1]
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._servers.get(key) == cached:
                del self._servers[key]
            raise


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DnsHub]
_hubs = weakref.WeakKeyDictionary()


def shared_hub() -> DnsHub:
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = DnsHub()
    return hub
