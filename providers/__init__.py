"""Provider types, registered by type name under the ``ha.providers`` entry point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from providers.base import PowerState, Promotable, Provider, ProviderConfig, promotable

__all__ = [
    "PowerState",
    "Promotable",
    "Provider",
    "ProviderConfig",
    "promotable",
    "provider_types",
]


@cache
def provider_types() -> dict[str, type[Provider]]:
    """Every registered provider type by name, loaded once."""
    types: dict[str, type[Provider]] = {}
    for point in entry_points(group="ha.providers"):
        cls = point.load()
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise TypeError(f"entry point ha.providers:{point.name} is not a Provider subclass")
        types[point.name] = cls
    return dict(sorted(types.items()))
