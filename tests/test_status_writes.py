"""What the operator writes: status.settle (the lastScanTime rule), status.changes (the merge
patch), and the Promoted condition a quiet pass keeps. Pure, table-driven."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from imagepromoter import status
from tests.test_status import BEFORE, SHA, T0

READY = BEFORE["conditions"][0]  # the Promoted condition of a promoted CR
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def scanned_at(moment: datetime, **changes: Any) -> dict[str, Any]:
    new = copy.deepcopy(BEFORE)
    new["lastScanTime"] = status.timestamp(moment)
    new.update(changes)
    return new


# --- settle: lastScanTime alone is refreshed once per hour (or per interval, if longer) --------


@pytest.mark.parametrize(
    ("previous", "new", "interval", "now", "kept"),
    [
        (BEFORE, scanned_at(T0 + MINUTE), MINUTE, T0 + MINUTE, True),
        (BEFORE, scanned_at(T0 + 59 * MINUTE), MINUTE, T0 + 59 * MINUTE, True),
        (BEFORE, scanned_at(T0 + HOUR), MINUTE, T0 + HOUR, False),
        (BEFORE, scanned_at(T0 + 2 * HOUR), 2 * HOUR, T0 + 2 * HOUR - MINUTE, True),
        (BEFORE, scanned_at(T0 + 2 * HOUR), 2 * HOUR, T0 + 2 * HOUR, False),
        (BEFORE, scanned_at(T0 + MINUTE, tagsScanned=154), MINUTE, T0 + MINUTE, False),
        (BEFORE, scanned_at(T0 + MINUTE, latestTag="1.5.0-dev"), MINUTE, T0 + MINUTE, False),
        ({**BEFORE, "extra": 1}, scanned_at(T0 + MINUTE), MINUTE, T0 + MINUTE, False),
        ({**BEFORE, "lastScanTime": "garbage"}, scanned_at(T0 + MINUTE), MINUTE, T0, False),
        ({**BEFORE, "lastScanTime": "2026-11-29T11:00:00Z"}, scanned_at(T0), MINUTE, T0, False),
        (
            {k: v for k, v in BEFORE.items() if k != "lastScanTime"},
            scanned_at(T0),
            MINUTE,
            T0,
            False,
        ),
        (BEFORE, BEFORE, MINUTE, T0 + MINUTE, True),
    ],
    ids=[
        "only-the-scan-time-a-minute-later",
        "fifty-nine-minutes-later",
        "an-hour-later-refreshes",
        "interval-longer-than-an-hour-keeps",
        "interval-longer-than-an-hour-refreshes",
        "tags-scanned-changed",
        "latest-tag-changed",
        "a-key-is-removed",
        "unreadable-previous-time",
        "previous-time-in-the-future",
        "never-scanned-before",
        "nothing-changed-at-all",
    ],
)
def test_settle_keeps_the_scan_time_only_when_nothing_else_changes(
    previous: dict[str, Any], new: dict[str, Any], interval: timedelta, now: datetime, kept: bool
) -> None:
    settled = status.settle(previous, new, interval=interval, now=now)
    assert settled["lastScanTime"] == (previous["lastScanTime"] if kept else new["lastScanTime"])
    assert {k: v for k, v in settled.items() if k != "lastScanTime"} == {
        k: v for k, v in new.items() if k != "lastScanTime"
    }
    assert list(settled) == list(new), "same keys in the same order"


def test_settle_without_a_scan_time_in_new_is_new() -> None:
    new = {"observedGeneration": 1, "conditions": []}
    assert status.settle(BEFORE, new, interval=MINUTE, now=T0) == new


# --- changes: the RFC 7386 merge patch ---------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "new", "patch"),
    [
        (BEFORE, BEFORE, {}),
        ({}, {}, {}),
        ({}, {"latestTag": "1"}, {"latestTag": "1"}),
        ({"latestTag": "1"}, {"latestTag": "2"}, {"latestTag": "2"}),
        ({"latestTag": "1", "hold": {"path": "a"}}, {"latestTag": "1"}, {"hold": None}),
        ({"tagsScanned": 1}, {"tagsScanned": True}, {"tagsScanned": True}),
        ({"tagsScanned": 1}, {"tagsScanned": 1.0}, {"tagsScanned": 1.0}),
        (
            {"trigger": {"tag": "1", "source": "ci", "fields": {"a": "x"}}},
            {"trigger": {"tag": "2", "source": "ci"}},
            {"trigger": {"tag": "2", "fields": None}},
        ),
        ({"trigger": {"tag": "1"}}, {"trigger": {"tag": "1"}}, {}),
        ({"trigger": "odd"}, {"trigger": {"tag": "1"}}, {"trigger": {"tag": "1"}}),
        (
            {"conditions": [READY, {"type": "Other"}]},
            {"conditions": [READY]},
            {"conditions": [READY]},
        ),
        (
            {"conditions": [READY]},
            {"conditions": [{**READY, "message": "m"}]},
            {"conditions": [{**READY, "message": "m"}]},
        ),
    ],
    ids=[
        "equal",
        "both-empty",
        "new-key",
        "changed-value",
        "removed-key-is-nulled",
        "bool-is-not-int",
        "float-is-not-int",
        "nested-mapping-diffed-key-by-key",
        "equal-nested-mapping",
        "scalar-to-mapping",
        "list-replaced-whole-when-shorter",
        "list-replaced-whole-when-an-item-changes",
    ],
)
def test_changes_is_the_merge_patch(
    previous: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]
) -> None:
    got = status.changes(previous, new)
    assert got == patch and json.dumps(got, sort_keys=True) == json.dumps(patch, sort_keys=True)
    assert merge(previous, got) == new, "applying the patch gives the new status"


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch, as the API server applies it (the RFC's own pseudocode)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def test_changes_copies_and_does_not_mutate() -> None:
    previous, new = copy.deepcopy(BEFORE), scanned_at(T0 + HOUR, tagsScanned=9)
    new_copy = copy.deepcopy(new)
    got = status.changes(previous, new)
    got["conditions"] = []
    assert previous == BEFORE and new == new_copy


# --- the Ready condition a quiet pass keeps -------------------------------------------------------


def up_to_date(**fields: Any) -> status.Outcome:
    base: dict[str, Any] = {
        "reason": "UpToDate",
        "message": "environments/dev/values.yaml already holds 1.4.2-dev",
        "latest_tag": "1.4.2-dev",
        "latest_digest": "sha256:" + "a" * 64,
        "promoted_tag": "1.4.2-dev",
        "tags_scanned": 153,
        "scan_time": T0 + MINUTE,
    }
    base.update(fields)
    return status.Outcome(**base)


PINNED = {**READY, "reason": "Pinned", "message": "spec.pin 1.4.2-dev: Promoted 1.4.2-dev"}


@pytest.mark.parametrize(
    ("before", "outcome", "generation", "kept"),
    [
        (READY, up_to_date(), 4, True),
        (READY, up_to_date(tags_scanned=160), 4, True),
        (READY, up_to_date(), 5, False),
        (READY, up_to_date(promoted_tag="1.5.0-dev", latest_tag="1.5.0-dev"), 4, False),
        (READY, up_to_date(promoted_tag=None), 4, False),
        (READY, up_to_date(reason="Promoted", message="Promoted again", commit="9" * 40), 4, False),
        (READY, up_to_date(reason="Waiting", message="1.5.0-dev is younger"), 4, False),
        (READY, up_to_date(reason="GitError", message="push failed"), 4, False),
        (PINNED, up_to_date(reason="Pinned", message="spec.pin 1.4.2-dev: already holds"), 4, True),
        (PINNED, up_to_date(), 4, True),
        ({**READY, "reason": "UpToDate", "message": "old words"}, up_to_date(), 4, False),
        ({**READY, "status": "False"}, up_to_date(), 4, False),
        ({k: v for k, v in READY.items() if k != "observedGeneration"}, up_to_date(), 4, False),
    ],
    ids=[
        "up-to-date-after-promoted",
        "up-to-date-with-a-new-count-keeps-the-condition",
        "another-generation",
        "another-tag",
        "no-tag-learned",
        "a-new-commit",
        "waiting-is-news",
        "a-failure",
        "pinned-again-without-a-commit",
        "up-to-date-after-pinned",
        "up-to-date-is-replaced-as-before",
        "a-false-condition-is-not-kept",
        "a-condition-without-generation",
    ],
)
def test_a_quiet_pass_keeps_the_promoted_condition(
    before: dict[str, Any], outcome: status.Outcome, generation: int, kept: bool
) -> None:
    previous = {**BEFORE, "conditions": [before, {"type": "Other", "status": "True"}]}
    got = status.compute(previous, outcome, generation=generation, now=T0 + MINUTE)
    if kept:
        assert got["conditions"] == previous["conditions"]
    else:
        ready = got["conditions"][0]
        assert (ready["reason"], ready["message"]) == (outcome.reason, outcome.message)
        assert got["conditions"][1] == {"type": "Other", "status": "True"}


def test_an_idle_pass_changes_nothing_and_an_hour_later_only_the_scan_time() -> None:
    """compute, settle and changes together: the operator's idle pass writes no patch."""
    promoted = status.compute(
        {},
        up_to_date(reason="Promoted", message=READY["message"], commit=SHA, scan_time=T0,
                   promotion_time=T0),
        generation=4,
        now=T0,
    )  # fmt: skip
    for later, expected in [
        (T0 + MINUTE, {}),
        (T0 + 59 * MINUTE, {}),
        (T0 + HOUR, {"lastScanTime": "2026-11-29T11:00:00Z"}),
    ]:
        new = status.compute(promoted, up_to_date(scan_time=later), generation=4, now=later)
        settled = status.settle(promoted, new, interval=MINUTE, now=later)
        assert status.changes(promoted, settled) == expected, later
    ready = status.ready_condition(new)
    assert ready is not None and ready["lastTransitionTime"] == "2026-11-29T10:00:00Z"
