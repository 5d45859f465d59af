"""Redirection: how users follow the active server.

A redirector is built per scenario and per ``redirect`` entry of its config, from a
:class:`Target` (the scenario's name and both addresses) and the entry's own config model.
Deadlines are the caller's (the runbook step wraps each call); errors are
:class:`ha.errors.RedirectError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """What a redirector knows of its scenario."""

    scenario: str
    production: str  # production's address
    replica: str  # the replica's address


class Redirector(ABC):
    """Points users at one address."""

    @abstractmethod
    async def point_to(self, address: str) -> None:
        """Send users to ``address``. Idempotent: pointing where it already points is a no-op."""

    @abstractmethod
    async def current(self) -> str | None:
        """What clients are told now, read back from the source of truth; None if it cannot tell."""

    async def prepare(self) -> str | None:
        """While production is active: get ready for a failover (read the record, lower its
        TTL). Idempotent; returns a journal line when it changed something."""
        return None

    @abstractmethod
    def describe(self, address: str) -> str:
        """One line for dry runs and the journal: what ``point_to(address)`` will change."""

    async def close(self) -> None:
        """Release connections. Idempotent."""
