"""Leader election among orchestrators on etcd: one leads and acts, the others observe.

Each instance holds one lease (``LeaseKeeper``) and campaigns with one transaction: create the
leader key ``P leader`` with our lease only if it does not exist. The key's create revision is our
*tenure*: writes conditional on leadership compare it (``EtcdStore(leader=elector)``), so a
deposed leader cannot write, even if it does not know yet that it was deposed.

``is_leader`` is True only while we hold the key AND our lease surely lives on our own clock
(``LeaseKeeper.alive``), so it turns False before etcd could expire the lease and let another
instance in. A watch on the key reports its deletion at once (a follower then campaigns, a
leader steps down); a poll every TTL/3 covers a watch that a cut-off member never answers.
After a lapse of trust we lead again only once the campaign has read the key and found our
lease on it (our lease may outlive the lapse: we adopt our key rather than block everyone).

Each instance also announces itself under ``P instances/<name>`` with its lease, for ``ha cluster
status``. Observer views (``ha.coordination_views``) hang on the same lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aetcd
import structlog

from ha.coordination_lease import LeaseKeeper
from ha.errors import StoreError
from ha.store.etcd_client import DEFAULT_TIMEOUT, EtcdClient, prefix_end
from ha.store.etcd_target import EtcdTarget
from ha.tasks import stop_if_cancelled

log = structlog.get_logger("ha.coordination")

DEFAULT_TTL = 5
_TX = aetcd.Transactions()


@dataclass(frozen=True, slots=True)
class LeadershipStatus:
    """This instance's view of the election, for ``ha cluster status``."""

    name: str
    is_leader: bool
    leader: str | None  # the holder of the leader key when we last looked
    lease: int | None
    ttl: int
    trusted_for: float  # seconds our lease is still trusted, 0 if not
    etcd_member: str  # the etcd member that answered last

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "is_leader": self.is_leader,
            "leader": self.leader,
            "lease": None if self.lease is None else f"{self.lease:x}",
            "ttl": self.ttl,
            "trusted_for": round(self.trusted_for, 3),
            "etcd_member": self.etcd_member,
        }


class Elector:
    """Campaigns for leadership for as long as it runs; ``is_leader`` says whether we lead now."""

    def __init__(
        self,
        target: EtcdTarget,
        name: str,
        *,
        ttl: int = DEFAULT_TTL,
        margin: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.target = target
        self.name = name
        self.client = EtcdClient(target, timeout=timeout)
        prefix = target.prefix.encode()
        self.key = prefix + b"leader"
        self.instances = prefix + b"instances/"
        self.lease = LeaseKeeper(
            self.client, ttl, max(0.5, ttl / 5) if margin is None else margin, self._check
        )
        self.leader: str | None = None
        self._tenure: int | None = None
        self._was_leader = False
        self._announced: int | None = None
        self._callbacks: list[Callable[[bool], None]] = []
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # What the daemon asks.

    @property
    def is_leader(self) -> bool:
        return self.tenure() is not None

    def tenure(self) -> int | None:
        """The create revision of our leader key while we lead, else None (LeaderGuard)."""
        return self._tenure if self.lease.alive() else None

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(is_leader)`` each time leadership is gained or lost."""
        self._callbacks.append(callback)

    async def wait_until(self, leading: bool) -> None:
        """Return once ``is_leader == leading``."""
        while self.is_leader != leading:
            self._changed.clear()
            await self._changed.wait()

    def status(self) -> LeadershipStatus:
        return LeadershipStatus(
            name=self.name,
            is_leader=self.is_leader,
            leader=self.name if self.is_leader else self.leader,
            lease=self.lease.id,
            ttl=self.lease.ttl,
            trusted_for=self.lease.remaining(),
            etcd_member=self.client.current,
        )

    async def members(self) -> list[str]:
        """Names of the instances whose lease lives (announced under ``P instances/``)."""
        pairs, _ = await self.client.range(
            self.instances, prefix_end(self.instances), limit=0, what="list the instances"
        )
        return sorted(json.loads(value)["name"] for _, value in pairs)

    async def current_leader(self) -> str | None:
        """The name in the leader key now (read from etcd), None if nobody leads."""

        async def get(client: Any) -> Any:
            return await client.get(self.key)

        found = await self.client.call("read the leader key", get)
        return None if found is None else str(found.value.decode())

    # Start and stop.

    async def start(self) -> None:
        """Start keeping the lease and campaigning; returns at once (see ``wait_until``)."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self.lease.run(), name=f"lease {self.name}"),
                asyncio.create_task(self._campaign(), name=f"campaign {self.name}"),
            ]
            for task in self._tasks:
                task.add_done_callback(_report_death)

    async def close(self) -> None:
        """Stop campaigning, resign (another instance takes over at once), give the lease back."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tenure, self._tenure = self._tenure, None
        if tenure is not None:
            with contextlib.suppress(StoreError):
                await self._resign(tenure)
        await self.lease.revoke()
        self._check()
        await self.client.close()

    # The campaign.

    async def _campaign(self) -> None:
        failing = False
        while True:
            stop_if_cancelled()
            if not self.lease.alive():
                await self.lease.wait_alive()
            try:
                revision = await self._try()
                failing = False
                stop_if_cancelled()  # before a watch that may last
                await self._watch(revision)
            except StoreError as exc:
                if not failing:  # once per outage, not once per attempt
                    log.warning("campaign failing", error=str(exc))
                failing = True
                await asyncio.sleep(self.lease.interval)

    async def _try(self) -> int:
        """Create the leader key if nobody holds it; note who does. Returns the revision read."""
        lease = self.lease.id
        if lease is None:
            return 0  # dropped since we checked: wait for the next one
        if lease != self._announced:
            await self._announce(lease)
        compare = [_TX.create(self.key) == 0]
        success = [_TX.put(self.key, self.name.encode(), lease=lease), _TX.get(self.key)]

        async def campaign(client: Any) -> Any:
            return await client.transaction(
                compare=compare, success=success, failure=[_TX.get(self.key)]
            )

        won, replies = await self.client.call("campaign for leadership", campaign)
        kv = replies[-1][0][1]  # the key exists either way: we made it, or someone holds it
        self.leader = kv.value.decode()
        self._set(kv.create_revision if kv.lease == lease else None)
        if won:
            log.info("leadership won", name=self.name, tenure=kv.create_revision)
        return int(kv.header.revision)

    async def _watch(self, revision: int) -> None:
        """Wait until the leader key changes after ``revision``, or TTL/3 passed. A change that
        is not our key any more ends our leadership at once, before the campaign rereads it."""
        if revision == 0:
            return
        change = await self.client.watch_once(self.key, after=revision, wait=self.lease.interval)
        if change is not None:
            deleted, created = change
            if deleted or created != self._tenure:
                self._set(None)

    async def _announce(self, lease: int) -> None:
        value = json.dumps({"name": self.name, "since": time.time()}).encode()

        async def put(client: Any) -> None:
            await client.put(self.instances + self.name.encode(), value, lease=lease)

        await self.client.call("announce this instance", put)
        self._announced = lease

    async def _resign(self, tenure: int) -> None:
        async def resign(client: Any) -> None:
            await client.transaction(
                compare=[_TX.create(self.key) == tenure],
                success=[_TX.delete(self.key)],
                failure=[],
            )

        await self.client.call("resign", resign)
        log.info("leadership resigned", name=self.name)

    def _set(self, tenure: int | None) -> None:
        self._tenure = tenure
        self._check()

    def _check(self) -> None:
        if not self.lease.alive():
            self._tenure = None  # after a lapse, only a fresh read of the key makes us lead again
        leading = self.is_leader
        if leading == self._was_leader:
            return
        self._was_leader = leading
        if not leading:
            log.warning("leadership lost", name=self.name)
        self._changed.set()
        for callback in self._callbacks:
            callback(leading)


def _report_death(task: asyncio.Task[None]) -> None:
    """Both tasks run until cancelled: anything else is a bug that leaves us unable to lead."""
    if not task.cancelled() and task.exception() is not None:
        log.error("coordination task died", task=task.get_name(), exc_info=task.exception())
