"""Observer views in etcd: each instance publishes its view of every scenario; the leader reads all.

A view lives under ``P views/<scenario>/<observer>`` on the observer's lease (the elector's), so an
observer that dies or loses etcd drops out within the lease TTL; one whose monitor is stuck drops
out when its views pass ``max_age`` (``decide``). Publishing many views is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import aetcd

from ha.coordination import Elector
from ha.coordination_quorum import Verdict, View, decide
from ha.store.etcd_client import EtcdUnavailable, prefix_end

_TX = aetcd.Transactions()


class ObserverBoard:
    """Publish and read views through the elector's connection and lease."""

    def __init__(self, elector: Elector) -> None:
        self.elector = elector
        self.prefix = elector.target.prefix.encode() + b"views/"

    async def publish(self, views: Iterable[View]) -> None:
        """Save our views (``observer`` must be the elector's name). Raises StoreError, or
        EtcdUnavailable when we hold no live lease to hang them on."""
        lease = self.elector.lease.id
        if lease is None or not self.elector.lease.alive():
            raise EtcdUnavailable("cannot publish observer views: no live lease")
        puts = [
            _TX.put(self._key(view), json.dumps(view.to_json()).encode(), lease=lease)
            for view in views
        ]
        if not puts:
            return

        async def put(client: Any) -> None:
            await client.transaction(compare=[], success=puts, failure=[])

        await self.elector.client.call("publish observer views", put)

    async def read(self) -> list[View]:
        """Every live view of every observer."""
        pairs, _ = await self.elector.client.range(
            self.prefix, prefix_end(self.prefix), limit=0, what="read observer views"
        )
        return [View.from_json(json.loads(value)) for _, value in pairs]

    async def verdicts(
        self,
        scenarios: Iterable[str],
        *,
        max_age: float,
        quorum: int | None = None,
    ) -> dict[str, Verdict]:
        """The quorum's verdict on each scenario, from the views in etcd now."""
        views = await self.read()
        now = time.time()
        return {
            name: decide(name, views, now=now, max_age=max_age, quorum=quorum) for name in scenarios
        }

    def _key(self, view: View) -> bytes:
        if view.observer != self.elector.name:
            raise ValueError(f"{self.elector.name} cannot publish the view of {view.observer}")
        return self.prefix + _quote(view.scenario) + b"/" + _quote(view.observer)


async def cluster_status(board: ObserverBoard) -> dict[str, Any]:
    """What ``ha cluster status`` shows: this instance's election state, the instances alive, the
    etcd members, and each observer's view of each scenario. Raises StoreError."""
    elector = board.elector
    views: dict[str, dict[str, Any]] = {}
    for view in await board.read():
        views.setdefault(view.scenario, {})[view.observer] = view.to_json()
    return {
        "self": elector.status().to_json(),
        "leader": await elector.current_leader(),
        "instances": await elector.members(),
        "etcd": [
            {"name": name, "client_urls": urls} for name, urls in await elector.client.members()
        ],
        "views": views,
    }


def _quote(name: str) -> bytes:
    return quote(name, safe="").encode()
