"""This orchestrator among several on one etcd cluster: who leads, what each observer sees.

One ``Cluster`` per daemon with an etcd state. It holds the elector (leadership on an etcd lease),
the store whose every write is conditional on that leadership (a deposed leader cannot write),
and the observer board: each cycle every instance publishes its view of every scenario's
production; the leader reads them all and acts on the quorum's verdict, never on its own view
alone. When observers disagree, the leader journals who (``observers_disagree``), once per change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from ha.config import ClusterConfig
from ha.coordination import Elector
from ha.coordination_quorum import Verdict, View
from ha.coordination_views import ObserverBoard, cluster_status
from ha.errors import StoreError
from ha.scenario import Scenario
from ha.store import JournalEvent
from ha.store.etcd import EtcdStore
from ha.store.etcd_target import EtcdTarget

log = structlog.get_logger("ha.cluster")


class Cluster:
    def __init__(
        self, target: EtcdTarget, config: ClusterConfig, on_change: Callable[[bool], None]
    ) -> None:
        self.config = config
        self.elector = Elector(target, config.name, ttl=int(config.lease_ttl))
        self.elector.on_change(on_change)
        self.board = ObserverBoard(self.elector)
        self.store = EtcdStore(target, leader=self.elector)
        self._disagree: dict[str, tuple[bool, tuple[str, ...]]] = {}
        self._publish_error: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def leading(self) -> bool:
        """True while we hold the leader key and our lease surely lives (turns False on time)."""
        return self.elector.is_leader

    async def start(self) -> None:
        await self.elector.start()

    async def close(self) -> None:
        """Resign (another instance takes over at once) and give the lease back."""
        await self.elector.close()

    async def publish(self, scenarios: Iterable[Scenario], now: float) -> None:
        """Publish our view of every scenario's production; a failure is logged once, not raised
        (without etcd our views expire with our lease and we are simply not counted)."""
        views = []
        for scenario in scenarios:
            production = scenario.detectors["production"]
            dead = production.is_dead(now)
            views.append(View(self.name, scenario.name, dead, tuple(production.down(now)), now))
        try:
            await self.board.publish(views)
        except StoreError as exc:
            if self._publish_error is None:
                log.warning("cannot publish observer views", error=str(exc))
            self._publish_error = str(exc)
            return
        if self._publish_error is not None:
            log.info("observer views published again")
        self._publish_error = None

    async def verdicts(self, names: Iterable[str]) -> dict[str, Verdict]:
        """The observers' verdict on each scenario's production. Raises StoreError."""
        return await self.board.verdicts(
            names, max_age=self.config.view_max_age, quorum=self.config.quorum
        )

    def disagreement(self, verdict: Verdict) -> JournalEvent | None:
        """An ``observers_disagree`` event when who disagrees with the verdict changed."""
        now = (verdict.dead, verdict.disagree)
        if self._disagree.get(verdict.scenario, (False, ())) == now:
            return None
        self._disagree[verdict.scenario] = now
        if not verdict.disagree:
            return None
        return JournalEvent(
            kind="observers_disagree",
            scenario=verdict.scenario,
            message=verdict.describe(),
            data={
                "observers": list(verdict.disagree),
                "verdict": "dead" if verdict.dead else "alive",
                "dead_by": list(verdict.dead_by),
                "alive_by": list(verdict.alive_by),
                "needed": verdict.needed,
            },
        )

    def forget_disagreements(self) -> None:
        """A new leader journals the disagreements it finds, even those its predecessor did."""
        self._disagree.clear()

    async def status(self) -> dict[str, Any]:
        """What ``ha cluster status`` shows; this instance's own view when etcd cannot answer."""
        try:
            return await cluster_status(self.board)
        except StoreError as exc:
            return {"self": self.elector.status().to_json(), "error": str(exc)}
