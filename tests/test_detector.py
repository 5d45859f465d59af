"""The failure detector: thresholds, hysteresis, all/any semantics, is-alive timeout."""

from checks import CheckResult
from ha.config import FailoverPolicy
from ha.detector import Detector


def result(ok: bool, at: float) -> CheckResult:
    return CheckResult(ok=ok, latency=0.001, detail="ok" if ok else "refused", at=at)


def test_one_blip_below_the_threshold_is_not_death() -> None:
    detector = Detector(FailoverPolicy(failures=3), ["tcp"], now=0)
    detector.record("tcp", result(True, 1))
    detector.record("tcp", result(False, 2))
    detector.record("tcp", result(False, 3))
    detector.record("tcp", result(True, 4))
    detector.record("tcp", result(False, 5))
    assert detector.is_dead(5) is False


def test_consecutive_failures_reach_the_threshold() -> None:
    detector = Detector(FailoverPolicy(failures=3), ["tcp"], now=0)
    for at in (1, 2, 3):
        detector.record("tcp", result(False, at))
    assert detector.is_dead(3) is True
    assert detector.down(3) == ["tcp"]


def test_require_all_needs_every_check_down() -> None:
    detector = Detector(FailoverPolicy(failures=1, require="all"), ["tcp", "http"], now=0)
    detector.record("tcp", result(False, 1))
    detector.record("http", result(True, 1))
    assert detector.is_dead(1) is False
    detector.record("http", result(False, 2))
    assert detector.is_dead(2) is True


def test_require_any_needs_one_check_down() -> None:
    detector = Detector(FailoverPolicy(failures=1, require="any"), ["tcp", "http"], now=0)
    detector.record("tcp", result(False, 1))
    detector.record("http", result(True, 1))
    assert detector.is_dead(1) is True


def test_is_alive_timeout_counts_from_the_last_success() -> None:
    detector = Detector(FailoverPolicy(failures=100, dead_after=10), ["tcp"], now=0)
    detector.record("tcp", result(True, 5))
    detector.record("tcp", result(False, 6))
    assert detector.is_dead(14) is False
    assert detector.is_dead(15) is True


def test_record_reports_only_changes_of_ok_and_reset_forgets() -> None:
    detector = Detector(FailoverPolicy(failures=1), ["tcp"], now=0)
    assert detector.record("tcp", result(True, 1)) is True
    assert detector.record("tcp", result(True, 2)) is False
    assert detector.record("tcp", result(False, 3)) is True
    assert detector.is_dead(3) is True
    detector.reset(4)
    assert detector.is_dead(4) is False
    assert detector.record("tcp", result(False, 5)) is False


def test_expires_at_is_when_the_is_alive_timeout_runs_out_with_no_new_result() -> None:
    detector = Detector(FailoverPolicy(failures=100, dead_after=10), ["tcp", "http"], now=0)
    assert detector.expires_at(0) == 10  # counted from when watching began
    detector.record("tcp", result(True, 5))
    detector.record("http", result(True, 7))
    assert detector.expires_at(7) == 15
    assert detector.expires_at(15) == 17  # tcp is down already: http next
    assert detector.expires_at(17) is None
    assert Detector(FailoverPolicy(failures=3), ["tcp"], now=0).expires_at(0) is None
