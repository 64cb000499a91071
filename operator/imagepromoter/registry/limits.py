"""Politeness towards registries: bounded concurrency, an adaptive request rate, retry timing.

Registries rate-limit per client address (Docker Hub by pulls, ghcr.io and Quay by requests), and
one operator process serves many ImagePromotions that often share one registry. So the limits
belong to the registry host, not to a CR: `HostLimits` holds a semaphore (requests in flight) and
a `pacing.Pacer` (the pure token bucket that slows down on 429, Retry-After and RateLimit-*
headers, and recovers on success) for one host, and the client keeps one per host that every
CR's scan goes through. This module is the async side: it sleeps what the pacer decides, checks
the wait against the scan's deadline, and logs one INFO line when a host throttles us.

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
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime

from imagepromoter import pacing

DEFAULT_IN_FLIGHT = 4
DEFAULT_RATE = pacing.DEFAULT_RATE  # sustained requests per second per host
DEFAULT_BURST = pacing.DEFAULT_BURST
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})

log = logging.getLogger("imagepromoter.registry")


class HostLimits:
    """The semaphore and the adaptive pacer (pacing.Pacer) every request to one host goes through.

    `clock` and `sleep` are injectable so tests check the pacing without waiting: a fake `sleep`
    that advances the fake `clock` by what it was asked to wait sees the exact waits.
    """

    def __init__(
        self,
        in_flight: int = DEFAULT_IN_FLIGHT,
        rate: float = DEFAULT_RATE,
        burst: float | None = None,
        *,
        host: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self.host = host
        self.semaphore = asyncio.Semaphore(in_flight)
        self.pacer = pacing.Pacer(rate, burst, now=clock())
        self.why = ""  # the last throttling answer, for messages: "answered 429, its limit ..."
        self._clock = clock
        self._sleep = sleep
        self._logged_until = float("-inf")

    @contextlib.asynccontextmanager
    async def slot(
        self, deadline: Deadline | None = None, *, waited_until: float | None = None
    ) -> AsyncIterator[float]:
        """Hold one in-flight slot after the pacing wait; yields the time the request goes.

        `waited_until`: a retry whose caller already waited for the host's hold up to that
        instant; it takes no new token (its first attempt paid one) and waits only for a hold
        that grew meanwhile. A wait that would end past `deadline` raises Throttled instead.
        """
        async with self.semaphore:
            now = self._clock()
            if waited_until is None:
                wait = self.pacer.reserve(now)
                target = now + wait
            else:
                target = max(waited_until, self.pacer.held_until)
                wait = target - waited_until
            # `target` is where our wait ends on the pacer's clock; comparing holds with it (not
            # with the clock after the sleep) keeps fake-clock tests exact.
            while wait > 1e-9:
                if deadline is not None and wait >= deadline.remaining():
                    raise Throttled(self.host, wait, self.why)
                self._announce(target, wait)
                await self._sleep(wait)
                wait = self.pacer.held_until - target  # a 429 meanwhile holds us longer
                target = max(target, self.pacer.held_until)
            yield self._clock()

    def observe(self, status: int, headers: Mapping[str, str], *, sent: float) -> pacing.Verdict:
        """Feed one answer to the pacer; one INFO line when it slows the host down."""
        signal = pacing.read(status, headers)
        verdict = self.pacer.observe(self._clock(), signal, sent=sent)
        if signal.throttled or verdict.slowed:
            limit = signal.limit_words()
            self.why = f"answered {status}" + (f": {limit}" if limit else "")
        if verdict.slowed:
            self._logged_until = max(self._logged_until, self.pacer.held_until)
            log.info(
                "registry %s is rate-limiting us (%s): waiting %.3g s before the next request, "
                "then at most %.3g requests/s",
                self.host,
                self.why,
                verdict.hold,
                verdict.rate,
            )
        return verdict

    def _announce(self, target: float, wait: float) -> None:
        """One INFO line for a hold we had not logged (an exhausted quota), not per request."""
        held = self.pacer.held_until
        if held >= target - 1e-9 and held > self._logged_until:
            self._logged_until = held
            log.info(
                "registry %s has no requests left until its limit resets (%s): waiting %.3g s",
                self.host,
                self.why or "RateLimit-Remaining: 0",
                wait,
            )


class Throttled(Exception):
    """A pacing wait that would end past the scan's deadline (the transport words the error)."""

    def __init__(self, host: str, wait: float, why: str) -> None:
        super().__init__(f"{host}: {wait:g} s")
        self.host = host
        self.wait = wait
        self.why = why


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date), or None."""
    return pacing.retry_after(value, now or datetime.now(UTC))


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
