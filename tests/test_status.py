"""status.compute: the status block from the previous status and one pass's outcome."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from imagepromoter import errors, status

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=123456)
SHA = "3f1c2a9" + "0" * 33

PROMOTED = status.Outcome(
    reason="Promoted",
    message="Promoted 1.4.2-dev to environments/dev/values.yaml in 3f1c2a9",
    latest_tag="1.4.2-dev",
    latest_digest="sha256:" + "a" * 64,
    promoted_tag="1.4.2-dev",
    commit=SHA,
    tags_scanned=153,
    scan_time=T0,
    promotion_time=T0 + timedelta(seconds=2),
)

BEFORE: dict[str, Any] = {
    "observedGeneration": 4,
    "latestTag": "1.4.2-dev",
    "latestDigest": "sha256:" + "a" * 64,
    "promotedTag": "1.4.2-dev",
    "lastCommit": SHA,
    "lastScanTime": "2026-11-29T10:00:00Z",
    "lastPromotionTime": "2026-11-29T10:00:02Z",
    "tagsScanned": 153,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Promoted",
            "message": "Promoted 1.4.2-dev to environments/dev/values.yaml in 3f1c2a9",
            "lastTransitionTime": "2026-11-29T10:00:02Z",
            "observedGeneration": 4,
        }
    ],
}


def test_first_promotion_gives_the_full_api_block() -> None:
    got = status.compute({}, PROMOTED, generation=4, now=T0 + timedelta(seconds=2))
    assert got == BEFORE
    assert json.loads(json.dumps(got)) == got


@pytest.mark.parametrize(
    ("outcome", "expected_changes"),
    [
        (
            status.Outcome(
                reason="UpToDate",
                message="already hold 1.4.2-dev",
                latest_tag="1.4.2-dev",
                latest_digest="sha256:" + "a" * 64,
                promoted_tag="1.4.2-dev",
                tags_scanned=154,
                scan_time=T1,
            ),
            {"lastScanTime": "2026-11-29T10:05:00Z", "tagsScanned": 154},  # Promoted stays
        ),
        (
            status.Outcome(reason="RegistryError", message="ghcr.io answered 503; will retry"),
            {
                "status": "False",
                "reason": "RegistryError",
                "message": "ghcr.io answered 503; will retry",
                "lastTransitionTime": "2026-11-29T10:05:00Z",
            },
        ),
        (
            status.Outcome(
                reason="Promoted",
                message="Promoted 1.5.0-dev",
                latest_tag="1.5.0-dev",
                latest_digest="sha256:" + "b" * 64,
                promoted_tag="1.5.0-dev",
                commit="9" * 40,
                tags_scanned=160,
                scan_time=T1,
                promotion_time=T1,
            ),
            {
                "latestTag": "1.5.0-dev",
                "latestDigest": "sha256:" + "b" * 64,
                "promotedTag": "1.5.0-dev",
                "lastCommit": "9" * 40,
                "lastScanTime": "2026-11-29T10:05:00Z",
                "lastPromotionTime": "2026-11-29T10:05:00Z",
                "tagsScanned": 160,
                "message": "Promoted 1.5.0-dev",
            },
        ),
        (
            status.Outcome(
                reason="UpToDate",
                message="already hold 1.5.0-dev",
                latest_tag="1.5.0-dev",
                promoted_tag="1.5.0-dev",
                scan_time=T1,
            ),
            {
                "latestTag": "1.5.0-dev",
                "promotedTag": "1.5.0-dev",
                "lastCommit": "",
                "lastScanTime": "2026-11-29T10:05:00Z",
                "reason": "UpToDate",
                "message": "already hold 1.5.0-dev",
            },
        ),
        (
            status.Outcome(
                reason="GitError",
                message="push failed",
                latest_tag="1.5.0-dev",
                latest_digest="sha256:" + "b" * 64,
                tags_scanned=160,
                scan_time=T1,
            ),
            {
                "latestTag": "1.5.0-dev",
                "latestDigest": "sha256:" + "b" * 64,
                "tagsScanned": 160,
                "lastScanTime": "2026-11-29T10:05:00Z",
                "status": "False",
                "reason": "GitError",
                "message": "push failed",
                "lastTransitionTime": "2026-11-29T10:05:00Z",
            },
        ),
        (
            status.Outcome(reason="Suspended", message="spec.suspend is true"),
            {
                "status": "False",
                "reason": "Suspended",
                "message": "spec.suspend is true",
                "lastTransitionTime": "2026-11-29T10:05:00Z",
            },
        ),
        (
            status.Outcome(reason="InvalidSpec", message="spec.tagRegex: does not compile"),
            {
                "status": "False",
                "reason": "InvalidSpec",
                "message": "spec.tagRegex: does not compile",
                "lastTransitionTime": "2026-11-29T10:05:00Z",
            },
        ),
        (
            status.Outcome(
                reason="Promoted",
                message="Dry run: would promote 1.5.0-dev",
                latest_tag="1.5.0-dev",
                scan_time=T1,
            ),
            {
                "latestTag": "1.5.0-dev",
                "lastScanTime": "2026-11-29T10:05:00Z",
                "message": "Dry run: would promote 1.5.0-dev",
            },
        ),
        (
            status.Outcome(reason="Promoted", message="x", commit=""),
            {"lastCommit": "", "message": "x"},
        ),
    ],
    ids=[
        "up-to-date-keeps-commit-and-the-promoted-condition",
        "registry-error-keeps-everything-known",
        "new-promotion-replaces-all",
        "already-held-new-tag-means-no-commit",
        "git-error-after-scan-records-scan",
        "suspended-is-not-ready",
        "invalid-spec",
        "dry-run-keeps-promoted-and-commit",
        "explicit-empty-commit",
    ],
)
def test_compute_over_a_previous_status(
    outcome: status.Outcome, expected_changes: dict[str, Any]
) -> None:
    expected = json.loads(json.dumps(BEFORE))
    condition_keys = {"status", "reason", "message", "lastTransitionTime"}
    for key, value in expected_changes.items():
        if key in condition_keys:
            expected["conditions"][0][key] = value
        else:
            expected[key] = value
    got = status.compute(BEFORE, outcome, generation=4, now=T1)
    assert got == expected


@pytest.mark.parametrize(
    ("before_status", "after_reason", "keeps_time"),
    [
        ("True", "UpToDate", True),
        ("True", "Promoted", True),
        ("True", "RegistryError", False),
        ("False", "GitError", True),
        ("False", "NoMatchingTag", True),
        ("False", "Promoted", False),
        ("False", "UpToDate", False),
        ("Unknown", "UpToDate", False),
        ("Unknown", "AuthError", False),
    ],
    ids=[
        "true-to-true-other-reason",
        "true-to-true-same-reason",
        "true-to-false",
        "false-to-false",
        "false-to-false-other-reason",
        "false-to-true-promoted",
        "false-to-true-up-to-date",
        "unknown-to-true",
        "unknown-to-false",
    ],
)
def test_last_transition_time_changes_only_with_the_status_value(
    before_status: str, after_reason: str, keeps_time: bool
) -> None:
    previous = {
        "conditions": [
            {
                "type": "Ready",
                "status": before_status,
                "reason": "Whatever",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
    got = status.compute(previous, status.Outcome(after_reason, "m"), generation=1, now=T1)
    (ready,) = got["conditions"]
    assert ready["lastTransitionTime"] == (
        "2026-01-01T00:00:00Z" if keeps_time else "2026-11-29T10:05:00Z"
    )
    assert ready["status"] == ("True" if after_reason in {"Promoted", "UpToDate"} else "False")
    assert ready["reason"] == after_reason


def test_every_reason_in_the_error_tree_is_accepted() -> None:
    for reason in errors.REASONS:
        got = status.compute({}, status.Outcome(reason, "m"), generation=None, now=T0)
        assert got["conditions"][0]["reason"] == reason


@pytest.mark.parametrize(
    ("previous", "generation", "top", "on_condition"),
    [
        ({}, 7, 7, 7),
        ({"observedGeneration": 3}, 7, 7, 7),
        ({"observedGeneration": 3}, None, 3, 3),
        ({}, None, None, None),
        ({"observedGeneration": True}, None, None, None),
    ],
    ids=["first", "newer", "unknown-keeps", "never-known", "bool-is-not-a-generation"],
)
def test_observed_generation(
    previous: dict[str, Any], generation: int | None, top: int | None, on_condition: int | None
) -> None:
    got = status.compute(previous, status.Outcome("UpToDate", "m"), generation=generation, now=T0)
    assert got.get("observedGeneration") == top
    assert got["conditions"][0].get("observedGeneration") == on_condition


def test_a_first_failure_shows_only_what_is_known_and_no_nulls() -> None:
    got = status.compute(
        {}, status.Outcome("InvalidSpec", "spec.image: is required"), generation=1, now=T0
    )
    assert got == {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "InvalidSpec",
                "message": "spec.image: is required",
                "lastTransitionTime": "2026-11-29T10:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }


def test_other_condition_types_are_kept_after_ready() -> None:
    other = {"type": "Stalled", "status": "False", "reason": "X", "message": ""}
    previous = {"conditions": [other, {"type": "Ready", "status": "True"}]}
    got = status.compute(previous, status.Outcome("UpToDate", "m"), generation=1, now=T0)
    assert [c["type"] for c in got["conditions"]] == ["Ready", "Stalled"]
    assert got["conditions"][1] == other


def test_unrelated_previous_keys_are_not_copied() -> None:
    got = status.compute(
        {"kopf": {"progress": {}}, "latestTag": "1"},
        status.Outcome("UpToDate", "m"),
        generation=1,
        now=T0,
    )
    assert "kopf" not in got and got["latestTag"] == "1"


def test_previous_is_not_mutated() -> None:
    before = json.loads(json.dumps(BEFORE))
    status.compute(before, status.Outcome("GitError", "boom"), generation=5, now=T1)
    assert before == BEFORE


def test_a_huge_message_is_truncated() -> None:
    got = status.compute({}, status.Outcome("GitError", "x" * 10_000), generation=1, now=T0)
    message = got["conditions"][0]["message"]
    assert len(message) == 4096 and message.endswith("…")


@pytest.mark.parametrize(
    "reason",
    ["", "not camel", "1Bad", "Trailing,"],
    ids=["empty", "spaces", "digit-first", "trailing-comma"],
)
def test_a_reason_kubernetes_would_reject_is_a_bug(reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        status.compute({}, status.Outcome(reason, "m"), generation=1, now=T0)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC), "2026-11-29T10:00:00Z"),
        (datetime(2026, 11, 29, 10, 0, 0, 999999, tzinfo=UTC), "2026-11-29T10:00:00Z"),
        (
            datetime(2026, 11, 29, 11, 30, 0, tzinfo=timezone(timedelta(hours=1, minutes=30))),
            "2026-11-29T10:00:00Z",
        ),
        (datetime(2026, 11, 29, 10, 0, 0), "2026-11-29T10:00:00Z"),
        (datetime(2027, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))), "2026-12-31T22:30:00Z"),
    ],
    ids=["utc", "microseconds-dropped", "offset-converted", "naive-is-utc", "year-boundary"],
)
def test_timestamps(moment: datetime, text: str) -> None:
    assert status.timestamp(moment) == text
    outcome = status.Outcome("UpToDate", "m", scan_time=moment, promotion_time=moment)
    got = status.compute({}, outcome, generation=1, now=moment)
    assert got["lastScanTime"] == got["lastPromotionTime"] == text
    assert got["conditions"][0]["lastTransitionTime"] == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-29T10:00:00Z", T0),
        ("2026-11-29T11:00:00+01:00", T0),
        ("2026-11-29T10:00:00.5Z", T0 + timedelta(milliseconds=500)),
        ("", None),
        (None, None),
        (12, None),
        ("yesterday", None),
    ],
    ids=["zulu", "offset", "fraction", "empty", "none", "number", "garbage"],
)
def test_parse_timestamp(value: object, expected: datetime | None) -> None:
    assert status.parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("last_scan", "now", "due"),
    [
        (None, T0, True),
        ("garbage", T0, True),
        ("2026-11-29T10:00:00Z", T0, False),
        ("2026-11-29T10:00:00Z", T0 + timedelta(minutes=4, seconds=59), False),
        ("2026-11-29T10:00:00Z", T0 + timedelta(minutes=5), True),
        ("2026-11-29T10:00:00Z", T0 + timedelta(hours=3), True),
        ("2026-11-29T10:00:00Z", T0 - timedelta(seconds=1), True),
        ("2026-11-29T10:00:00Z", datetime(2026, 11, 29, 10, 2), False),
        ("2026-11-29T11:00:00+01:00", T0 + timedelta(minutes=5), True),
    ],
    ids=[
        "never-scanned",
        "unreadable",
        "just-scanned",
        "one-second-early",
        "exactly-interval",
        "long-overdue",
        "clock-went-back",
        "naive-now-is-utc",
        "offset-timestamp",
    ],
)
def test_is_due(last_scan: str | None, now: datetime, due: bool) -> None:
    current = {} if last_scan is None else {"lastScanTime": last_scan}
    assert status.is_due(current, timedelta(minutes=5), now) is due


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ({}, None),
        ({"conditions": "bad"}, None),
        ({"conditions": [{"type": "Other"}]}, None),
        (
            {"conditions": [{"type": "Ready", "status": "True"}]},
            {"type": "Ready", "status": "True"},
        ),
    ],
    ids=["none", "malformed", "other-only", "found"],
)
def test_ready_condition(current: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert status.ready_condition(current) == expected
