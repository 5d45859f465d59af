"""Check kinds, registered by kind name under the ``ha.checks`` entry point group.

Third-party kinds register the same way: an entry point ``NAME = "module:CheckClass"``.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from checks.base import Check, CheckConfig, CheckFailed, CheckResult

__all__ = ["Check", "CheckConfig", "CheckFailed", "CheckResult", "check_kinds"]


@cache
def check_kinds() -> dict[str, type[Check]]:
    """Every registered check kind by name, loaded once."""
    kinds: dict[str, type[Check]] = {}
    for point in entry_points(group="ha.checks"):
        cls = point.load()
        if not (isinstance(cls, type) and issubclass(cls, Check)):
            raise TypeError(f"entry point ha.checks:{point.name} is not a Check subclass")
        kinds[point.name] = cls
    return dict(sorted(kinds.items()))
