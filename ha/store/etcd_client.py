"""One etcd cluster seen through several members: the only place that talks to aetcd directly.

aetcd connects to one host:port. ``EtcdClient.call`` runs an operation on the member that last
answered and, when that member cannot be reached (refused, timed out, no leader), on the next one,
each member once per call. Every aetcd and gRPC error becomes a StoreError here and nowhere else::

    StoreError
    ├── EtcdUnavailable   no member could carry out the operation (down, cut off, no quorum)
    └── NotLeader         a write conditional on our leadership found it gone

A write that timed out may still have been applied: callers make their writes safe to repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import aetcd.rpc
import aetcd.utils

from ha.errors import StoreError
from ha.store.etcd_target import EtcdTarget
from ha.tasks import stop_if_cancelled

T = TypeVar("T")

DEFAULT_TIMEOUT = 2.0
# A member that comes back is retried within a second, not after gRPC's default backoff (2 min);
# and each connection keeps its own backoff state (gRPC shares it between channels by default, so
# a new client would inherit the old ones' "that member is down").
CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.use_local_subchannel_pool": 1,
}
UNREACHABLE_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")
# etcd's "require leader" metadata: a member cut off from the leader refuses at once ("no leader")
# instead of making us wait for the timeout, and ends watches rather than leave them silent.
REQUIRE_LEADER = (("hasleader", "true"),)


class EtcdUnavailable(StoreError):
    """No member of the etcd cluster could carry out the operation."""


class NotLeader(StoreError):
    """A write conditional on our leadership was refused: another instance may lead now."""


class EtcdClient:
    """A connection to every member (made lazily), and the member that answered last."""

    def __init__(self, target: EtcdTarget, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = target
        self.timeout = timeout
        self._clients: dict[int, Any] = {}
        self._current = 0
        self._closed = False

    @property
    def current(self) -> str:
        """The member that answered last, as host:port."""
        host, port = self.target.endpoints[self._current]
        return f"{host}:{port}"

    async def call(
        self,
        what: str,
        operation: Callable[[Any], Awaitable[T]],
        *,
        timeout: float | None = None,
    ) -> T:
        """Run ``operation(aetcd_client)`` on a member that can; ``what`` names it in errors."""
        if self._closed:
            raise EtcdUnavailable(f"cannot {what}: the etcd client is closed")
        count = len(self.target.endpoints)
        failures: list[str] = []
        for attempt in range(count):
            index = (self._current + attempt) % count
            member = "{}:{}".format(*self.target.endpoints[index])
            try:
                # Not wait_for: on Python 3.11 it can swallow our cancellation (gh-86296).
                async with asyncio.timeout(timeout or self.timeout):
                    result = await operation(self._client(index))
            except (
                aetcd.ClientError,
                aetcd.rpc.RpcError,
                aetcd.rpc.BaseError,
                TimeoutError,
            ) as exc:
                if not _unreachable(exc):
                    raise StoreError(f"cannot {what}: etcd {member}: {_say(exc)}") from exc
                failures.append(f"{member}: {_say(exc)}")
            except asyncio.CancelledError:
                stop_if_cancelled()  # we are cancelled
                failures.append(f"{member}: the call was cancelled")  # by gRPC: channel closed
            else:
                self._current = index
                return result
        raise EtcdUnavailable(f"cannot {what}: {'; '.join(failures)}")

    async def range(
        self, start: bytes, end: bytes, *, limit: int, what: str
    ) -> tuple[list[tuple[bytes, bytes]], bool]:
        """Keys in [start, end) in key order, at most ``limit``: (key, value) pairs and whether
        more follow. aetcd's own range has no limit, so this sends the request itself."""

        async def fetch(client: Any) -> tuple[list[tuple[bytes, bytes]], bool]:
            await client.connect()
            request = aetcd.rpc.RangeRequest(key=start, range_end=end, limit=limit)
            reply = await client.kvstub.Range(request, metadata=client.metadata)
            return [(kv.key, kv.value) for kv in reply.kvs], bool(reply.more)

        return await self.call(what, fetch)

    async def watch_once(self, key: bytes, *, after: int, wait: float) -> tuple[bool, int] | None:
        """The first change of ``key`` after revision ``after``: (deleted, create revision of the
        key now), or None when nothing changed within ``wait`` seconds. One watch stream per call,
        cancelled on return (aetcd's shared watcher hands stream errors back as events)."""

        async def watch(client: Any) -> tuple[bool, int] | None:
            await client.connect()
            create = aetcd.rpc.WatchCreateRequest(key=key, start_revision=after + 1)
            done = asyncio.Event()

            async def requests() -> Any:
                yield aetcd.rpc.WatchRequest(create_request=create)
                await done.wait()  # closing our side would end the watch

            stream = aetcd.rpc.WatchStub(client.channel).Watch(requests(), metadata=REQUIRE_LEADER)
            try:
                async with asyncio.timeout(wait):
                    async for reply in stream:
                        if reply.canceled:  # compacted past ``after``: report a change, reread
                            return True, 0
                        for event in reply.events:
                            deleted = event.type == aetcd.rpc.Event.EventType.DELETE
                            return deleted, int(event.kv.create_revision)
            except TimeoutError:
                return None
            finally:
                done.set()
                stream.cancel()
            raise aetcd.ConnectionFailedError("the watch stream ended")

        return await self.call("watch a key", watch, timeout=wait + self.timeout)

    async def members(self) -> list[tuple[str, list[str]]]:
        """The etcd cluster's members: (name, client URLs)."""

        async def fetch(client: Any) -> list[tuple[str, list[str]]]:
            return [(m.name, list(m.client_urls)) async for m in client.members()]

        return await self.call("list the etcd members", fetch)

    async def close(self) -> None:
        """Close every connection; later calls fail with EtcdUnavailable. Idempotent."""
        self._closed = True
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    def _client(self, index: int) -> Any:
        if index not in self._clients:
            host, port = self.target.endpoints[index]
            client = aetcd.Client(host=host, port=port, options=CHANNEL_OPTIONS)
            client.metadata = REQUIRE_LEADER  # aetcd sends it with every request
            self._clients[index] = client
        return self._clients[index]


def _unreachable(exc: BaseException) -> bool:
    """Whether another member might do what this one could not."""
    if isinstance(exc, TimeoutError | aetcd.ConnectionFailedError | aetcd.ConnectionTimeoutError):
        return True
    if isinstance(exc, aetcd.rpc.AioRpcError):
        return str(exc.code().name) in UNREACHABLE_CODES
    return False


def _say(exc: BaseException) -> str:
    if isinstance(exc, aetcd.rpc.AioRpcError):
        return str(exc.details())
    return str(exc) or type(exc).__name__


def prefix_end(prefix: bytes) -> bytes:
    """The end of the key range that holds every key starting with ``prefix``."""
    return bytes(aetcd.utils.prefix_range_end(prefix))
