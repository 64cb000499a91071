"""kube/events.py with a fake clock: one event per (object, type, reason, message) per hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagepromoter import status
from imagepromoter.kube import events

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
BODY = {"metadata": {"uid": "u1", "name": "a", "namespace": "ns"}}
OTHER = {"metadata": {"uid": "u2", "name": "b", "namespace": "ns"}}


class Recorder:
    def __init__(self) -> None:
        self.now = T0
        self.posted: list[tuple[str, str, str, str]] = []
        self.events = events.Events(post=self.post, now=lambda: self.now)

    def post(self, body: Any, type_: str, reason: str, message: str) -> None:
        self.posted.append((body["metadata"]["uid"], type_, reason, message))


def failed(message: str = "registry down", reason: str = "RegistryError") -> status.Outcome:
    return status.Outcome(reason=reason, message=message)


def test_same_failure_is_posted_once_per_hour() -> None:
    r = Recorder()
    assert r.events.report(BODY, failed())
    r.now += timedelta(minutes=59, seconds=59)
    assert not r.events.report(BODY, failed())
    r.now += timedelta(seconds=1)
    assert r.events.report(BODY, failed()), "the window is one hour"
    assert len(r.posted) == 2


def test_a_different_message_reason_or_object_is_posted() -> None:
    r = Recorder()
    r.events.report(BODY, failed())
    assert r.events.report(BODY, failed("registry slow"))
    assert r.events.report(BODY, failed(reason="AuthError"))
    assert r.events.report(OTHER, failed())
    assert len(r.posted) == 4


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (status.Outcome("Promoted", "Promoted 1.0 in abc", commit="abc"), ("Normal", "Promoted")),
        (status.Outcome("Promoted", "Dry run: would promote"), None),
        (status.Outcome("UpToDate", "holds 1.0"), None),
        (status.Outcome("Suspended", "suspended"), None),
        (status.Outcome("GitError", "down"), ("Warning", "GitError")),
        (status.Outcome("NoMatchingTag", "none"), ("Warning", "NoMatchingTag")),
    ],
    ids=["promoted", "dry-run", "up-to-date", "suspended", "failure", "no-matching-tag"],
)
def test_which_outcomes_post(outcome: status.Outcome, expected: tuple[str, str] | None) -> None:
    r = Recorder()
    r.events.report(BODY, outcome)
    assert [(t, reason) for _, t, reason, _ in r.posted] == ([expected] if expected else [])


def test_long_messages_are_cut_and_still_deduplicated() -> None:
    r = Recorder()
    long = "x" * 5000
    assert r.events.report(BODY, failed(long))
    assert not r.events.report(BODY, failed(long))
    assert len(r.posted[0][3]) == events.MAX_MESSAGE and r.posted[0][3].endswith("…")


def test_memory_is_pruned_and_forgotten() -> None:
    r = Recorder()
    r.events.report(BODY, failed())
    r.events.report(OTHER, failed())
    r.events.forget("u1")
    assert len(r.events) == 1
    assert r.events.report(BODY, failed()), "a forgotten object is posted again"
    r.now += timedelta(hours=2)
    r.events.report(BODY, failed("later"))
    assert len(r.events) == 1, "entries older than the window are pruned"


def test_the_memory_is_bounded_per_object() -> None:
    r = Recorder()
    for n in range(3 * events.MAX_REMEMBERED):  # every promotion has its own message
        assert r.events.report(BODY, failed(f"attempt {n}"))
    assert len(r.events) == events.MAX_REMEMBERED
    assert r.events.report(BODY, failed("attempt 0")), "the oldest were forgotten first"
    assert not r.events.report(BODY, failed(f"attempt {3 * events.MAX_REMEMBERED - 1}"))
