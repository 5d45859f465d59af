"""Worker threads for blocking SDKs (boto3, pyVmomi, pywinrm): each provider and redirector has a
small pool of its own, never the event loop's default executor.

Not ``asyncio.to_thread``: the loop joins its default executor when it closes (and asyncio's own
loop resolves host names in it). A call that waits on an endpoint answering nothing, until the
SDK's own timeouts and retries run out (minutes, with boto3's), held the daemon's exit there (and
name resolution behind it). Closing a pool leaves the calls in flight to end on their own: nobody
waits for them (``ha.service.leave_calls_behind`` ends the process without them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
LAST_CALL_WAIT = 2.0  # seconds ``close`` waits for its last call (a logout), at most


class Workers:
    """A pool of ``size`` threads named ``name``_N, started on the first call."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)`` in one of the threads."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
        work = functools.partial(call, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    async def close(self, last: Callable[[], object] | None = None) -> None:
        """Stop the threads once their calls end, after ``last`` (a logout), which is waited
        for LAST_CALL_WAIT seconds at most. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        done = asyncio.get_running_loop().run_in_executor(pool, last) if last else None
        pool.shutdown(wait=False)
        if done is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LAST_CALL_WAIT):
                    await done
