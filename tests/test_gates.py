"""gates.py: durations, pins and minAge, table-driven (pure; `created` is an in-memory dict)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagepromoter import errors, gates, policy

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
REGEX = r"^(?P<version>\d+\.\d+\.\d+)-dev$"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("0s", timedelta(0)),
        ("1h30m", timedelta(minutes=90)),
        (" 24h ", timedelta(hours=24)),
        ("8760h", timedelta(hours=8760)),
    ],
    ids=["hour", "zero", "compound", "spaces", "a-year"],
)
def test_durations_that_parse(text: str, expected: timedelta) -> None:
    assert gates.parse_duration("spec.minAge", text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5m", "spec.minAge: '-5m' is negative; write a duration of 0s or more"),
        (
            "soon",
            "spec.minAge: 'soon' is not a duration; write hours, minutes and seconds like 30m, "
            "1h or 24h",
        ),
        (
            "1d",
            "spec.minAge: '1d' is not a duration; write hours, minutes and seconds like 30m, "
            "1h or 24h",
        ),
        ("", "spec.minAge: must be a duration such as 30m, 1h or 24h, not ''"),
        (5, "spec.minAge: must be a duration such as 30m, 1h or 24h, not 5"),
        ("8761h", "spec.minAge: '8761h' is longer than a year (8760h)"),
    ],
    ids=["negative", "words", "days", "empty", "number", "too-long"],
)
def test_bad_durations_name_the_field_and_the_fix(value: Any, message: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        gates.parse_duration("spec.minAge", value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("pin", "exclude", "message"),
    [
        ("1.2.0-dev", (), None),
        (
            "1.2.0-stable",
            (),
            "spec.pin: '1.2.0-stable' does not match tagRegex "
            f"{REGEX!r}; a pin must be a tag this ImagePromotion could promote",
        ),
        (
            "1.2.0-dev",
            ("^1\\.2\\.",),
            "spec.pin: '1.2.0-dev' is excluded by spec.excludeTags[0] "
            "'^1\\\\.2\\\\.'; a pin is not a way around excludeTags",
        ),
        ("a b", (), "spec.pin: 'a b' is not an image tag"),
    ],
    ids=["admitted", "fails-regex", "excluded", "not-a-tag"],
)
def test_a_pin_must_pass_tag_regex_and_exclude_tags(
    pin: str, exclude: tuple[str, ...], message: str | None
) -> None:
    if message is None:
        assert gates.check_pin(pin, REGEX, exclude) == pin
        return
    with pytest.raises(errors.InvalidSpec) as caught:
        gates.check_pin(pin, REGEX, exclude)
    assert str(caught.value) == message


def test_a_pin_missing_from_the_registry_is_no_matching_tag() -> None:
    assert gates.pin_pool("1.0.0-dev", ["1.0.0-dev", "1.1.0-dev"], "r/app") == ["1.0.0-dev"]
    with pytest.raises(errors.NoMatchingTag) as caught:
        gates.pin_pool("1.9.9-dev", ["1.0.0-dev", "1.1.0-dev"], "r/app")
    assert caught.value.message == (
        "r/app: spec.pin 1.9.9-dev is not in the registry (2 tags listed); push it, or set "
        "spec.pin to a tag that exists"
    )


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


class Created:
    """The registry's `created` answers, counting which tags were asked for."""

    def __init__(self, times: Mapping[str, datetime]) -> None:
        self.times = dict(times)
        self.asked: list[str] = []

    async def __call__(self, tags: Sequence[str]) -> Mapping[str, datetime]:
        self.asked.extend(tags)
        return {t: self.times[t] for t in tags if t in self.times}


def evaluate(tags: Sequence[str]) -> policy.Selection:
    return policy.evaluate(tags, tag_regex=REGEX)


TAGS = ["1.0.0-dev", "1.1.0-dev", "1.2.0-dev"]


@pytest.mark.parametrize(
    ("min_age", "times", "first_seen", "chosen", "young", "seen_after"),
    [
        (timedelta(0), {}, {}, "1.2.0-dev", [], {}),
        (timedelta(hours=1), {"1.2.0-dev": ago(hours=2)}, {}, "1.2.0-dev", [], {}),
        (
            timedelta(hours=1),
            {"1.2.0-dev": ago(minutes=10), "1.1.0-dev": ago(hours=3)},
            {},
            "1.1.0-dev",
            [("1.2.0-dev", NOW + timedelta(minutes=50), "created")],
            {},
        ),
        (
            timedelta(hours=1),
            {"1.2.0-dev": NOW + timedelta(days=30), "1.1.0-dev": ago(hours=3)},
            {},
            "1.1.0-dev",
            [("1.2.0-dev", NOW + timedelta(hours=1), "first seen")],
            {"1.2.0-dev": NOW},
        ),
        (
            timedelta(hours=1),
            {"1.1.0-dev": ago(hours=3)},
            {"1.2.0-dev": ago(minutes=61)},
            "1.2.0-dev",
            [],
            {},
        ),
        (
            timedelta(hours=1),
            {"1.1.0-dev": ago(hours=3)},
            {"1.2.0-dev": ago(minutes=20), "gone-tag": ago(minutes=5)},
            "1.1.0-dev",
            [("1.2.0-dev", NOW + timedelta(minutes=40), "first seen")],
            {"1.2.0-dev": ago(minutes=20)},
        ),
        (
            timedelta(hours=1),
            {t: ago(minutes=1) for t in TAGS},
            {},
            None,
            [
                ("1.2.0-dev", NOW + timedelta(minutes=59), "created"),
                ("1.1.0-dev", NOW + timedelta(minutes=59), "created"),
                ("1.0.0-dev", NOW + timedelta(minutes=59), "created"),
            ],
            {},
        ),
    ],
    ids=[
        "no-min-age",
        "old-enough",
        "young-newest-older-promoted-meanwhile",
        "created-in-the-future-falls-back-to-first-seen",
        "first-seen-long-enough-ago",
        "first-seen-kept-only-for-young-candidates",
        "all-young",
    ],
)
async def test_min_age_chooses_among_old_enough_tags(
    min_age: timedelta,
    times: dict[str, datetime],
    first_seen: dict[str, datetime],
    chosen: str | None,
    young: list[tuple[str, datetime, str]],
    seen_after: dict[str, datetime],
) -> None:
    created = Created(times)
    gated = await gates.choose(
        TAGS,
        evaluate=evaluate,
        created=created,
        min_age=min_age,
        first_seen=first_seen,
        now=NOW,
    )
    assert gated.selection.tag == chosen
    assert [(y.tag, y.qualifies_at, y.since) for y in gated.young] == young
    assert gated.first_seen == seen_after
    if min_age == timedelta(0):
        assert created.asked == []  # no minAge: no extra registry reads
    assert gated.until == (min(y[1] for y in young) if young else None)


async def test_set_aside_tags_are_bounded() -> None:
    tags = [f"1.{n}.0-dev" for n in range(gates.MAX_YOUNG + 10)]
    gated = await gates.choose(
        tags,
        evaluate=evaluate,
        created=Created({}),
        min_age=timedelta(hours=1),
        first_seen={},
        now=NOW,
    )
    assert gated.selection.tag is None
    assert len(gated.young) == gates.MAX_YOUNG
    assert len(gated.first_seen) == gates.MAX_FIRST_SEEN


def test_note_names_the_young_tag_and_when() -> None:
    gated = gates.Gated(
        selection=evaluate(TAGS),
        young=(gates.Young("1.3.0-dev", NOW, "created"), gates.Young("1.4.0-dev", NOW, "created")),
        first_seen={},
    )
    assert gated.note(timedelta(minutes=90)) == (
        "1.3.0-dev is younger than minAge 1h30m and qualifies at 2026-11-29T10:00:00Z (and 1 more)"
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, timedelta(minutes=5)),
        ({"waitingUntil": "2026-11-29T10:02:00Z"}, timedelta(minutes=2)),
        ({"waitingUntil": "2026-11-29T11:00:00Z"}, timedelta(minutes=5)),
        ({"waitingUntil": "2026-11-29T09:00:00Z"}, timedelta(seconds=1)),
        ({"waitingUntil": "garbage"}, timedelta(minutes=5)),
    ],
    ids=["no-wait", "sooner", "later-than-interval", "past", "unreadable"],
)
def test_next_pass_is_due_when_a_waiting_tag_qualifies(
    status: dict[str, str], expected: timedelta
) -> None:
    assert gates.next_pass(timedelta(minutes=5), status, NOW) == expected


@pytest.mark.parametrize(
    ("duration", "text"),
    [(timedelta(0), "0s"), (timedelta(hours=24), "24h"), (timedelta(seconds=3725), "1h2m5s")],
    ids=["zero", "day", "mixed"],
)
def test_format_duration(duration: timedelta, text: str) -> None:
    assert gates.format_duration(duration) == text


def test_first_seen_round_trips_through_the_status() -> None:
    seen = {"1.2.0-dev": NOW}
    listed = gates.first_seen_status(seen)
    assert listed == [{"tag": "1.2.0-dev", "time": "2026-11-29T10:00:00Z"}]
    assert gates.first_seen_of({"firstSeen": listed}) == seen
    assert gates.first_seen_status({}) is None
    assert gates.first_seen_of({"firstSeen": [{"tag": 1}, "x", {"tag": "a", "time": "?"}]}) == {}


@pytest.mark.parametrize(
    ("status", "now", "due"),
    [
        ({"lastScanTime": "2026-11-29T10:00:00Z"}, NOW + timedelta(minutes=2), False),
        (
            {"lastScanTime": "2026-11-29T10:00:00Z", "waitingUntil": "2026-11-29T10:02:00Z"},
            NOW + timedelta(minutes=2),
            True,
        ),
        (
            {"lastScanTime": "2026-11-29T10:00:00Z", "waitingUntil": "2026-11-29T10:02:00Z"},
            NOW + timedelta(minutes=1),
            False,
        ),
        (
            {"lastScanTime": "2026-11-29T10:03:00Z", "waitingUntil": "2026-11-29T10:02:00Z"},
            NOW + timedelta(minutes=4),
            False,
        ),
    ],
    ids=["interval-not-passed", "waiting-time-came", "waiting-time-not-yet", "scanned-since"],
)
def test_after_a_restart_a_waiting_cr_is_due_at_its_time(
    status: dict[str, str], now: datetime, due: bool
) -> None:
    from imagepromoter import status as status_module

    assert status_module.is_due(status, timedelta(hours=1), now) is due
