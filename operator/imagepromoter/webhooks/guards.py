"""Replay and flood guards for the receiver, with bounded memory and an injectable clock.

- `Deliveries`: GitHub re-sends a delivery with the same `X-GitHub-Delivery` id (a manual
  redelivery, a retry after a timeout); one already acted on is answered 2xx and ignored. Ids
  are remembered per ImageWebhook, for `ttl` seconds, at most `max_entries` (oldest dropped),
  and only once the event was recorded, so a delivery that failed can be redelivered.
- `RateLimit`: a token bucket per source address (`rate` per second, `burst`), at most
  `max_addresses` buckets (the least recently seen dropped), so a flood from one address is
  answered 429 without touching the Kubernetes API, and many addresses cannot exhaust memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class Deliveries:
    """Delivery ids recently acted on."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl
        self._clock = clock

    def seen(self, hook: str, delivery: str) -> bool:
        """Whether this delivery of this hook was already acted on (an empty id never was)."""
        if not delivery:
            return False
        self._expire()
        return (hook, delivery) in self._seen

    def remember(self, hook: str, delivery: str) -> None:
        """Record a delivery as acted on."""
        if not delivery:
            return
        key = (hook, delivery)
        self._seen.pop(key, None)
        self._seen[key] = self._clock()
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self) -> None:
        now = self._clock()
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self._ttl:
                break
            del self._seen[key]


class RateLimit:
    """Token buckets per source address."""

    def __init__(
        self,
        *,
        rate: float = 20.0,
        burst: float = 200.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._max = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, address: str) -> bool:
        """Take one token for `address`; False when its bucket is empty."""
        now = self._clock()
        tokens, then = self._buckets.pop(address, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - then) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[address] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)
