"""Notifications: the journal events that people want to hear about, sent to each target that
wants them, at most ``rate_limit.count`` per target and scenario in any ``rate_limit.window``.

Categories: ``state`` (every transition), ``action_needed`` (into blocked or split, manual-mode
alerts, a spent failover budget), ``group`` (group reports), ``assured_recovery`` (test results).
What the rate limit holds back is not lost: when the window lets one through again, a single
summary says how many were held back and what they said, so a flapping check cannot flood anyone
and nobody misses how it ended. Each target has one queue and one sender task: notifications to a
target arrive in journal order, and a slow target delays no other.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from ha.config import Config
from ha.errors import HAError
from ha.notify_config import Category, NotifyTarget
from ha.notify_send import send_email, send_webhook
from ha.store import JournalEvent
from ha.tasks import stop_if_cancelled

log = structlog.get_logger("ha.notify")

AR_RESULTS = ("ar_passed", "ar_failed", "ar_aborted")
SHOWN_HELD = 20  # held-back notifications listed in a summary


def categories(event: JournalEvent) -> set[Category]:
    found: set[Category] = set()
    if event.kind == "transition":
        found.add("state")
        if event.data.get("to") in ("blocked", "split"):
            found.add("action_needed")
    elif event.kind in ("alert", "budget_spent", "store_recovered"):
        found.add("action_needed")
    elif event.kind == "group_report":
        found.add("group")
    elif event.kind in AR_RESULTS:
        found.add("assured_recovery")
    return found


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str
    payload: dict[str, Any]


def notice_of(event: JournalEvent, group: str | None, severity: str) -> Notice:
    summary = f"{event.scenario}: {event.message}" if event.scenario else event.message
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(event.ts))
    lines = [summary, "", f"time: {when}", f"event: {event.kind} #{event.id}"]
    lines += [
        f"{key}: {value}"
        for key, value in (("group", group), ("actor", event.actor), ("runbook", event.runbook))
        if value
    ]
    payload = {
        "kind": "event",
        "severity": severity,
        "summary": summary,
        "scenario": event.scenario,
        "group": group,
        "event": event.to_json(),
    }
    return Notice(f"[ha] {summary}"[:200], "\n".join(lines) + "\n", payload)


def summary_of(key: str, held: list[Notice], since: float) -> Notice:
    said = [n.payload["summary"] for n in held]
    summary = f"{key}: {len(held)} notifications held back by the rate limit"
    lines = [summary + f" since {time.strftime('%H:%M:%S', time.localtime(since))}:", ""]
    lines += [f"  {line}" for line in said[-SHOWN_HELD:]]
    if len(said) > SHOWN_HELD:
        lines.insert(2, f"  ... {len(said) - SHOWN_HELD} more before these")
    payload = {
        "kind": "summary",
        "about": key,
        "summary": summary,
        "held": len(held),
        "latest": said[-1],
        "summaries": said[-SHOWN_HELD:],
    }
    return Notice(f"[ha] {summary}", "\n".join(lines) + "\n", payload)


@dataclass
class _Held:
    since: float
    notices: list[Notice] = field(default_factory=list)


class Notifier:
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.targets = config.notify.targets
        self.count = config.notify.rate_limit.count
        self.window = config.notify.rate_limit.window
        self.clock = clock
        self.group_of = {m: g.name for g in config.groups for m in g.scenarios}
        self._sent: dict[tuple[str, str], deque[float]] = {}
        self._held: dict[tuple[str, str], _Held] = {}
        self._queues: dict[str, asyncio.Queue[Notice]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        for target in self.targets:
            self._queues[target.name] = asyncio.Queue()
            self._spawn(self._sender(target))

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def on_event(self, event: JournalEvent) -> None:
        found = categories(event)
        if not found:
            return
        group = event.data.get("group") or self.group_of.get(event.scenario or "")
        severity = "critical" if "action_needed" in found or event.kind == "ar_failed" else "info"
        for target in self.targets:
            if found.isdisjoint(target.events) or not _covers(target, event.scenario, group):
                continue
            key = (target.name, event.scenario or group or "-")
            self._limited(key, notice_of(event, group, severity))

    def _limited(self, key: tuple[str, str], notice: Notice) -> None:
        held = self._held.get(key)
        if held is not None:
            held.notices.append(notice)
            return
        wait = self._admit(key)
        if wait == 0:
            self._queues[key[0]].put_nowait(notice)
            return
        self._held[key] = _Held(time.time(), [notice])
        self._spawn(self._release(key, wait))

    def _admit(self, key: tuple[str, str]) -> float:
        """0 when a notification may go now (it is counted), else seconds until one may."""
        now = self.clock()
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        if len(sent) < self.count:
            sent.append(now)
            return 0.0
        return sent[0] + self.window - now

    async def _release(self, key: tuple[str, str], wait: float) -> None:
        while wait > 0:
            await asyncio.sleep(wait)
            wait = self._admit(key)
        held = self._held.pop(key)
        self._queues[key[0]].put_nowait(summary_of(key[1], held.notices, held.since))

    async def _sender(self, target: NotifyTarget) -> None:
        queue = self._queues[target.name]
        while True:
            stop_if_cancelled()  # a send may have swallowed close()'s cancel
            notice = await queue.get()
            try:
                if target.webhook is not None:
                    said = await send_webhook(target.webhook, notice.payload)
                else:
                    assert target.email is not None
                    said = await send_email(target.email, notice.subject, notice.text)
                log.info("notification sent", target=target.name, answer=said)
            except HAError as exc:
                log.warning("notification lost", target=target.name, error=str(exc))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _covers(target: NotifyTarget, scenario: str | None, group: str | None) -> bool:
    if not target.scenarios and not target.groups:
        return True
    return (scenario is not None and scenario in target.scenarios) or (
        group is not None and group in target.groups
    )
