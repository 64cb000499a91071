"""kube/retrying.py: the one reading of each error class's `retry` policy, table-driven."""

from __future__ import annotations

from datetime import timedelta

import pytest

from imagepromoter import errors, gates, holds
from imagepromoter.kube import retrying

FIVE_MINUTES = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("reason", "failures", "delay"),
    [
        ("Promoted", 0, FIVE_MINUTES),
        ("UpToDate", 0, FIVE_MINUTES),
        ("Suspended", 0, FIVE_MINUTES),
        ("InvalidSpec", 0, None),
        ("TargetError", 0, FIVE_MINUTES),
        ("NoMatchingTag", 0, FIVE_MINUTES),
        ("RegistryError", 1, timedelta(seconds=10)),
        ("RegistryError", 2, timedelta(seconds=20)),
        ("AuthError", 3, timedelta(seconds=40)),
        ("GitError", 5, timedelta(seconds=160)),
        ("PushRejected", 6, FIVE_MINUTES),
        ("GitError", 1000, FIVE_MINUTES),
        ("GitError", 0, timedelta(seconds=10)),
    ],
    ids=[
        "promoted",
        "up-to-date",
        "suspended",
        "invalid-spec-waits-for-a-spec-change",
        "target-error-waits",
        "no-matching-tag-waits",
        "registry-first",
        "registry-second",
        "auth-third",
        "git-fifth",
        "push-capped-by-interval",
        "huge-streak",
        "streak-zero",
    ],
)
def test_delay(reason: str, failures: int, delay: timedelta | None) -> None:
    assert retrying.delay(reason, interval=FIVE_MINUTES, failures=failures) == delay


def test_first_step_is_configurable() -> None:
    first = timedelta(seconds=0.2)
    steps = [
        retrying.delay("GitError", interval=FIVE_MINUTES, failures=n, first=first)
        for n in (1, 2, 3)
    ]
    assert steps == [first, first * 2, first * 4]


@pytest.mark.parametrize(
    ("cls", "policy"),
    [
        (errors.InvalidSpec, errors.Retry.SPEC_CHANGE),
        (errors.NoMatchingTag, errors.Retry.INTERVAL),
        (errors.TargetError, errors.Retry.INTERVAL),
        (errors.RegistryError, errors.Retry.BACKOFF),
        (errors.AuthError, errors.Retry.BACKOFF),
        (errors.GitError, errors.Retry.BACKOFF),
        (errors.PushRejected, errors.Retry.BACKOFF),
        (errors.SecretReadError, errors.Retry.BACKOFF),
        (holds.Held, errors.Retry.INTERVAL),
        (gates.Waiting, errors.Retry.INTERVAL),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_one_attribute_per_class_read_by_reason(
    cls: type[errors.PromotionError], policy: errors.Retry
) -> None:
    assert cls.retry is policy
    assert cls.permanent is (policy is not errors.Retry.BACKOFF), "permanent is derived"
    if cls is not errors.SecretReadError:
        assert retrying.policy(cls.reason) is policy


def test_every_failure_reason_has_a_class() -> None:
    ready = {"Promoted", "UpToDate", "Suspended", "Pinned"}
    classes = {c.reason for c in errors._classes(errors.PromotionError)}
    assert set(errors.REASONS) - ready <= classes
