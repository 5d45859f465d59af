"""The provider interface: acting on machines (power state, power on/off, snapshots).

A provider type is a subclass of :class:`Provider` with a ``type`` name and a pydantic ``Config``
model (whose ``type`` field is ``Literal[<name>]``), registered under the ``ha.providers`` entry
point group. One instance serves every machine of one configured provider.

Blocking SDKs must run in worker threads of their own (ha.workers): the event loop never blocks.
Every method maps its SDK's errors into :class:`ha.errors.ProviderError` at one place.
"""

from __future__ import annotations

import builtins
import functools
from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeGuard, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ha.errors import NotSupported


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    SUSPENDED = "suspended"
    UNKNOWN = "unknown"


class ProviderConfig(BaseModel):
    """Settings every provider type has. Subclasses add their own and narrow ``type``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


class Provider(ABC):
    """Acts on machines of one platform.

    Deadlines are the caller's (the runbook step wraps each call in its own timeout); methods
    must be cancellable. Errors: ProviderError (may be transient; the step retries),
    NotSupported (never retried).
    """

    type: ClassVar[str]
    Config: ClassVar[builtins.type[ProviderConfig]]

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def power_state(self, machine: str) -> PowerState:
        """Read the machine's power state. Read-only."""

    @abstractmethod
    async def power_on(self, machine: str) -> None:
        """Power the machine on. Idempotent: a machine already on is left as it is."""

    @abstractmethod
    async def power_off(self, machine: str, *, hard: bool) -> None:
        """Power the machine off: ``hard`` cuts power (fencing), else a guest shutdown.

        Idempotent: a machine already off is left as it is.
        """

    async def snapshot(self, machine: str, name: str) -> str:
        """Take a snapshot named ``name``; return its id. Not idempotent."""
        raise NotSupported(f"provider {self.name} ({self.type}) cannot take snapshots")

    async def revert(self, machine: str, snapshot: str) -> None:
        """Revert the machine to a snapshot. Idempotent."""
        raise NotSupported(f"provider {self.name} ({self.type}) cannot revert snapshots")

    async def delete_snapshot(self, machine: str, snapshot: str) -> None:
        """Delete a snapshot (the machine keeps its current state). Not idempotent: a snapshot
        already gone is an error."""
        raise NotSupported(f"provider {self.name} ({self.type}) cannot delete snapshots")

    def describe(self, action: str, machine: str) -> str:
        """One line for dry runs and the journal: what ``action`` on ``machine`` will do."""
        return f"{action} {machine} via {self.name} ({self.type})"

    async def close(self) -> None:
        """Release sessions and connections. Idempotent."""


@runtime_checkable
class Promotable(Protocol):
    """A provider of database roles (PostgreSQL, MariaDB): activating a standby promotes it."""

    async def promote(self, machine: str, *, force: bool = False) -> dict[str, Any]:
        """Promote a standby; refuse (NotSupported) above the lag bound unless forced.
        Returns the lag at promotion (``bytes``, ``seconds``, ``forced``)."""

    async def replication_lag(self, machine: str) -> dict[str, Any]:
        """How far a standby is behind its primary."""

    async def rebuild(self, machine: str, primary: str) -> str:
        """Turn a former primary into a caught-up standby of ``primary``."""


def promotable(provider: Provider) -> TypeGuard[Promotable]:
    """``isinstance(provider, Promotable)``, by its class once: the protocol check looks up every
    method each time, and runbook steps are built twice per member of a group failover."""
    return _promotes(type(provider))


@functools.cache
def _promotes(cls: type[Provider]) -> bool:
    return issubclass(cls, Promotable)
