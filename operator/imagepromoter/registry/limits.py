"""Politeness towards registries: bounded concurrency, a request rate, and retry timing.

Registries rate-limit per client address (Docker Hub by pulls, ghcr.io and Quay by requests), and
one operator process serves many ImagePromotions that often share one registry. So the limits
belong to the registry host, not to a CR: `HostLimits` holds a semaphore (requests in flight) and
a token bucket (requests per second) for one host, and the client keeps one per host that every
CR's scan goes through.

When a registry pushes back (429, 502, 503, 504) it may say when to come back in `Retry-After`,
as seconds or an HTTP date; we honour it. Otherwise we back off exponentially with jitter so that
many replicas do not retry in lockstep. Both are capped: a registry that asks for an hour is
reported as an error rather than waited for, and the operator's next interval tries again.

A scan is bounded as a whole too (`Deadline`): retries, waits and pages all draw on one budget,
so a registry that answers slowly but validly cannot hold a scan (and the CR's pass) for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

DEFAULT_IN_FLIGHT = 4
DEFAULT_RATE = 20.0  # requests per second per host
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class TokenBucket:
    """`rate` requests per second on average, bursts of up to `burst`.

    `clock` and `sleep` are injectable so tests can check the pacing without waiting: a fake
    `sleep` must advance the fake `clock` by what it was asked to wait.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._sleep = sleep
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Spend one token, then wait until the bucket is out of debt (one waiter at a time).

        The token is taken before the wait (the balance may go negative) rather than re-checked
        after it: a re-check can come up a rounding error short and wait again for nothing.
        """
        async with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            if self._tokens < -1e-9:  # not for a rounding error's worth of debt
                await self._sleep(-self._tokens / self.rate)


class HostLimits:
    """The semaphore and token bucket every request to one host goes through."""

    def __init__(
        self,
        in_flight: int = DEFAULT_IN_FLIGHT,
        rate: float = DEFAULT_RATE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self.semaphore = asyncio.Semaphore(in_flight)
        self.bucket = TokenBucket(rate, clock=clock, sleep=sleep)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the host's in-flight slots, after waiting for the rate."""
        async with self.semaphore:
            await self.bucket.acquire()
            yield


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Delay before retry number `attempt` (0-based): exponential, capped, half of it jittered."""
    ceiling: float = min(cap, base * 2.0**attempt)
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


class Deadline:
    """A total time budget on an injectable clock: one per scan, read before every request."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (never below zero)."""
        return max(0.0, self._ends - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self._ends
