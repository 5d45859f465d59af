"""This instance's etcd lease: granted, kept alive, and trusted only while it surely lives.

etcd expires a lease TTL seconds after the last keep-alive it *received*, which is after we *sent*
it. So, on our monotonic clock, the lease surely lives until ``sent + TTL``; we trust it until
``sent + TTL - margin``, the margin covering the time between asking ``alive()`` and acting on it.
``alive()`` reads the clock on every call, so it turns False on time even when the keep-alive task
is stuck or dead; a timer also reports the lapse at once through ``on_change``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aetcd
import structlog

from ha.errors import StoreError
from ha.store.etcd_client import EtcdClient
from ha.tasks import stop_if_cancelled

log = structlog.get_logger("ha.coordination")

MIN_PAUSE = 0.1
TIMER_SLACK = 0.005  # asyncio may fire a timer up to one clock tick early


class LeaseKeeper:
    """Grants the lease, keeps it alive every TTL/3, grants a new one when etcd dropped it."""

    def __init__(
        self, client: EtcdClient, ttl: int, margin: float, on_change: Callable[[], None]
    ) -> None:
        if ttl < 2 or not 0 < margin < ttl:  # etcd raises shorter TTLs to 1.5 election timeouts
            raise ValueError(
                f"lease TTL {ttl} s and margin {margin} s: need TTL >= 2, 0 < margin < TTL"
            )
        self.client = client
        self.ttl = ttl
        self.margin = margin
        self.interval = ttl / 3
        self.id: int | None = None
        self._on_change = on_change
        self._valid_until = 0.0
        self._was_alive = False
        self._timer: asyncio.TimerHandle | None = None
        self._alive = asyncio.Event()
        self._failing = False

    def alive(self) -> bool:
        """Whether the lease surely lives now (and will for ``margin`` seconds more)."""
        return self.id is not None and _now() < self._valid_until

    def remaining(self) -> float:
        """Seconds until we stop trusting the lease; 0 when we do not."""
        return max(0.0, self._valid_until - _now()) if self.id is not None else 0.0

    async def wait_alive(self) -> None:
        await self._alive.wait()

    async def run(self) -> None:
        """Keep the lease alive until cancelled; never raises StoreError."""
        while True:
            stop_if_cancelled()
            started = _now()
            try:
                if self.id is None:
                    await self._grant()
                else:
                    await self._refresh()
            except StoreError as exc:
                if not self._failing:  # once per outage, not once per attempt
                    log.warning("lease keep-alive failing", error=str(exc), lease=self.id)
                self._failing = True
                await asyncio.sleep(MIN_PAUSE)
                continue
            if self._failing:
                log.info("lease keep-alive works again", lease=self.id)
            self._failing = False
            await asyncio.sleep(max(MIN_PAUSE, self.interval - (_now() - started)))

    async def revoke(self) -> None:
        """Give the lease back (its keys vanish at once); best effort: it expires anyway."""
        lease, self.id = self.id, None
        self._check()
        if lease is not None:
            with contextlib.suppress(StoreError):

                async def revoke(client: Any) -> None:
                    await client.revoke_lease(lease)

                await self.client.call("revoke the lease", revoke)

    async def _grant(self) -> None:
        sent = _now()

        async def grant(client: Any) -> Any:
            return await client.lease(self.ttl)

        lease = await self.client.call("grant a lease", grant, timeout=self.interval)
        self.id = lease.id
        log.info("lease granted", lease=lease.id, ttl=lease.ttl)
        self._trust(sent, lease.ttl)

    async def _refresh(self) -> None:
        lease, sent = self.id, _now()

        async def refresh(client: Any) -> Any:
            reply = await client.refresh_lease(lease)
            if reply is None:
                raise aetcd.ConnectionFailedError("the keep-alive stream ended without a reply")
            return reply

        reply = await self.client.call("keep the lease alive", refresh, timeout=self.interval)
        if lease != self.id:
            return  # revoked meanwhile
        if reply.TTL <= 0:
            log.warning("lease expired in etcd", lease=lease)
            self.id = None
            self._check()
            return
        self._trust(sent, reply.TTL)

    def _trust(self, sent: float, ttl: int) -> None:
        self._valid_until = sent + ttl - self.margin
        self._check()

    def _check(self) -> None:
        """Report a change of ``alive()``; runs after every keep-alive and when trust runs out."""
        alive = self.alive()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if alive:
            self._alive.set()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._valid_until + TIMER_SLACK, self._check)
        else:
            self._alive.clear()
        if alive != self._was_alive:
            self._was_alive = alive
            if not alive:
                log.warning("lease no longer trusted", lease=self.id)
            self._on_change()


def _now() -> float:
    """The event loop's clock: monotonic, and the one ``call_at`` uses."""
    return asyncio.get_running_loop().time()
