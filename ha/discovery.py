"""Re-discovery on a schedule: every ``interval``, each listed provider lists its machines and
the daemon journals an ``unprotected_machine`` event for every machine that no scenario names
(once per machine while it stays unprotected; ``machine_protected`` when that changes)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import structlog
from pydantic import BaseModel, ConfigDict, Field

from ha.duration import Duration
from ha.errors import ActionError
from ha.store import JournalEvent, Store
from providers import Provider
from providers.vsphere_discover import ListsMachines

log = structlog.get_logger("ha.discovery")


class DiscoveryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: list[str] = Field(
        default_factory=list, description="providers whose machines are listed (vsphere, hyperv)"
    )
    interval: Duration = Field(
        86400.0, ge=3600, description="how often: 24h by default, hourly at the most"
    )


class Discovery:
    def __init__(
        self,
        config: DiscoveryConfig,
        providers: Mapping[str, Provider],
        protected: Mapping[str, set[str]],
        store: Store,
    ) -> None:
        self.config = config
        self.providers = providers
        self.protected = protected  # provider -> machine names that scenarios name
        self.store = store
        self.due = 0.0
        self.reported: dict[str, set[str]] = {}

    def is_due(self, now: float) -> bool:
        if not self.config.providers or now < self.due:
            return False
        self.due = now + self.config.interval
        return True

    async def run(self) -> None:
        """One round over every listed provider (errors are logged, never raised)."""
        for name in self.config.providers:
            provider = self.providers[name]
            if not isinstance(provider, ListsMachines):
                continue
            try:
                machines = await provider.list_machines()
            except ActionError as exc:
                log.warning("discovery failed", provider=name, error=str(exc))
                continue
            seen = {
                m.name
                for m in machines
                if m.name not in self.protected.get(name, set())
                and m.id not in self.protected.get(name, set())
            }
            before = self.reported.get(name, set())
            for machine in sorted(seen - before):
                await self._journal(
                    "unprotected_machine",
                    f"{machine} at {name} is protected by no scenario (`ha discover {name}`)",
                    name,
                    machine,
                )
            for machine in sorted(before - seen):
                await self._journal(
                    "machine_protected", f"{machine} at {name} is protected or gone", name, machine
                )
            self.reported[name] = seen

    async def _journal(self, kind: str, message: str, provider: str, machine: str) -> None:
        await self.store.append(
            JournalEvent(
                kind=kind,
                message=message,
                data={"provider": provider, "machine": machine, "at": time.time()},
            )
        )
