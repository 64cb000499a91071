"""stages.py: spec.from parsing, loops, when an upstream's tag qualifies, CLI run order (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagepromoter import errors, gates, stages

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def upstream(
    tag: str | None = "1.2.0-dev",
    *,
    ready: str = "True",
    reason: str = "Promoted",
    since: str = "2026-11-28T09:00:00Z",
    transition: str = "2026-11-01T00:00:00Z",
    message: str = "Promoted 1.2.0-dev",
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {
                "type": "Ready",
                "status": ready,
                "reason": reason,
                "message": message,
                "lastTransitionTime": transition,
            }
        ],
        "promotedSince": since,
    }
    if tag is not None:
        status["promotedTag"] = tag
    return {"spec": {}, "status": status}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"imagePromotion": "app-dev"}, stages.From("app-dev")),
        ({"imagePromotion": "app-dev", "after": "24h"}, stages.From("app-dev", timedelta(days=1))),
    ],
    ids=["no-after", "after"],
)
def test_from_parses(value: Any, expected: stages.From) -> None:
    assert stages.parse_from(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("app-dev", "spec.from: must be a mapping {imagePromotion, after}"),
        ({}, "spec.from.imagePromotion: is required: the name of the ImagePromotion to follow"),
        (
            {"imagePromotion": "app-dev", "after": "-1h"},
            "spec.from.after: '-1h' is negative; write a duration of 0s or more",
        ),
        (
            {"imagePromotion": "app-dev", "after": "tomorrow"},
            "spec.from.after: 'tomorrow' is not a duration; write hours, minutes and seconds "
            "like 30m, 1h or 24h",
        ),
        (
            {"imagePromotion": "app-dev", "delay": "1h"},
            "spec.from.delay: unknown field; known: imagePromotion, after",
        ),
    ],
    ids=["not-a-mapping", "no-name", "negative-after", "unparsable-after", "unknown-field"],
)
def test_bad_from_names_the_field(value: Any, message: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        stages.parse_from(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("own", "chain", "message"),
    [
        ("prod", ["dev"], None),
        ("prod", ["staging", "dev"], None),
        (
            "a",
            ["a"],
            "a loop: a follows a; none of them can ever promote: remove spec.from from one of them",
        ),
        (
            "a",
            ["b", "a"],
            "a loop: a follows b, b follows a; none of them can ever promote: "
            "remove spec.from from one of them",
        ),
        (
            "a",
            ["b", "c", "a"],
            "a loop: a follows b, b follows c, c follows a; none of them can "
            "ever promote: remove spec.from from one of them",
        ),
    ],
    ids=["one-link", "chain", "self", "two", "three"],
)
def test_a_loop_is_invalid_spec_naming_every_member(
    own: str, chain: list[str], message: str | None
) -> None:
    if message is None:
        stages.check_loop(own, chain)
        return
    with pytest.raises(errors.InvalidSpec) as caught:
        stages.check_loop(own, chain)
    assert str(caught.value) == f"spec.from.imagePromotion: {message}"


DAY = stages.From("app-dev", timedelta(hours=24))


@pytest.mark.parametrize(
    ("body", "wanted", "tag", "error", "message", "until"),
    [
        (upstream(), DAY, "1.2.0-dev", None, None, None),
        (
            upstream(since="2026-11-29T09:00:00Z"),
            DAY,
            None,
            gates.Waiting,
            "following app-dev: 1.2.0-dev has been promoted there since 2026-11-29T09:00:00Z and "
            "qualifies at 2026-11-30T09:00:00Z (from.after 24h)",
            datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        ),
        (
            upstream(transition="2026-11-29T08:00:00Z"),
            DAY,
            None,
            gates.Waiting,
            "following app-dev: 1.2.0-dev has been promoted there since 2026-11-29T08:00:00Z and "
            "qualifies at 2026-11-30T08:00:00Z (from.after 24h)",
            datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        ),
        (
            upstream(ready="False", reason="Held", message="env/dev/values.yaml holds 1.0.0"),
            DAY,
            None,
            gates.Waiting,
            "following app-dev, which is not Ready (Held: env/dev/values.yaml holds 1.0.0); "
            "nothing is promoted until it is",
            None,
        ),
        (
            upstream(ready="False", reason="GitError", message="unreachable"),
            stages.From("app-dev"),
            None,
            gates.Waiting,
            "following app-dev, which is not Ready (GitError: unreachable); nothing is promoted "
            "until it is",
            None,
        ),
        (
            upstream(tag=None),
            DAY,
            None,
            gates.Waiting,
            "following app-dev, which has promoted nothing yet",
            None,
        ),
        (
            {"spec": {}},
            DAY,
            None,
            gates.Waiting,
            "following app-dev, which is not Ready (no status yet); nothing is promoted until it "
            "is",
            None,
        ),
        (
            None,
            DAY,
            None,
            errors.InvalidSpec,
            "spec.from.imagePromotion: ImagePromotion app-dev does not exist in namespace gitops; "
            "create it or correct the name",
            None,
        ),
        (
            upstream(since="2026-11-29T10:00:00Z"),
            stages.From("app-dev"),
            "1.2.0-dev",
            None,
            None,
            None,
        ),
    ],
    ids=[
        "held-long-enough",
        "too-recent",
        "ready-again-recently-restarts-the-clock",
        "upstream-held",
        "upstream-failing",
        "upstream-promoted-nothing",
        "upstream-without-status",
        "upstream-missing",
        "no-after",
    ],
)
def test_following_an_upstream(
    body: dict[str, Any] | None,
    wanted: stages.From,
    tag: str | None,
    error: type[Exception] | None,
    message: str | None,
    until: datetime | None,
) -> None:
    if error is None:
        assert stages.follow("app-prod", "gitops", wanted, body, NOW) == tag
        return
    with pytest.raises(error) as caught:
        stages.follow("app-prod", "gitops", wanted, body, NOW)
    assert str(caught.value) == message
    if isinstance(caught.value, gates.Waiting):
        assert caught.value.until == until


async def test_followed_reads_the_chain_and_reports_a_loop() -> None:
    known = stages.Known(
        {
            ("gitops", "a"): {"spec": {"from": {"imagePromotion": "b"}}},
            ("gitops", "b"): {"spec": {"from": {"imagePromotion": "a"}}},
        }
    )
    with pytest.raises(errors.InvalidSpec) as caught:
        await stages.followed("a", "gitops", stages.From("b"), known, NOW)
    assert "a follows b, b follows a" in str(caught.value)
    assert await stages.followed("a", "gitops", None, None, NOW) is None
    with pytest.raises(errors.InvalidSpec) as missing:
        await stages.followed("a", "gitops", stages.From("b"), None, NOW)
    assert str(missing.value).startswith("spec.from: following b needs its ImagePromotion")


async def test_known_serves_updated_statuses() -> None:
    known = stages.Known({("ns", "dev"): {"spec": {"image": "x"}, "status": {}}})
    known.update_status("ns", "dev", {"promotedTag": "1.0.0"})
    assert await known.read("ns", "dev") == {
        "spec": {"image": "x"},
        "status": {"promotedTag": "1.0.0"},
    }
    assert await known.read("ns", "prod") is None


@pytest.mark.parametrize(
    ("members", "order"),
    [
        ([("n", "a", None), ("n", "b", None)], [[0, 1]]),
        ([("n", "prod", "dev"), ("n", "dev", None)], [[1], [0]]),
        ([("n", "prod", "stg"), ("n", "stg", "dev"), ("n", "dev", None)], [[2], [1], [0]]),
        ([("n", "prod", "elsewhere")], [[0]]),
        ([("n", "a", "b"), ("n", "b", "a"), ("n", "c", None)], [[2], [0, 1]]),
        ([("x", "prod", "dev"), ("y", "dev", None)], [[0, 1]]),
    ],
    ids=[
        "independent",
        "dev-then-prod",
        "three-stages",
        "upstream-not-given",
        "loop-last",
        "other-namespace",
    ],
)
def test_cli_runs_each_upstream_before_its_followers(
    members: list[tuple[str, str, str | None]], order: list[list[int]]
) -> None:
    assert stages.waves(members) == order


@pytest.mark.parametrize(
    ("previous", "tag", "expected"),
    [
        ({}, "1.0.0", "2026-11-29T10:00:00Z"),
        (
            {"promotedTag": "1.0.0", "promotedSince": "2026-11-01T00:00:00Z"},
            "1.0.0",
            "2026-11-01T00:00:00Z",
        ),
        (
            {"promotedTag": "1.0.0", "promotedSince": "2026-11-01T00:00:00Z"},
            "1.1.0",
            "2026-11-29T10:00:00Z",
        ),
        ({"promotedTag": "1.0.0"}, "1.0.0", "2026-11-29T10:00:00Z"),
        ({"promotedTag": "1.0.0"}, None, None),
    ],
    ids=["first", "same-tag-keeps", "new-tag", "never-timed", "nothing-promoted"],
)
def test_promoted_since(previous: dict[str, str], tag: str | None, expected: str | None) -> None:
    assert stages.promoted_since(previous, tag, NOW) == expected


def body(name: str, upstream: str | None = None, **status: Any) -> dict[str, Any]:
    spec = {"from": {"imagePromotion": upstream}} if upstream else {}
    return {"metadata": {"namespace": "gitops", "name": name}, "spec": spec, "status": status}


def test_followers_are_poked_when_their_upstream_status_changes() -> None:
    from imagepromoter.kube import stages as kube_stages

    seen = kube_stages.Followers()
    assert seen.observe(None, body("prod", "dev")) == []  # the initial listing pokes nobody
    assert seen.observe(None, body("qa", "dev")) == []
    assert seen.observe(None, body("dev", promotedTag="1.0.0")) == []
    assert seen.observe("MODIFIED", body("dev", promotedTag="1.0.0")) == []  # no change
    assert seen.observe("MODIFIED", body("dev", promotedTag="1.1.0")) == ["prod", "qa"]
    assert seen.observe("MODIFIED", body("qa")) == []  # qa no longer follows dev
    assert seen.observe("MODIFIED", body("dev", promotedTag="1.2.0")) == ["prod"]
    assert seen.observe("ADDED", body("staging")) == []  # no status yet
    assert seen.observe("DELETED", body("dev")) == ["prod"]  # its followers learn it is gone
