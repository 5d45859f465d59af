"""Failure detection for one side of a scenario: pure logic, fed with check results.

A check is *down* once it has failed ``failures`` probes in a row, or (with ``dead_after``) once it
has not passed for that long. The side is *dead* when all its checks are down (``require: all``)
or any of them is (``require: any``). A single failed probe below the threshold changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks import CheckResult
from ha.config import FailoverPolicy


@dataclass(slots=True)
class CheckState:
    failures: int = 0  # consecutive failed probes
    last: CheckResult | None = None
    last_ok_at: float | None = None


class Detector:
    def __init__(self, policy: FailoverPolicy, labels: list[str], now: float) -> None:
        self.policy = policy
        self.checks = {label: CheckState() for label in labels}
        self.since = now  # when watching began: the is-alive timeout counts from here

    def reset(self, now: float) -> None:
        """After the scenario changed state, evidence of death starts anew (the last results stay,
        for status and for telling changes)."""
        for check in self.checks.values():
            check.failures = 0
            check.last_ok_at = None
        self.since = now

    def record(self, label: str, result: CheckResult) -> bool:
        """Take one result; return True when the check's ok/failed state changed."""
        check = self.checks[label]
        changed = check.last is None or check.last.ok != result.ok
        check.last = result
        if result.ok:
            check.failures = 0
            check.last_ok_at = result.at
        else:
            check.failures += 1
        return changed

    def is_down(self, label: str, now: float) -> bool:
        check = self.checks[label]
        if check.failures >= self.policy.failures:
            return True
        dead_after = self.policy.dead_after
        if dead_after is not None:
            return now - (check.last_ok_at or self.since) >= dead_after
        return False

    def expires_at(self, now: float) -> float | None:
        """The next time after ``now`` at which a check goes down by its is-alive timeout alone,
        with no new result; None without ``dead_after``, or when every check is down already."""
        dead_after = self.policy.dead_after
        if dead_after is None:
            return None
        times = [(c.last_ok_at or self.since) + dead_after for c in self.checks.values()]
        return min((t for t in times if t > now), default=None)

    def down(self, now: float) -> list[str]:
        return [label for label in self.checks if self.is_down(label, now)]

    def is_dead(self, now: float) -> bool:
        if not self.checks:
            return False
        return self.policy.dead(len(self.down(now)), len(self.checks))

    def is_healthy(self) -> bool:
        """Every check passed its latest probe."""
        return all(c.last is not None and c.last.ok for c in self.checks.values())
