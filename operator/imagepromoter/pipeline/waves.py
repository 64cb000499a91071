"""Waves: every ImagePromotion due at one instant starts together, on whichever tick comes first.

Kopf runs one timer per CR, and the timers' phases are spread over the tick (each starts when its
CR is first seen). If each CR only started its own pass on its own tick, the CRs of one image and
one repository would pass up to a tick apart: the scans could not be shared and the pushes could
not be batched. So a pass records when its CR is next due (`DueQueue.set`), from the instant its
wave was *due* (a pass no wave started: when it began), not when each pass ended: CRs started
together are due together again, one interval later (not one interval and the few milliseconds
the wave took to start, which the grid would round up to a whole extra tick).
On every tick of any CR the operator takes everything due (`DueQueue.pop_due`) and starts it at
once; with a thousand CRs some timer ticks every few milliseconds, so a wave starts within
milliseconds of being due, and no CR waits for its own timer. Due instants are also rounded up
to a grid (`align`, the tick) so CRs created a few seconds apart still end up in one wave; and
a wave also takes the CRs due within one more tick that share its image or its repository
(`pop_soon`), so two waves a slot apart (CRs that first passed across a slot's edge, or after a
restart, each on its own tick) become one: those CRs pass up to a tick early, once.

The queue is a heap with lazy deletion: `set` and `discard` are O(log n), and a tick that finds
nothing due costs one comparison, so ticking a thousand timers stays cheap. Nothing here knows
Kopf or time zones: instants are aware datetimes handed in by the caller.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta


class DueQueue:
    """When each CR is next due, cheapest-first; see the module docstring."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []
        self._at: dict[str, tuple[datetime, int]] = {}
        self._order = itertools.count()

    def set(self, key: str, at: datetime | None) -> None:
        """`key` is next due at `at` (None: only a spec change or a trigger makes it due)."""
        if at is None:
            self.discard(key)
            return
        stamp = (at, next(self._order))
        self._at[key] = stamp
        heapq.heappush(self._heap, (*stamp, key))
        if len(self._heap) > 4 * len(self._at) + 64:  # stale entries dominate: rebuild
            self._compact()

    def discard(self, key: str) -> None:
        """Forget `key` (deleted, or due only on a change)."""
        self._at.pop(key, None)

    def due_at(self, key: str) -> datetime | None:
        """When `key` is due, if it is queued."""
        stamp = self._at.get(key)
        return stamp[0] if stamp else None

    def next_at(self) -> datetime | None:
        """The earliest instant anything is due (None: nothing queued)."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[str]:
        """Every key due at or before `now`, earliest first, removed from the queue."""
        return [key for key, _ in self._pop_due(now)]

    def take_due(self, now: datetime) -> list[tuple[str, datetime]]:
        """`pop_due`, with the instant each key was due."""
        return list(self._pop_due(now))

    def pop_soon(
        self, horizon: datetime, wanted: Callable[[str], bool]
    ) -> list[tuple[str, datetime]]:
        """The keys due by `horizon` that `wanted` accepts, with their instants, removed (one
        pass over the heap, in no particular order: a wave starts them all at once)."""
        taken = [
            (key, at)
            for at, order, key in self._heap
            if at <= horizon and self._at.get(key) == (at, order) and wanted(key)
        ]
        for key, _ in taken:
            del self._at[key]
        return taken

    def _pop_due(self, now: datetime) -> Iterator[tuple[str, datetime]]:
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return
            at, _, key = heapq.heappop(self._heap)
            del self._at[key]
            yield key, at

    def _drop_stale(self) -> None:
        while self._heap:
            at, order, key = self._heap[0]
            if self._at.get(key) == (at, order):
                return
            heapq.heappop(self._heap)

    def _compact(self) -> None:
        self._heap = [(at, order, key) for key, (at, order) in self._at.items()]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, key: object) -> bool:
        return key in self._at


def align(moment: datetime, grid: float | None) -> datetime:
    """`moment` rounded up to the next multiple of `grid` seconds since the epoch (None: as is).

    CRs that became due at slightly different instants (their passes started a few seconds
    apart, e.g. created one by one) fall into one slot and so into one wave.
    """
    if not grid or grid <= 0:
        return moment
    stamp = moment.timestamp()
    slots = -(-stamp // grid)  # ceiling division on floats
    return moment + timedelta(seconds=slots * grid - stamp)
