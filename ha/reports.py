"""Reports: the journal, or the Assured Recovery test history, for some scenarios and a time range,
as CSV or JSON.

Times are ISO 8601 (``2024-05-01``, ``2024-05-01T08:00``; without a zone: the daemon's local
time), seconds since the epoch, or a duration meaning that long ago (``24h``, ``7d``).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ha.duration import parse_duration
from ha.groups_config import GroupConfig
from ha.store import JournalEvent, Store

PAGE = 1000
Report = Literal["journal", "tests"]
REPORTS: tuple[Report, ...] = ("journal", "tests")
FORMATS = ("json", "csv")
JOURNAL_COLUMNS = ("id", "time", "kind", "scenario", "actor", "runbook", "step", "message", "data")
TEST_COLUMNS = ("id", "time", "scenario", "test", "result", "recovery_time", "actor", "message")


def parse_time(text: str, now: float) -> float:
    """Seconds since the epoch for a report bound; ValueError naming the accepted forms."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give ISO 8601 (2024-05-01T08:00), epoch seconds, "
            "or how long ago (24h, 7d)"
        ) from None


@dataclass(frozen=True)
class Query:
    report: Report = "journal"
    scenario: str | None = None
    group: GroupConfig | None = None  # its members' entries and its own
    since: float | None = None
    until: float | None = None

    def wants(self, event: JournalEvent) -> bool:
        if self.report == "tests" and not event.kind.startswith("ar_"):
            return False
        if self.since is not None and event.ts < self.since:
            return False
        if self.until is not None and event.ts > self.until:
            return False
        if self.group is not None:
            return self.group.concerns(event.scenario, event.data)
        return True


async def collect(store: Store, query: Query) -> list[JournalEvent]:
    """Every event the query wants, oldest first."""
    found: list[JournalEvent] = []
    after = 0
    while True:
        page = await store.events(after=after, scenario=query.scenario, limit=PAGE)
        found.extend(event for event in page if query.wants(event))
        if len(page) < PAGE:
            return found
        assert page[-1].id is not None
        after = page[-1].id


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def rows(events: list[JournalEvent], report: Report) -> list[dict[str, Any]]:
    """One flat row per event: the journal's columns, or a test history's."""
    if report == "journal":
        return [
            {c: _iso(event.ts) if c == "time" else event.to_json()[c] for c in JOURNAL_COLUMNS}
            for event in events
        ]
    return [
        {
            "id": event.id,
            "time": _iso(event.ts),
            "scenario": event.scenario,
            "test": event.data.get("test"),
            "result": event.kind.removeprefix("ar_"),
            "recovery_time": event.data.get("recovery_time"),
            "actor": event.actor,
            "message": event.message,
        }
        for event in events
    ]


def as_csv(table: list[dict[str, Any]], report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(JOURNAL_COLUMNS if report == "journal" else TEST_COLUMNS)
    for row in table:
        writer.writerow([json.dumps(v) if isinstance(v, dict) else v for v in row.values()])
    return out.getvalue()


def as_json(table: list[dict[str, Any]], query: Query) -> dict[str, Any]:
    return {
        "report": query.report,
        "generated": _iso(time.time()),
        "filters": {
            "scenario": query.scenario,
            "group": query.group.name if query.group is not None else None,
            "since": _iso(query.since) if query.since is not None else None,
            "until": _iso(query.until) if query.until is not None else None,
        },
        "rows": table,
    }
