"""A pass's time budget: one total deadline shared by every network phase of the pass.

Why one budget rather than a timeout per call: a pass is several calls (Secret reads, tag list,
creation times, digest, the git write), each with its own retries; per-call timeouts add up to
whatever the slowest remote allows. `Budget.start(seconds)` is taken once when the pass begins;
each phase runs inside `phase(error_class, what)`, an asyncio timeout of what is left, and
running out raises that error class with a message naming the phase and the host (`what`). A
phase that begins with nothing left fails at once. An exception the adapter raises itself
(including its own TimeoutError) passes through untouched. `at` is the deadline as a
time.monotonic() instant, for adapters that run in threads (the git writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from imagepromoter import errors

DEFAULT_DEADLINE = 60.0  # seconds for all network phases of one pass (docs/operator.md)


@dataclass(frozen=True)
class Budget:
    """The time one pass may spend waiting on networks; `seconds=None` means no limit."""

    seconds: float | None
    started: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def start(cls, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> Budget:
        """A budget that starts counting now."""
        return cls(seconds=seconds, started=clock(), clock=clock)

    @property
    def at(self) -> float | None:
        """The deadline as a time.monotonic() instant (for adapters in threads)."""
        return None if self.seconds is None else self.started + self.seconds

    def remaining(self) -> float | None:
        """Seconds left, never negative; None when unlimited."""
        at = self.at
        return None if at is None else max(0.0, at - self.clock())

    @contextlib.asynccontextmanager
    async def phase(
        self, error: type[errors.PromotionError], what: str, *, slack: float = 0.0
    ) -> AsyncIterator[None]:
        """Run a network phase within what is left; running out raises `error` naming `what`."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise error(self._message(what, before=True))
        timeout = asyncio.timeout(None if remaining is None else remaining + slack)
        try:
            async with timeout:
                yield
        except TimeoutError:
            if not timeout.expired():
                raise
            raise error(self._message(what, before=False)) from None

    def _message(self, what: str, *, before: bool) -> str:
        when = "was used up before" if before else "ran out while"
        return (
            f"the pass deadline ({self.seconds:g}s) {when} {what}; it is slow or not answering, "
            "will retry (imagepromoter run --pass-deadline sets the deadline)"
        )
