"""The agenda: which scenarios the daemon's next cycle must evaluate.

Evaluating every scenario each cycle costs ~5 us each, 50 ms of loop at 10,000 scenarios, once a
second: a stall every probe due in it waits out. Nothing can change what the autopilot decides for
a scenario but what is marked here:

- *marked*: a check changed its ok/failed state, a side died or came back, an active-check answer
  arrived, the scenario changed state, an operator command named it, a group pause or resume
  changed it. A scenario the cycle skips (paused, or its group busy) stays marked until it is
  evaluated for real.
- *due at a time*: what changes by time alone, without a new result: a check's is-alive timeout
  (``dead_after``) expiring. The earliest such time is set after each evaluation.
- *unsettled* (the caller's): scenarios in the middle of an episode (a grace period, a hold-down, a
  failback waiting for ``stable_for``) are evaluated every cycle, as are all of them when several
  observers vote (their verdicts change with the peers' views, not with our results).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class Agenda:
    def __init__(self) -> None:
        self.marked: set[str] = set()
        self._due: dict[str, float] = {}  # scenario: its one live entry in the heap
        self._heap: list[tuple[float, str]] = []

    def mark(self, *names: str) -> None:
        self.marked.update(names)

    def at(self, name: str, when: float | None) -> None:
        """Evaluate ``name`` at ``when`` (None: no time of its own), replacing an earlier time."""
        if when is None:
            self._due.pop(name, None)
            return
        if self._due.get(name) == when:
            return
        self._due[name] = when
        heapq.heappush(self._heap, (when, name))

    def take(self, now: float, unsettled: Iterable[str] = ()) -> set[str]:
        """The scenarios to evaluate now, each once: marked, due by ``now``, and ``unsettled``.
        The marks and the times taken are cleared."""
        names = self.marked
        self.marked = set()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, name = heapq.heappop(heap)
            if self._due.get(name) == when:  # else replaced by a later time since
                del self._due[name]
                names.add(name)
        names.update(unsettled)
        return names
