"""What the group tests share: the group of s1..s3 (in order, and failing over together) and
the reads of the group's view and report."""

from __future__ import annotations

from tests.e2e.fleet import Fleet

ORDERED = [{"name": "farm", "scenarios": ["s1", "s2", "s3"], "ordered": True}]
TOGETHER = [{**ORDERED[0], "failover": "together"}]
REPLICA = "127.0.0.3"


def farm(fleet: Fleet) -> dict:
    """The group's view in the API."""
    (group,) = fleet.api("GET", "/v1/groups")[1]["groups"]
    return group


def report(fleet: Fleet) -> dict:
    return next(e for e in fleet.journal() if e["kind"] == "group_report")["data"]


def wait_report(fleet: Fleet, timeout: float = 30) -> None:
    fleet.wait_until(
        lambda: any(e["kind"] == "group_report" for e in fleet.journal()), timeout, "the report"
    )
