"""The journal feed: one task tails the store and hands each new event to its subscribers.

Subscribers are the event stream (which waits for news, then reads the store itself, so that
resuming from any id and following live are the same code), metrics and notifications (plain
callbacks, which must not block: they count, or queue work of their own). The feed starts at the
journal's end: what happened before the daemon started is history, read from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from ha.errors import StoreError
from ha.store import JournalEvent, Store
from ha.tasks import stop_if_cancelled

log = structlog.get_logger("ha.feed")

POLL = 0.15  # seconds between two reads of the store when nothing new came
PAGE = 1000

Subscriber = Callable[[JournalEvent], None]


class JournalFeed:
    def __init__(self, store: Store, poll: float = POLL) -> None:
        self.store = store
        self.poll = poll
        self.last_id = 0  # every event up to this id has been handed on
        self.closed = asyncio.Event()
        self._news = asyncio.Condition()
        self._subscribers: list[Subscriber] = []
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def start(self) -> None:
        self.last_id = await self.store.last_event_id()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop tailing and release every waiter. Idempotent."""
        self.closed.set()
        async with self._news:
            self._news.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait(self, after: int, timeout: float) -> None:
        """Return once an event newer than ``after`` is in the store, the feed closes, or after
        ``timeout`` seconds, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._news:
                await self._news.wait_for(lambda: self.last_id > after or self.closed.is_set())

    async def _run(self) -> None:
        while True:
            stop_if_cancelled()
            try:
                found = await self.store.events(after=self.last_id, limit=PAGE)
            except StoreError as exc:
                log.warning("journal feed cannot read the store", error=str(exc))
                found = []
            for event in found:
                self._hand_on(event)
            if found:
                assert found[-1].id is not None
                async with self._news:
                    self.last_id = found[-1].id
                    self._news.notify_all()
            if len(found) < PAGE:
                await asyncio.sleep(self.poll)

    def _hand_on(self, event: JournalEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("journal feed subscriber failed", event=event.id)
