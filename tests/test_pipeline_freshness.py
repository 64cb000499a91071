"""pipeline/freshness.py: each cause's not_before, on a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagepromoter.pipeline import freshness

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=30)
LATER = NOW + timedelta(hours=2)  # a client whose clock runs ahead


def at(when: datetime) -> float:
    return when.timestamp()


PARSED = [
    ("2026-12-01T09:59:30Z", EARLIER),
    ("2026-12-01T09:59:30.250Z", EARLIER + timedelta(milliseconds=250)),
    ("2026-12-01T10:59:30+01:00", EARLIER),
    (f"{at(EARLIER):.0f}", EARLIER),
    (f"{at(EARLIER) + 0.5}", EARLIER + timedelta(milliseconds=500)),
    (" 1796119170 ", datetime.fromtimestamp(1796119170, UTC)),
    ("2026-12-01T09:59:30", None),  # no zone: which instant?
    ("x", None),
    ("", None),
    ("nan", None),
    ("-5", None),
    ("1e30", None),
    ("9" * 80, None),
    (12, None),
]


@pytest.mark.parametrize(("text", "when"), PARSED, ids=[repr(t) for t, _ in PARSED])
def test_parse_time_reads_rfc3339_and_epoch_seconds(text: Any, when: datetime | None) -> None:
    assert freshness.parse_time(text) == when


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


CAUSES = [
    ("created", lambda: freshness.created({"creationTimestamp": _iso(EARLIER)}, NOW), EARLIER),
    (
        "created, clock ahead",
        lambda: freshness.created({"creationTimestamp": _iso(LATER)}, NOW),
        NOW,
    ),
    ("created, no timestamp", lambda: freshness.created({}, NOW), NOW),
    (
        "spec change: the newest managedFields time",
        lambda: freshness.changed(
            {
                "managedFields": [
                    {"time": _iso(EARLIER - timedelta(hours=1))},
                    {"time": _iso(EARLIER)},
                    {"manager": "no-time"},
                    "junk",
                ]
            },
            NOW,
        ),
        EARLIER,
    ),
    (
        "spec change: the spec's writer, not a later status write",
        lambda: freshness.changed(
            {
                "managedFields": [
                    {"time": _iso(EARLIER), "fieldsV1": {"f:spec": {"f:interval": {}}}},
                    {"time": _iso(NOW), "subresource": "status", "fieldsV1": {"f:status": {}}},
                ]
            },
            NOW,
        ),
        EARLIER,
    ),
    ("spec change, no managedFields", lambda: freshness.changed({}, NOW), NOW),
    (
        "spec change, clock ahead",
        lambda: freshness.changed({"managedFields": [{"time": _iso(LATER)}]}, NOW),
        NOW,
    ),
    ("requested-at epoch", lambda: freshness.requested(f"{at(EARLIER):.0f}", NOW), EARLIER),
    ("requested-at RFC 3339", lambda: freshness.requested(_iso(EARLIER), NOW), EARLIER),
    ("requested-at in the future", lambda: freshness.requested(_iso(LATER), NOW), NOW),
    ("requested-at a label", lambda: freshness.requested("please", NOW), NOW),
    ("requested-at '1'", lambda: freshness.requested("1", NOW), NOW),
    (
        "requested-at older than the horizon",
        lambda: freshness.requested(_iso(NOW - freshness.REQUEST_HORIZON - timedelta(1)), NOW),
        NOW,
    ),
    (
        "requested-at just inside the horizon",
        lambda: freshness.requested(_iso(NOW - freshness.REQUEST_HORIZON), NOW),
        NOW - freshness.REQUEST_HORIZON,
    ),
    ("webhook", lambda: freshness.webhook("2026-12-01T09:59:30.000Z", NOW), EARLIER),
    ("webhook, clock ahead", lambda: freshness.webhook(_iso(LATER), NOW), NOW),
    ("webhook, unreadable", lambda: freshness.webhook("", NOW), NOW),
    ("timer", lambda: freshness.timer(NOW, timedelta(minutes=5)), NOW - timedelta(minutes=5)),
    (
        "timer, a tick of slack",
        lambda: freshness.timer(NOW, timedelta(minutes=5), slack=timedelta(seconds=10)),
        NOW - timedelta(minutes=4, seconds=50),
    ),
    (
        "timer, slack at most half the interval",
        lambda: freshness.timer(NOW, timedelta(seconds=10), slack=timedelta(seconds=10)),
        NOW - timedelta(seconds=5),
    ),
]


@pytest.mark.parametrize(("compute", "expected"), [(c, e) for _, c, e in CAUSES],
                         ids=[i for i, *_ in CAUSES])  # fmt: skip
def test_not_before_per_cause(compute: Any, expected: datetime) -> None:
    assert compute() == at(expected)


def test_a_timer_with_an_interval_of_centuries_takes_any_answer() -> None:
    assert freshness.timer(NOW, timedelta.max) == 0.0
