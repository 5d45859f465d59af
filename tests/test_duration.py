import pytest

from ha.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        (3, 3.0),
        ("1.5s", 1.5),
    ],
)
def test_parses_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5", "fast", "-1s", "2 weeks", True, None, -3])
def test_refuses_what_is_not_a_duration(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.5, "500ms"), (120.0, "2m"), (90.0, "90s"), (3600.0, "1h")]
)
def test_formats_durations_shortest_exact(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
