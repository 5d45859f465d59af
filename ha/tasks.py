"""Long-lived tasks that stop when they are cancelled, even if a library swallowed the cancel.

On Python 3.11, ``asyncio.wait_for`` returns the result instead of raising CancelledError when
the awaited operation finishes in the same loop iteration as the cancel (CPython gh-86296, fixed
in 3.12). Libraries we call use it (aiosmtplib waits for each SMTP answer that way): a task
cancelled at that moment goes on as if nothing happened, and a loop that only ends by being
cancelled then runs forever, and whoever awaits it at shutdown with it. Such loops call
``stop_if_cancelled`` once per round. Our own code uses ``asyncio.timeout``, which keeps the
cancel.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Raise CancelledError when this task was cancelled and the cancel got lost on the way.

    A task that handled its cancellation on purpose calls ``uncancel`` (asyncio.timeout, our
    monitor's probe timeouts do); a count left over means nobody did."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
