"""The redirect gate of a group wave: its members redirect users together.

Members of one wave reach their redirect step at slightly different times (one machine boots a
little later, one check answers a little later). Redirected one by one, a wave of 100 DNS
records goes out in several UPDATE messages, and the secondaries transfer and the verification
waits for each. At the gate, each member's redirect waits until every member of the wave still
in flight has reached it (a member that was refused, blocked or cancelled no longer counts), so
that all the wave's changes start at once and go in one UPDATE per zone; then they are verified
together. A member never waits more than ``GATHER`` seconds after the first one arrived: a slow
sibling delays the others' redirect by that much at most.

Only a group command sets up a gate; a scenario on its own, or a runbook resumed after a
restart, redirects at once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

from ha.scenario import Scenario

GATHER = 1.0  # seconds the first member at the gate waits for the others, at most


class RedirectGate:
    def __init__(self, members: Iterable[str], *, gather: float = GATHER) -> None:
        self.gather = gather
        self._expected = set(members)
        self._arrived: set[str] = set()
        self._open = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    async def arrive(self, name: str) -> None:
        """Wait until every member still expected has arrived, or GATHER is up."""
        if self._open.is_set() or name not in self._expected:
            return
        self._arrived.add(name)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.gather, self.open)
        self._check()
        await self._open.wait()

    def leave(self, name: str) -> None:
        """``name`` will not arrive (refused, blocked, cancelled) or has passed already."""
        self._expected.discard(name)
        self._check()

    def open(self) -> None:
        self._open.set()
        if self._timer is not None:
            self._timer.cancel()

    def _check(self) -> None:
        if self._expected <= self._arrived:
            self.open()


_gates: weakref.WeakKeyDictionary[Scenario, RedirectGate] = weakref.WeakKeyDictionary()


def set_gate(scenarios: Iterable[Scenario], gate: RedirectGate | None) -> None:
    """Put ``scenarios`` behind ``gate`` (None: no gate any more)."""
    for scenario in scenarios:
        if gate is None:
            _gates.pop(scenario, None)
        else:
            _gates[scenario] = gate


async def redirect_together(scenario: Scenario) -> None:
    """Before a redirect: wait at the scenario's wave gate, if it has one."""
    gate = _gates.get(scenario)
    if gate is not None:
        await gate.arrive(scenario.name)
