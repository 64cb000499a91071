"""How fast to talk to one registry host: a token bucket that listens to the registry (pure).

Registries publish their limits in different ways, or not at all: Docker Hub counts manifest GETs
(100 or 10 an hour, announced as `ratelimit-remaining: 76;w=21600`), Quay allows a few requests
a second with bursts and answers 429, ghcr.io answers 429 with its own budget in the body, cloud
registries (ECR, Artifact Registry) have quotas in the thousands a second, a self-hosted
distribution or Harbor usually none. So one fixed rate is either too slow for most or too fast
for some. `Pacer` starts generous (a burst that lets one whole cycle through, then a sustained
rate) and adapts per host from what each answer says, with no request of its own to probe:
- a 429, or a 503 with Retry-After, halves the rate (once per burst: only for a request sent
  after the last cut) and holds the host until Retry-After has passed;
- `RateLimit-Remaining`/`RateLimit-Reset` (and `X-RateLimit-*`) are a quota we count down, so
  at zero we wait for the reset instead of sending into a 429; Docker Hub's `N;w=S` form has no
  reset, so while our requests spend it (it falls, below one burst) the rate halves instead;
- every other answer raises the rate by a fixed step back towards the ceiling (AIMD).
Times are plain floats on the caller's monotonic clock; the caller sleeps, this module decides.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_RATE = 100.0  # sustained requests per second per host
DEFAULT_BURST = 200.0  # a whole cycle of 100 images (two requests each) without a wait
DEFAULT_FLOOR = 0.5  # the slowest a throttled host is paced (requests per second)
DEFAULT_STEP = 1.0  # requests per second regained per answer that was not throttled
DECREASE = 0.5
MAX_HOLD = 600.0  # a host is never held longer than this, whatever it asked
_EPOCH_AFTER = 10**9  # a Reset above this is a Unix time, not seconds from now


@dataclass(frozen=True)
class Signal:
    """What one answer said about the host's limits (None: it did not say)."""

    throttled: bool = False  # 429, or 503 with Retry-After
    status: int | None = None
    retry_after: float | None = None  # seconds from the answer
    remaining: int | None = None
    reset: float | None = None  # seconds from the answer until the quota is whole again
    limit: int | None = None
    window: float | None = None  # seconds, from Docker Hub's `N;w=S` form

    def limit_words(self) -> str:
        """Retry-After and the limit as the registry stated them, for messages and logs."""
        parts = [f"Retry-After {self.retry_after:g} s"] if self.retry_after is not None else []
        stated = self.quota_words()
        return ", ".join([*parts, stated] if stated else parts)

    def quota_words(self) -> str:
        """The limit, what is left and the reset as stated ('' if the answer stated none)."""
        parts = []
        if self.limit is not None:
            per = f" per {self.window:g} s" if self.window is not None else ""
            parts.append(f"its limit is {self.limit} requests{per}")
        if self.remaining is not None:
            parts.append(f"{self.remaining} left")
        if self.reset is not None:
            parts.append(f"reset in {self.reset:g} s")
        return ", ".join(parts)


@dataclass(frozen=True)
class Verdict:
    """The pacer's answer to one observed response."""

    slowed: bool  # the rate was cut or the host held: worth one log line
    hold: float  # seconds from now before any request to the host (0: none)
    rate: float  # the host's rate after this answer
    signal: Signal


def read(status: int, headers: Mapping[str, str], now: datetime | None = None) -> Signal:
    """The limit signals in one answer's status and headers (names case-insensitive)."""
    lower = {k.lower(): v for k, v in headers.items()}
    wall = _date(lower.get("date")) or now or datetime.now(UTC)
    wait = retry_after(lower.get("retry-after"), wall)
    remaining, window = _count(_first(lower, "ratelimit-remaining", "x-ratelimit-remaining"))
    limit, limit_window = _count(_first(lower, "ratelimit-limit", "x-ratelimit-limit"))
    reset = _reset(_first(lower, "ratelimit-reset", "x-ratelimit-reset"), wall)
    return Signal(
        throttled=status == 429 or (status == 503 and wait is not None),
        status=status,
        retry_after=wait,
        remaining=remaining,
        reset=reset,
        limit=limit,
        window=window if window is not None else limit_window,
    )


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    when = _date(text)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


class Pacer:
    """One host's pacing state; `reserve` before each request, `observe` after each answer."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: float | None = None,
        *,
        floor: float = DEFAULT_FLOOR,
        step: float = DEFAULT_STEP,
        now: float = 0.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = rate
        self.full_burst = burst if burst is not None else max(1.0, 2 * rate)
        self.floor = min(floor, rate)
        self.step = step
        self.rate = rate
        self.tokens = self.full_burst
        self.stamp = now
        self.held_until = now  # no request before this (Retry-After, an exhausted quota)
        self.cut_at = float("-inf")  # when the rate was last cut
        self.quota: int | None = None  # requests the registry still allows, counted down
        self.quota_resets: float | None = None
        self.reported: int | None = None  # the last RateLimit-Remaining the registry sent

    @property
    def burst(self) -> float:
        """The bucket's size now: it shrinks with the rate, so a throttled host gets no burst."""
        return max(1.0, self.full_burst * self.rate / self.ceiling)

    def reserve(self, now: float) -> float:
        """Take one request's token; seconds to wait before sending it (0: at once)."""
        self._refill(now)
        self.tokens -= 1
        if self.quota is not None and self.quota_resets is not None and now >= self.quota_resets:
            self.quota, self.quota_resets = None, None  # the window has turned over
        if self.quota is not None:
            if self.quota <= 0 and self.quota_resets is not None:
                self.held_until = max(self.held_until, min(self.quota_resets, now + MAX_HOLD))
            self.quota -= 1
        debt = -self.tokens / self.rate if self.tokens < -1e-9 else 0.0
        return self.held(now) + debt  # a debt is paid off after the hold, not during it

    def held(self, now: float) -> float:
        """Seconds the host is still held (a 429 that arrived while a request waited)."""
        return max(0.0, self.held_until - now)

    def observe(self, now: float, signal: Signal, *, sent: float) -> Verdict:
        """Adapt to one answer to a request sent at `sent`."""
        self._refill(now)
        spent = (  # the registry's own count fell between two answers: our requests count
            signal.remaining is not None
            and self.reported is not None
            and signal.remaining < self.reported
            and signal.remaining < self.burst
        )
        if signal.remaining is not None:
            self.reported = signal.remaining
            resets = now + signal.reset if signal.reset is not None else None
            same_window = (
                resets is not None
                and self.quota is not None
                and self.quota_resets is not None
                and resets <= self.quota_resets + 1.0  # Reset is in whole seconds
            )
            # In one window our own count wins when lower (an older answer may arrive late);
            # without a reset the registry's count wins (it knows what it did not count).
            if same_window and self.quota is not None:
                self.quota = min(self.quota, signal.remaining)
            else:
                self.quota = signal.remaining
            self.quota_resets = resets
        slowed = False
        if signal.throttled:
            if signal.retry_after is not None:
                wait = signal.retry_after
            elif signal.remaining == 0 and signal.reset is not None:
                wait = signal.reset
            else:
                wait = 0.0
            wait = min(wait, MAX_HOLD)
            if now + wait > self.held_until:
                self.held_until = now + wait
                slowed = wait > 0
            slowed = self._cut(now, sent) or slowed
        elif spent and signal.reset is None:
            slowed = self._cut(now, sent)  # a quota with no reset (`N;w=S`) is being spent
        else:
            self.rate = min(self.ceiling, self.rate + self.step)
        return Verdict(slowed=slowed, hold=self.held(now), rate=self.rate, signal=signal)

    def _cut(self, now: float, sent: float) -> bool:
        """Halve the rate once per burst: answers to requests sent before the cut do not count."""
        if sent < self.cut_at:
            return False
        self.rate = max(self.floor, self.rate * DECREASE)
        self.cut_at = now
        self.tokens = min(self.tokens, 0.0)  # what is left of the burst is not spent into a wall
        return True

    def _refill(self, now: float) -> None:
        """Tokens accrue with time, but not while the host is held (no burst after a hold)."""
        start = max(self.stamp, self.held_until)
        if now > start:
            self.tokens = min(self.burst, self.tokens + (now - start) * self.rate)
        self.stamp = max(self.stamp, now)


def _first(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if name in headers:
            return headers[name]
    return None


def _count(value: str | None) -> tuple[int | None, float | None]:
    """`76`, or Docker Hub's `76;w=21600` -> (76, 21600.0); anything else -> (None, None)."""
    if value is None:
        return None, None
    head, _, params = value.partition(";")
    head = head.split(",")[0].strip()  # `100, 100;w=60` (a list of policies): the first
    if not head.isdigit():
        return None, None
    window = None
    for param in params.split(";"):
        key, _, text = param.strip().partition("=")
        if key == "w" and text.strip().isdigit():
            window = float(text.strip())
    return int(head), window


def _reset(value: str | None, now: datetime) -> float | None:
    """Seconds until the reset: delta-seconds (RateLimit-Reset) or a Unix time (X-...-Reset)."""
    if value is None or not value.strip().isdigit():
        return None
    number = int(value.strip())
    if number > _EPOCH_AFTER:
        return max(0.0, number - now.timestamp())
    return float(number)


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
