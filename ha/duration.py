"""Durations in configuration: ``500ms``, ``2s``, ``5m``, ``1h``, ``1d`` (or plain seconds)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: object) -> float:
    """Seconds for ``500ms``, ``2s``, ``5m``, ``1h``, ``1d`` or a plain non-negative number."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 500ms, 2s or 5m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration; use a number and a unit: 500ms, 2s, 5m, 1h"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("must be a duration like 500ms, 2s or 5m")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 0.5 -> ``500ms``, 120 -> ``2m``."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
"""Seconds as a float, written in config as ``500ms``, ``2s``, ``5m``."""
