"""pacing (pure): what the registry's answers say, and the per-host pacer on a fake clock.

Each scenario is a list of steps on one Pacer: ("reserve", t, wait) checks the wait before a
request at time t; ("answer", t, sent, signal, rate, hold) feeds an answer to a request sent at
`sent` and checks the rate and hold after it. Times are plain seconds, nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from imagepromoter import pacing

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)

READ = [
    (200, {}, pacing.Signal(status=200)),
    (429, {}, pacing.Signal(throttled=True, status=429)),
    (429, {"Retry-After": "3"}, pacing.Signal(throttled=True, status=429, retry_after=3.0)),
    (503, {"Retry-After": "7"}, pacing.Signal(throttled=True, status=503, retry_after=7.0)),
    (503, {}, pacing.Signal(status=503)),  # a plain 503 is an outage, not a limit
    (
        429,
        {"Retry-After": "Tue, 01 Dec 2026 10:00:30 GMT", "Date": "Tue, 01 Dec 2026 10:00:10 GMT"},
        pacing.Signal(throttled=True, status=429, retry_after=20.0),  # from the answer's Date
    ),
    (
        429,
        {"Retry-After": "Tue, 01 Dec 2026 10:00:30 GMT"},
        pacing.Signal(throttled=True, status=429, retry_after=30.0),  # from our wall clock
    ),
    (
        200,
        {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"},
        pacing.Signal(status=200, remaining=76, limit=100, window=21600.0),
    ),
    (
        200,
        {"RateLimit-Limit": "60", "RateLimit-Remaining": "0", "RateLimit-Reset": "12"},
        pacing.Signal(status=200, remaining=0, reset=12.0, limit=60),
    ),
    (
        200,
        {"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": str(int(NOW.timestamp()) + 90)},
        pacing.Signal(status=200, remaining=5, reset=90.0),  # a Unix time, as GitHub sends
    ),
    (
        200,
        {"RateLimit-Remaining": "many", "RateLimit-Reset": "soon", "Retry-After": "later"},
        pacing.Signal(status=200),  # what does not parse is not a signal
    ),
]


@pytest.mark.parametrize(
    ("status", "headers", "signal"),
    READ,
    ids=[
        "nothing",
        "bare-429",
        "retry-after-seconds",
        "503-retry-after",
        "plain-503",
        "retry-after-date-vs-date-header",
        "retry-after-date-vs-now",
        "docker-hub-window-form",
        "ietf-reset-seconds",
        "x-ratelimit-reset-epoch",
        "garbage",
    ],
)
def test_read(status: int, headers: dict[str, str], signal: pacing.Signal) -> None:
    assert pacing.read(status, headers, NOW) == signal


THROTTLED = pacing.Signal(throttled=True, status=429)
OK = pacing.Signal(status=200)


def wait3() -> pacing.Signal:
    return pacing.Signal(throttled=True, status=429, retry_after=3.0)


def hub(remaining: int) -> pacing.Signal:
    return pacing.Signal(status=200, remaining=remaining, limit=100, window=21600.0)


SCENARIOS: dict[str, tuple[dict[str, Any], list[tuple[Any, ...]]]] = {
    "unlimited-registry-one-cycle-in-one-burst": (
        {},
        [*[("reserve", 0.0, 0.0)] * 200, ("reserve", 0.0, 0.01), ("reserve", 0.0, 0.02)],
    ),
    "retry-after-holds-the-host-and-halves-the-rate": (
        {},
        [
            ("answer", 1.0, 0.9, wait3(), 50.0, 3.0),
            ("reserve", 1.5, 2.52),  # another CR's request waits for the hold too, then 1/50 s
            ("reserve", 4.0, 0.04),  # no burst saved up during the hold: paced at 50/s
        ],
    ),
    "one-cut-per-burst": (
        {},
        [
            ("answer", 1.0, 0.9, THROTTLED, 50.0, 0.0),
            ("answer", 1.01, 0.95, THROTTLED, 50.0, 0.0),  # sent before the cut: not again
            ("answer", 1.2, 1.1, THROTTLED, 25.0, 0.0),  # sent after it: the rate was too high
        ],
    ),
    "success-recovers-additively": (
        {"rate": 10.0, "step": 1.0},
        [
            ("answer", 1.0, 0.9, THROTTLED, 5.0, 0.0),
            *[("answer", 2.0, 1.5, OK, 5.0 + i, 0.0) for i in range(1, 6)],
            ("answer", 2.0, 1.5, OK, 10.0, 0.0),  # never above the ceiling
        ],
    ),
    "floor": (
        {"rate": 2.0, "floor": 0.5},
        [
            ("answer", 1.0, 1.0, THROTTLED, 1.0, 0.0),
            ("answer", 2.0, 2.0, THROTTLED, 0.5, 0.0),
            ("answer", 3.0, 3.0, THROTTLED, 0.5, 0.0),
        ],
    ),
    "quota-at-zero-waits-for-the-reset": (
        {},
        [
            ("answer", 0.0, 0.0, pacing.Signal(status=200, remaining=2, reset=10.0), 100.0, 0.0),
            ("reserve", 0.0, 0.0),
            ("reserve", 0.0, 0.0),
            ("reserve", 1.0, 9.0),  # the third would be refused: not sent before the reset
            ("reserve", 10.0, 0.0),  # a new window: the count is unknown again
        ],
    ),
    "a-429-with-remaining-0-waits-its-reset": (
        {},
        [
            (
                "answer",
                5.0,
                5.0,
                pacing.Signal(throttled=True, status=429, remaining=0, reset=4.0),
                50.0,
                4.0,
            ),
            ("reserve", 6.0, 3.02),  # the hold, then the halved rate's 1/50 s
        ],
    ),
    "docker-hub-quota-being-spent-slows-down": (
        {},
        [
            ("answer", 0.0, 0.0, hub(76), 100.0, 0.0),
            ("reserve", 0.0, 0.0),
            ("answer", 0.1, 0.0, hub(75), 50.0, 0.0),  # our GET counted: a quota with no reset
        ],
    ),
    "docker-hub-head-not-counted-stays-fast": (
        {},
        [
            ("answer", 0.0, 0.0, hub(0), 100.0, 0.0),
            ("reserve", 0.0, 0.0),  # no reset to wait for: the registry decides what counts
            ("answer", 0.1, 0.0, hub(0), 100.0, 0.0),  # the count did not move: HEADs
            ("answer", 0.1, 0.0, hub(0), 100.0, 0.0),  # ... answers to requests sent at once
        ],
    ),
    "docker-hub-concurrent-answers-cut-once": (
        {},
        [
            ("answer", 0.0, 0.0, hub(76), 100.0, 0.0),
            ("answer", 0.1, 0.05, hub(75), 50.0, 0.0),
            ("answer", 0.11, 0.05, hub(74), 50.0, 0.0),  # sent before the cut
            ("answer", 0.12, 0.05, hub(75), 51.0, 0.0),  # a late answer: the count did not fall
        ],
    ),
    "a-long-retry-after-is-capped": (
        {},
        [
            (
                "answer",
                0.0,
                0.0,
                pacing.Signal(throttled=True, status=429, retry_after=86400.0),
                50.0,
                pacing.MAX_HOLD,
            ),
        ],
    ),
}


@pytest.mark.parametrize(("options", "steps"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_pacer(options: dict[str, Any], steps: list[tuple[Any, ...]]) -> None:
    pacer = pacing.Pacer(**options)
    for number, step in enumerate(steps):
        if step[0] == "reserve":
            _, now, wait = step
            assert pacer.reserve(now) == pytest.approx(wait), f"step {number}: {step}"
        else:
            _, now, sent, signal, rate, hold = step
            verdict = pacer.observe(now, signal, sent=sent)
            assert (verdict.rate, verdict.hold) == pytest.approx((rate, hold)), f"step {number}"


@pytest.mark.parametrize(
    ("signal", "slowed"),
    [(wait3(), True), (THROTTLED, True), (OK, False)],
    ids=["held", "cut", "fine"],
)
def test_slowed_says_when_to_log(signal: pacing.Signal, slowed: bool) -> None:
    assert pacing.Pacer().observe(1.0, signal, sent=1.0).slowed is slowed


@pytest.mark.parametrize(
    ("signal", "words"),
    [
        (wait3(), "Retry-After 3 s"),
        (hub(0), "its limit is 100 requests per 21600 s, 0 left"),
        (
            pacing.Signal(remaining=0, reset=12.0, limit=60),
            "its limit is 60 requests, 0 left, reset in 12 s",
        ),
        (OK, ""),
    ],
    ids=["retry-after", "docker-hub", "ietf", "nothing"],
)
def test_limit_words(signal: pacing.Signal, words: str) -> None:
    assert signal.limit_words() == words


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        pacing.Pacer(0.0)
