"""pipeline/manual.py: which annotation value seen on the watch is a request, on a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagepromoter.pipeline import manual
from imagepromoter.webhooks import model

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SCANNED = "2026-12-01T09:50:00Z"  # the CR's status.lastScanTime


def status_of(last_scan: Any) -> dict[str, Any]:
    """The CR's status, as far as these rules read it."""
    return {} if last_scan is None else {"lastScanTime": last_scan}


def epoch(when: datetime) -> str:
    return f"{when.timestamp():.0f}"


# one CR's watch events in order: (annotation value, lastScanTime) -> the value acted on, or None
SEQUENCES: list[tuple[str, list[tuple[Any, Any]], list[str | None]]] = [
    ("no annotation, ever", [(None, SCANNED), (None, SCANNED)], [None, None]),
    ("a value added later", [(None, SCANNED), ("1", SCANNED)], [None, "1"]),
    ("the same value again", [(None, SCANNED), ("1", SCANNED), ("1", SCANNED)], [None, "1", None]),
    ("a new value", [(None, SCANNED), ("1", SCANNED), ("2", SCANNED)], [None, "1", "2"]),
    ("removed, then set again", [(None, SCANNED), ("1", SCANNED), (None, SCANNED), ("1", SCANNED)],
     [None, "1", None, "1"]),
    ("an empty value is none", [(None, SCANNED), ("", SCANNED)], [None, None]),
    ("not a string", [(None, SCANNED), (5, SCANNED)], [None, None]),
    ("an old time, changed: still a request",
     [(None, SCANNED), ("2026-01-01T00:00:00Z", SCANNED)], [None, "2026-01-01T00:00:00Z"]),
    # the first value seen by this process (a start, or a CR moved into this shard)
    ("first seen: a recent time before the last scan",
     [(epoch(NOW - timedelta(minutes=12)), SCANNED)], [None]),
    ("first seen: a time older than the horizon is not a time",
     [("2026-12-01T09:40:00Z", "2026-12-01T09:50:00Z")], ["2026-12-01T09:40:00Z"]),
    ("first seen: '1' (1970) is not a time either", [("1", SCANNED)], ["1"]),
    ("first seen: a time after the last scan", [(epoch(NOW - timedelta(minutes=5)), SCANNED)],
     [epoch(NOW - timedelta(minutes=5))]),
    ("first seen: RFC 3339 after the last scan", [("2026-12-01T09:55:00Z", SCANNED)],
     ["2026-12-01T09:55:00Z"]),
    ("first seen: exactly at the last scan", [("2026-12-01T09:50:00Z", SCANNED)], [None]),
    ("first seen: a clock ahead of ours counts as now",
     [(epoch(NOW + timedelta(hours=2)), SCANNED)], [epoch(NOW + timedelta(hours=2))]),
    ("first seen: ahead of ours, but the scan is later than our now",
     [(epoch(NOW + timedelta(hours=2)), "2026-12-01T10:30:00Z")], [None]),
    ("first seen: not a time", [("please", SCANNED)], ["please"]),
    ("first seen: never scanned (its create pass is the pass)",
     [(epoch(NOW - timedelta(minutes=5)), None)], [None]),
    ("first seen: lastScanTime unreadable", [("please", "yesterday")], [None]),
    ("first seen answered, then a new value", [("2026-12-01T09:48:00Z", SCANNED), ("2", SCANNED)],
     [None, "2"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("events", "acted"), [(e, a) for _, e, a in SEQUENCES], ids=[w for w, _, _ in SEQUENCES]
)
def test_which_value_is_a_request(events: list[tuple[Any, Any]], acted: list[str | None]) -> None:
    requests = manual.Requests()
    got = [requests.seen("uid", value, status=status_of(scan), now=NOW) for value, scan in events]
    assert got == acted


def test_each_cr_is_remembered_on_its_own() -> None:
    requests, scanned = manual.Requests(), status_of(SCANNED)
    assert requests.seen("a", None, status=scanned, now=NOW) is None
    assert requests.seen("b", "1", status=scanned, now=NOW) == "1"  # first seen, not a time
    assert requests.seen("a", "1", status=scanned, now=NOW) == "1"  # a's own new value
    assert requests.seen("b", "1", status=scanned, now=NOW) is None


def test_forget_drops_what_was_seen_and_answered() -> None:
    requests = manual.Requests()
    assert requests.seen("a", None, status=status_of(SCANNED), now=NOW) is None
    assert requests.seen("a", "x", status=status_of(SCANNED), now=NOW) == "x"
    requests.answered("a", "x")
    assert requests.last_answered("a") == "x"
    requests.forget("a")
    assert requests.last_answered("a") is None
    # seen afresh: a first sighting again (not a time, so a request)
    assert requests.seen("a", "x", status=status_of(SCANNED), now=NOW) == "x"


def trigger(received_at: str) -> str:
    return model.Trigger(
        tag="1.1.0", source="ci", type="generic-hmac", delivery="d", received_at=received_at
    ).encode()


# a webhook trigger first seen by this process: (annotation, lastScanTime) -> a request?
FIRST_TRIGGERS = [
    ("received after the last scan", trigger("2026-12-01T09:55:00.000Z"), SCANNED, True),
    ("received an hour before it: answered", trigger("2026-12-01T08:50:00.000Z"), SCANNED, False),
    ("received at it: answered", trigger("2026-12-01T09:50:00.000Z"), SCANNED, False),
    ("a clock ahead of ours counts as now", trigger("2026-12-01T12:00:00.000Z"), SCANNED, True),
    ("receivedAt unreadable: a request", trigger("soon"), SCANNED, True),
    ("never scanned: its first pass is coming", trigger("2026-12-01T09:55:00.000Z"), None, False),
    ("not a trigger at all", "{not json", SCANNED, False),
]


# an upstream-changed value first seen by this process: (annotation, lastScanTime) -> a request?
FIRST_UPSTREAM = [
    ("stamped after the last scan", f"staging {epoch(NOW - timedelta(minutes=5))}", SCANNED, True),
    ("stamped before it: answered", f"staging {epoch(NOW - timedelta(minutes=20))}", SCANNED,
     False),
    ("a clock ahead of ours counts as now", f"staging {epoch(NOW + timedelta(hours=1))}", SCANNED,
     True),
    ("no stamp: a request", "staging", SCANNED, True),
    ("never scanned: its first pass reads the upstream", f"staging {epoch(NOW)}", None, False),
]  # fmt: skip


# each rule's first sightings: (rule, case, annotation, lastScanTime, a request?)
FIRST_SIGHTINGS = [(manual.webhook_trigger, *r) for r in FIRST_TRIGGERS] + [
    (manual.upstream_changed, *r) for r in FIRST_UPSTREAM
]


@pytest.mark.parametrize(
    ("rule", "value", "scanned", "asks"),
    [(r[0], *r[2:]) for r in FIRST_SIGHTINGS],
    ids=[f"{r[0].__name__}: {r[1]}" for r in FIRST_SIGHTINGS],
)
def test_a_value_first_seen_is_a_request_if_it_came_after_the_last_scan(
    rule: manual.Unanswered, value: str, scanned: str | None, asks: bool
) -> None:
    """A webhook trigger received, or an upstream change stamped, after the CR's last scan."""
    memory = manual.Requests(rule)
    assert (memory.seen("uid", value, status=status_of(scanned), now=NOW) == value) is asks
    assert memory.seen("uid", value, status=status_of(scanned), now=NOW) is None, "seen: no more"


HELD = {"lastScanTime": SCANNED, "hold": {"path": "values.yaml", "value": "1.0.0", "release": "1"}}

# release-hold on one CR's watch events in order: (annotation value, status) -> acted on
RELEASES: list[tuple[str, list[tuple[Any, dict[str, Any]]], list[str | None]]] = [
    ("first seen, as the hold began: answered", [("1", HELD)], [None]),
    ("first seen, changed since the hold began", [("2", HELD)], ["2"]),
    ("first seen, removed since the hold began", [(None, HELD)], [""]),
    ("first seen, no hold", [("2", {"lastScanTime": SCANNED})], [None]),
    ("first seen, absent and no hold", [(None, {})], [None]),
    ("changed", [("1", HELD), ("2", HELD)], [None, "2"]),
    ("removed: a release too", [("1", HELD), (None, HELD)], [None, ""]),
    ("removed and still absent", [("1", HELD), (None, HELD), (None, HELD)], [None, "", None]),
    ("the same value again", [("1", HELD), ("2", HELD), ("2", HELD)], [None, "2", None]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("events", "acted"), [(e, a) for _, e, a in RELEASES], ids=[w for w, _, _ in RELEASES]
)
def test_which_release_hold_value_is_a_release(
    events: list[tuple[Any, dict[str, Any]]], acted: list[str | None]
) -> None:
    releases = manual.Requests(manual.release_hold, removal_asks=True)
    assert [releases.seen("uid", v, status=s, now=NOW) for v, s in events] == acted


def test_removing_requested_at_asks_for_nothing() -> None:
    requests = manual.Requests()
    assert requests.seen("uid", "1", status=status_of(SCANNED), now=NOW) == "1"
    assert requests.seen("uid", None, status=status_of(SCANNED), now=NOW) is None


# a CR's watch events in order: (generation, status.observedGeneration) -> the pass owed
GENERATIONS: list[tuple[str, list[tuple[int | None, int | None]], list[str | None]]] = [
    ("created (no status yet)", [(1, None)], ["1"]),
    ("listed at a start, observed", [(1, 1)], [None]),
    ("listed at a start, changed while stopped", [(2, 1)], ["2"]),
    ("events before the status lands: one pass", [(1, None), (1, None)], ["1", None]),
    ("passed, then a spec change", [(1, None), (1, 1), (2, 1)], ["1", None, "2"]),
    ("a change made again before the first is read", [(2, 1), (3, 1)], ["2", "3"]),
    ("no generation (not from an API server)", [(None, None)], [None]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("events", "owed"), [(e, o) for _, e, o in GENERATIONS], ids=[w for w, _, _ in GENERATIONS]
)
def test_which_generation_is_owed_a_pass(
    events: list[tuple[int | None, int | None]], owed: list[str | None]
) -> None:
    changes = manual.Requests(manual.generation_owed)
    seen = []
    for generation, observed in events:
        status = {} if observed is None else {"observedGeneration": observed}
        body = {"metadata": {"generation": generation}, "status": status}
        seen.append(changes.seen("uid", manual.unobserved_generation(body), status=status, now=NOW))
    assert seen == owed
