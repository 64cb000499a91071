"""policy: tagRegex, excludeTags, the four policies, tie-breaks, errors and NoMatchingTag text.

Rows labelled `flux:` restate the documented behaviour of Flux image-reflector-controller's
ImagePolicy (semver range, alphabetical and numerical with `order: asc`, filterTags pattern and
extract); `argocd:` rows restate Argo CD Image Updater's update strategies (semver, newest-build
/ latest, alphabetical / name, allow-tags `regexp:`, ignore-tags), written in our fields. Where we
differ on purpose, docs/policy.md says so and a row here pins our side.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagepromoter import errors, policy, regexes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


SEED_TAGS = ["1.4.1-dev", "1.4.2-dev", "1.4.10-dev", "1.4.2-debug-dev", "latest", "main"]

# (id, tags, keyword arguments, expected tag)
SELECT: list[tuple[str, list[str], dict[str, Any], str | None]] = [
    # --- semver ---
    ("semver:highest", ["1.0.0", "1.2.0", "1.10.0", "1.9.9"], {}, "1.10.0"),
    ("semver:v-prefix-and-short-forms", ["v1.2.3", "1.3", "v2"], {}, "v2"),
    ("semver:non-versions-skipped", ["latest", "main", "sha-abc1234", "1.0.0"], {}, "1.0.0"),
    ("semver:no-range-no-pre-releases", ["1.0.0", "1.1.0-rc.1", "2.0.0-beta"], {}, "1.0.0"),
    (
        "semver:pre-releases-when-range-names-one",
        ["1.0.0", "1.1.0-rc.1", "1.1.0-rc.2"],
        {"semver_range": ">=1.0.0-0"},
        "1.1.0-rc.2",
    ),
    (
        "semver:dev.10-above-dev.9",
        ["1.2.0-dev.9", "1.2.0-dev.10", "1.2.0-dev.2"],
        {"semver_range": ">=1.2.0-0"},
        "1.2.0-dev.10",
    ),
    (
        "semver:release-above-its-rc",
        ["1.2.0-rc.1", "1.2.0", "1.2.0-rc.2"],
        {"semver_range": ">=1.0.0-0"},
        "1.2.0",
    ),
    ("semver:range-caps", ["1.9.0", "2.0.0", "1.10.1"], {"semver_range": "^1"}, "1.10.1"),
    ("semver:range-or", ["1.5.0", "2.5.0", "3.5.0"], {"semver_range": "^1 || ^3"}, "3.5.0"),
    ("semver:range-comma-and", ["0.5.0", "1.5.0", "2.5.0"], {"semver_range": ">0,<2"}, "1.5.0"),
    ("semver:range-nothing-in-it", ["1.0.0", "3.0.0"], {"semver_range": "2.x"}, None),
    (
        "issue:seed-dev-tags-need-a-version-group",
        SEED_TAGS,
        {"tag_regex": "-dev$"},
        None,
    ),
    (
        "issue:seed-dev-tags-with-version-group",
        SEED_TAGS,
        {"tag_regex": r"^(?P<version>.+)-dev$"},
        "1.4.10-dev",
    ),
    (
        "issue:javascript-named-group",
        SEED_TAGS,
        {"tag_regex": r"^(?<version>\d+\.\d+\.\d+)-dev$"},
        "1.4.10-dev",
    ),
    (
        "semver:version-group-not-a-version-is-skipped",
        ["app-1.0.0", "app-next"],
        {"tag_regex": r"^app-(?P<version>.+)$"},
        "app-1.0.0",
    ),
    (
        "semver:optional-version-group-that-did-not-take-part",
        ["latest", "1.0.0"],
        {"tag_regex": r"^(?:(?P<version>\d+\.\d+\.\d+)|latest)$"},
        "1.0.0",
    ),
    ("semver:regex-is-searched-not-anchored", ["1.0.0-dev", "2.0.0"], {"tag_regex": "dev"}, None),
    ("semver:regex-anchor", ["a1.0.0", "1.0.0"], {"tag_regex": r"^\d.*"}, "1.0.0"),
    ("semver:regex-is-a-full-match", ["1.0.0", "1.0.0x"], {"tag_regex": r"\d\.\d\.\d"}, "1.0.0"),
    # --- numerical ---
    ("numerical:by-value-not-text", ["9", "10", "100", "11"], {"policy": "numerical"}, "100"),
    ("numerical:decimals", ["1.5", "1.25", "1.10"], {"policy": "numerical"}, "1.5"),
    ("numerical:leading-dash-is-no-tag", ["-5", "-1", "0"], {"policy": "numerical"}, "0"),
    (
        "numerical:exact-beyond-float-precision",
        ["17096400001234567891", "17096400001234567890"],
        {"policy": "numerical"},
        "17096400001234567891",
    ),
    (
        "numerical:non-numbers-skipped",
        ["12", "latest", "1e3", "inf", "NaN", "0x1F", "1_000", "13a", "1.2.3", "١٣"],
        {"policy": "numerical"},
        "12",
    ),
    ("numerical:nothing-numeric", ["latest", "main"], {"policy": "numerical"}, None),
    # --- alphabetical ---
    ("alphabetical:last-in-byte-order", ["a", "b", "B", "Z"], {"policy": "alphabetical"}, "b"),
    ("alphabetical:10-before-9", ["10", "9", "100"], {"policy": "alphabetical"}, "9"),
    (
        "alphabetical:rfc3339-stamps",
        ["2026-01-02T10-00-00Z", "2026-01-10T09-00-00Z", "2025-12-31T23-59-59Z"],
        {"policy": "alphabetical"},
        "2026-01-10T09-00-00Z",
    ),
    # --- newest ---
    (
        "newest:latest-created",
        ["a", "b", "c"],
        {"policy": "newest", "created": {"a": at(1), "b": at(3), "c": at(2)}},
        "b",
    ),
    (
        "newest:missing-created-skipped",
        ["a", "b"],
        {"policy": "newest", "created": {"a": at(1)}},
        "a",
    ),
    ("newest:no-created-at-all", ["a", "b"], {"policy": "newest", "created": {}}, None),
    (
        "newest:naive-times-are-utc",
        ["naive", "aware"],
        {
            "policy": "newest",
            "created": {
                "naive": datetime(2026, 1, 1, 12, 0),
                "aware": datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=2))),
            },
        },
        "naive",
    ),
    # --- excludeTags ---
    ("exclude:removes-match", ["1.0.0", "1.1.0"], {"exclude": [r"^1\.1"]}, "1.0.0"),
    ("exclude:any-of-several", ["1.0.0", "1.1.0", "1.2.0"], {"exclude": ["1.1", "1.2"]}, "1.0.0"),
    ("exclude:everything", ["1.0.0"], {"exclude": [".*"]}, None),
    (
        "exclude:applies-to-tag-not-version",
        SEED_TAGS,
        {"tag_regex": r"^(?P<version>.+)-dev$", "exclude": ["debug", "^1.4.10"]},
        "1.4.2-dev",
    ),
    # --- empty ---
    ("no-tags", [], {}, None),
    # --- Flux image-reflector-controller, documented behaviour ---
    (
        "flux:semver-range-5.1.x",
        ["5.0.3", "5.1.0", "5.1.2", "5.2.0", "6.0.0"],
        {"semver_range": "5.1.x"},
        "5.1.2",
    ),
    (
        "flux:semver-range-is-masterminds-caret",
        ["1.0.0", "1.5.9", "2.0.0"],
        {"semver_range": "^1.0"},
        "1.5.9",
    ),
    (
        "flux:alphabetical-asc-takes-the-last",
        ["RELEASE.2024-01-01", "RELEASE.2024-03-01", "RELEASE.2024-02-01"],
        {"policy": "alphabetical"},
        "RELEASE.2024-03-01",
    ),
    (
        "flux:numerical-asc-takes-the-highest",
        ["1", "2", "10", "20"],
        {"policy": "numerical"},
        "20",
    ),
    (
        "flux:filterTags-pattern-extract-ts-numerical",
        ["main-a1b2c3d-1709640000", "main-d4e5f6a-1709726400", "pr-12-1800000000"],
        {"policy": "numerical", "tag_regex": r"^main-[a-fA-F0-9]+-(?P<version>\d+)$"},
        "main-d4e5f6a-1709726400",
    ),
    (
        "flux:filterTags-build-number-suffix",
        ["myapp-build-42", "myapp-build-100", "myapp-build-7"],
        {"policy": "numerical", "tag_regex": r"^myapp-build-(?P<version>\d+)$"},
        "myapp-build-100",
    ),
    # --- Argo CD Image Updater, documented behaviour ---
    (
        "argocd:semver-v-prefix-equal-constraint-1.x-matches-v1.0",
        ["v1.0", "2.0.0"],
        {"semver_range": "1.x"},
        "v1.0",
    ),
    (
        "argocd:semver-constraint-v1.x-matches-1.0",
        ["1.0", "2.0.0"],
        {"semver_range": "v1.x"},
        "1.0",
    ),
    (
        "argocd:semver-no-constraint-highest",
        ["1.0.0", "1.1.0", "1.1.1", "1.2.0", "2.0.0"],
        {},
        "2.0.0",
    ),
    (
        "argocd:semver-constraint-^1.0-selects-1.2.0",
        ["1.0.0", "1.1.0", "1.1.1", "1.2.0", "2.0.0"],
        {"semver_range": "^1.0"},
        "1.2.0",
    ),
    (
        "argocd:newest-build-most-recently-created",
        ["1.0.0", "3f2a9c1", "0b7e4d2"],
        {
            "policy": "newest",
            "created": {"1.0.0": at(1), "3f2a9c1": at(9), "0b7e4d2": at(5)},
        },
        "3f2a9c1",
    ),
    (
        "argocd:newest-build-with-allow-tags-regexp",
        ["1.0.0", "3f2a9c1", "0b7e4d2", "latest"],
        {
            "policy": "newest",
            "tag_regex": "^[0-9a-f]{7}$",
            "created": {"1.0.0": at(10), "3f2a9c1": at(2), "0b7e4d2": at(5), "latest": at(10)},
        },
        "0b7e4d2",
    ),
    (
        "argocd:alphabetical-calver",
        ["2021.01.01", "2021.12.24", "2021.02.28"],
        {"policy": "alphabetical"},
        "2021.12.24",
    ),
    (
        "argocd:ignore-tags-as-excludeTags",
        ["1.0.0", "1.1.0", "latest", "master"],
        {"exclude": ["^1\\.1\\.0$", "^latest$", "^master$"]},
        "1.0.0",
    ),
]


@pytest.mark.parametrize(
    ("tags", "kwargs", "expected"), [r[1:] for r in SELECT], ids=[r[0] for r in SELECT]
)
def test_select(tags: list[str], kwargs: dict[str, Any], expected: str | None) -> None:
    kwargs = {"tag_regex": ".*", **kwargs}
    assert policy.select(tags, **kwargs) == expected
    assert policy.evaluate(tags, **kwargs).tag == expected


# Equal keys: the documented tie-break (semver: higher build metadata, then last in byte order).
TIES = [
    ("semver:v-prefix-vs-plain", ["1.2.0", "v1.2.0"], {}, "v1.2.0"),
    ("semver:short-vs-full", ["1.2.0", "1.2"], {}, "1.2.0"),
    ("semver:plus-is-no-tag", ["1.2.0+build.9", "1.2.0"], {}, "1.2.0"),
    (
        "semver:same-version-group",
        ["1.0.0-dev", "1.0.0-prod"],
        {"tag_regex": r"^(?P<version>[\d.]+)-.*"},
        "1.0.0-prod",
    ),
    ("numerical:1-vs-1.0", ["1.0", "1", "01"], {"policy": "numerical"}, "1.0"),
    (
        "alphabetical:same-version-group",
        ["b-2024", "a-2024"],
        {"policy": "alphabetical", "tag_regex": r".*-(?P<version>\d+)$"},
        "b-2024",
    ),
    (
        "newest:same-created",
        ["1.0.0", "latest", "abc"],
        {"policy": "newest", "created": {"1.0.0": T0, "latest": T0, "abc": T0}},
        "latest",
    ),
]


@pytest.mark.parametrize(
    ("tags", "kwargs", "expected"), [r[1:] for r in TIES], ids=[r[0] for r in TIES]
)
def test_ties_are_deterministic(tags: list[str], kwargs: dict[str, Any], expected: str) -> None:
    kwargs = {"tag_regex": ".*", **kwargs}
    assert policy.select(tags, **kwargs) == expected
    assert policy.select(list(reversed(tags)), **kwargs) == expected


# --- Selection ------------------------------------------------------------------------------


def test_selection_carries_version_groups_and_counts() -> None:
    sel = policy.evaluate(
        ["1.4.2-dev-feature-x", "1.4.3-dev-main", "1.4.3-dev-main", "nightly"],
        tag_regex=r"^(?P<version>[\d.]+)-(?P<stage>dev)-(?P<branch>.+)$",
        exclude=["feature"],
    )
    assert sel.tag == "1.4.3-dev-main"
    assert sel.version == "1.4.3"
    assert dict(sel.groups) == {"stage": "dev", "branch": "main"}
    assert (sel.candidates, sel.scanned, sel.excluded) == (1, 3, 1)
    with pytest.raises(TypeError):
        sel.groups["x"] = "y"  # type: ignore[index]


def test_groups_that_did_not_take_part_are_empty_strings() -> None:
    sel = policy.evaluate(["1.0.0"], tag_regex=r"^(?P<version>[\d.]+)(?:-(?P<suffix>.+))?$")
    assert dict(sel.groups) == {"suffix": ""}


def test_version_is_the_whole_tag_without_a_version_group() -> None:
    sel = policy.evaluate(["v1.2.3"], tag_regex=r"^v(?P<major>\d+).*")
    assert (sel.tag, sel.version, dict(sel.groups)) == ("v1.2.3", "v1.2.3", {"major": "1"})


def test_candidates_in_input_order_once() -> None:
    tags = ["b-dev", "a-dev", "x", "b-dev", "c-dev-debug", "c-dev"]
    got = policy.candidates(tags, tag_regex=".*-dev", exclude=["debug$"])
    assert got == ["b-dev", "a-dev", "c-dev"]


def test_candidates_accepts_a_compiled_pattern() -> None:
    compiled = policy.compile_tag_regex("a.")
    assert policy.candidates(["a1", "b2"], tag_regex=compiled) == ["a1"]


def test_newest_without_created_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="created="):
        policy.select(["a"], tag_regex=".*", policy="newest")


# --- compile_tag_regex -------------------------------------------------------------------------

# (id, pattern, tag, expected named groups or None for no match)
REGEXES = [
    ("python-group", r"^(?P<v>\d+)$", "12", {"v": "12"}),
    ("javascript-group", r"^(?<v>\d+)$", "12", {"v": "12"}),
    ("two-javascript-groups", r"^(?<a>\d+)-(?<b>\w+)$", "1-x", {"a": "1", "b": "x"}),
    ("escaped-paren-is-literal", r"^\(?<x>$", "(<x>", {}),
    ("escaped-paren-is-literal-2", r"^\(?<x>$", "<x>", {}),
    ("inside-a-class-untouched", r"^[(?<]+$", "(?<", {}),
    ("class-with-leading-bracket", r"^[]a]+(?<n>\d)$", "]a1", {"n": "1"}),
    ("negated-class-with-leading-bracket", r"^[^]](?<n>\d)$", "x1", {"n": "1"}),
    ("escaped-backslash-then-group", r"^\\(?<n>\d)$", "\\5", {"n": "5"}),
    ("no-match", r"^(?<n>\d)$", "x", None),
]


@pytest.mark.parametrize(
    ("pattern", "tag", "groups"), [r[1:] for r in REGEXES], ids=[r[0] for r in REGEXES]
)
def test_compile_tag_regex(pattern: str, tag: str, groups: Mapping[str, str] | None) -> None:
    match = policy.compile_tag_regex(pattern).search(tag)
    assert (match.groupdict() if match else None) == groups


# --- errors ---------------------------------------------------------------------------------

# (id, keyword arguments, field, words in the problem)
INVALID = [
    ("bad-tag-regex", {"tag_regex": "^(1.2"}, "spec.tagRegex", "missing )"),
    ("bad-named-group", {"tag_regex": "(?<1x>a)"}, "spec.tagRegex", "is not letters, digits"),
    ("duplicate-group", {"tag_regex": "(?<a>x)(?<a>y)"}, "spec.tagRegex", "duplicate capture"),
    ("bad-exclude-index", {"exclude": ["ok", "[z-a]"]}, "spec.excludeTags[1]", "class range"),
    ("lookbehind", {"tag_regex": r"(?<=v)\d+"}, "spec.tagRegex", "uses lookaround"),
    ("lookahead", {"tag_regex": r"(?!.*-rc).*"}, "spec.tagRegex", "excludeTags instead"),
    ("backreference", {"tag_regex": r"(a)-\1"}, "spec.tagRegex", "uses a backreference"),
    ("named-backreference", {"tag_regex": r"(?P<a>x)(?P=a)"}, "spec.tagRegex", "backreference"),
    ("possessive", {"tag_regex": r"a++"}, "spec.tagRegex", "possessive"),
    ("python-end-anchor", {"tag_regex": r"a\Z"}, "spec.tagRegex", "writes \\z"),
    ("too-long", {"tag_regex": "a" * 5000}, "spec.tagRegex", "at most 4096"),
    ("unknown-policy", {"policy": "latest"}, "spec.policy", "semver, numerical, alphabetical"),
    ("policy-is-case-sensitive", {"policy": "SemVer"}, "spec.policy", "not a policy"),
    ("bad-range", {"semver_range": ">=banana"}, "spec.semverRange", "not a version range"),
    ("empty-range", {"semver_range": ""}, "spec.semverRange", "is empty"),
    (
        "range-without-semver",
        {"policy": "numerical", "semver_range": "^1"},
        "spec.semverRange",
        "policy semver only",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "field", "words"), [r[1:] for r in INVALID], ids=[r[0] for r in INVALID]
)
def test_invalid_spec(kwargs: dict[str, Any], field: str, words: str) -> None:
    kwargs = {"tag_regex": ".*", **kwargs}
    for call in (policy.select, policy.evaluate):
        with pytest.raises(errors.InvalidSpec) as caught:
            call(["1.0.0"], **kwargs)
        assert caught.value.field == field
        assert words in caught.value.problem
    assert errors.InvalidSpec.permanent


def test_invalid_regex_even_without_tags() -> None:
    with pytest.raises(errors.InvalidSpec):
        policy.select([], tag_regex="(")


# --- explain(): the NoMatchingTag message --------------------------------------------------

# (id, tags, keyword arguments, words the message must contain, words it must not)
EXPLAIN = [
    (
        "issue:every-match-a-dropped-pre-release-shows-the-fix",
        ["1.4.1-dev", "1.4.2-dev", "latest"],
        {"tag_regex": ".*-dev$"},
        [
            "every match was dropped as a pre-release",
            "tagRegex: '^(?P<version>.+)-dev$'",
            "2 are pre-releases (e.g. 1.4.1-dev, 1.4.2-dev)",
            "semverRange",
        ],
        ["not a version"],
    ),
    (
        "suffix-taken-from-the-tags",
        ["1.0.0-rc", "1.1.0-rc"],
        {},
        ["every match was dropped", r"'^(?P<version>.+)-rc$'"],
        [],
    ),
    (
        "dotted-suffix-is-escaped",
        ["1.0.0-dev.1"],
        {},
        [r"'^(?P<version>.+)-dev\.1$'"],
        [],
    ),
    (
        "mixed-suffixes-fall-back-to-the-dev-example",
        ["1.0.0-rc.1", "1.0.0-rc.2"],
        {},
        ["'^(?P<version>.+)-dev$'"],
        [],
    ),
    (
        "some-pre-releases-some-other",
        ["1.0.0-dev", "latest", "main"],
        {},
        ["1 was dropped as a pre-release", "2 are not versions (e.g. latest, main)"],
        ["every match"],
    ),
    (
        "out-of-range-names-the-range",
        ["1.0.0", "3.0.0"],
        {"semver_range": "^2"},
        ["2 are outside semverRange '^2' (e.g. 1.0.0, 3.0.0)"],
        ["pre-release"],
    ),
    (
        "pre-release-out-of-a-pre-release-range",
        ["1.0.0-rc.1"],
        {"semver_range": ">=2.0.0-0"},
        ["1 is outside semverRange"],
        ["every match"],
    ),
    (
        "pre-release-under-a-release-range",
        ["1.0.0-rc.1"],
        {"semver_range": "^1"},
        ["every match was dropped as a pre-release"],
        [],
    ),
    (
        "no-match",
        ["a", "b"],
        {"tag_regex": "^v"},
        ["none of the 2 tags matches tagRegex '^v'"],
        ["excludeTags"],
    ),
    (
        "all-excluded",
        ["v1", "v2", "x"],
        {"tag_regex": "^v.*", "exclude": ["."]},
        ["excludeTags removed all 2 of the 3 tags that match tagRegex '^v.*'"],
        [],
    ),
    ("no-tags", [], {}, ["no tags yet"], []),
    (
        "numerical",
        ["abc", "1.2.3"],
        {"policy": "numerical"},
        ["policy numerical", "2 are not numbers"],
        ["pre-release"],
    ),
    (
        "newest",
        ["a"],
        {"policy": "newest", "created": {}},
        ["1 is without a known creation time (e.g. a)"],
        [],
    ),
    (
        "version-group-did-not-take-part",
        ["x"],
        {"tag_regex": r"^(?P<version>\d+)?x$"},
        ["without a match for the version group"],
        [],
    ),
    (
        "version-group-present-gives-the-generic-fix",
        ["app-1.0.0-dev"],
        {"tag_regex": r"^app-(?P<version>.+)$"},
        ["every match", "'^(?P<version>.+)-dev$'"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("tags", "kwargs", "present", "absent"),
    [r[1:] for r in EXPLAIN],
    ids=[r[0] for r in EXPLAIN],
)
def test_explain(
    tags: list[str], kwargs: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    sel = policy.evaluate(tags, **{"tag_regex": ".*", **kwargs})
    assert sel.tag is None
    text = sel.explain()
    for words in present:
        assert words in text
    for words in absent:
        assert words not in text


def test_explain_examples_are_capped() -> None:
    tags = [f"1.0.{i}-dev" for i in range(50)]
    text = policy.evaluate(tags, tag_regex=".*").explain()
    assert "(e.g. 1.0.0-dev, 1.0.1-dev, 1.0.2-dev)" in text and "1.0.3-dev" not in text


def test_explain_when_chosen() -> None:
    sel = policy.evaluate(["1.0.0", "2.0.0"], tag_regex=".*")
    assert sel.explain() == "2.0.0 is the semver choice among 2 matching tags"


def test_suggested_fix_works() -> None:
    tags = ["1.4.1-dev", "1.4.10-dev", "1.4.9-dev"]
    sel = policy.evaluate(tags, tag_regex=".*-dev$")
    assert sel.suggested_regex is not None
    assert policy.select(tags, tag_regex=sel.suggested_regex) == "1.4.10-dev"


# --- properties ------------------------------------------------------------------------------

tag_text = st.one_of(
    st.from_regex(
        r"v?[0-9]{1,2}(\.[0-9]{1,2}){0,2}(-(rc|dev|beta)(\.[0-9]{1,2})?)?", fullmatch=True
    ),
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,2})?", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9._-]{0,6}", fullmatch=True),
)
policies = st.sampled_from(["semver", "numerical", "alphabetical", "newest"])
ranges = st.sampled_from([None, "^1", ">=0.0.0-0", "1.x || >=5", "~0.1"])


def _kwargs(policy_name: str, semver_range: str | None, tags: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"tag_regex": ".*", "policy": policy_name}
    if policy_name == "semver":
        kwargs["semver_range"] = semver_range
    if policy_name == "newest":  # a fixed, tag-derived time so ties happen too
        kwargs["created"] = {t: at(len(t)) for t in tags if len(t) % 3}
    return kwargs


@given(st.lists(tag_text, max_size=12), policies, ranges, st.randoms(use_true_random=False))
def test_order_of_input_does_not_change_the_choice(
    tags: list[str], policy_name: str, semver_range: str | None, rnd: random.Random
) -> None:
    kwargs = _kwargs(policy_name, semver_range, tags)
    shuffled = list(tags)
    rnd.shuffle(shuffled)
    assert policy.select(tags, **kwargs) == policy.select(shuffled, **kwargs)


@given(st.lists(tag_text, max_size=12), policies, ranges)
def test_the_choice_qualifies_and_nothing_beats_it(
    tags: list[str], policy_name: str, semver_range: str | None
) -> None:
    kwargs = _kwargs(policy_name, semver_range, tags)
    chosen = policy.select(tags, **kwargs)
    qualifying = [t for t in tags if policy.select([t], **kwargs) == t]
    if chosen is None:
        assert qualifying == []
        return
    assert chosen in qualifying
    for other in qualifying:  # pairwise: the chosen tag still wins against each rival
        assert policy.select([other, chosen], **kwargs) == chosen


@given(st.lists(tag_text, max_size=12), st.lists(tag_text, max_size=3))
def test_excluded_tags_are_never_chosen(tags: list[str], excluded: list[str]) -> None:
    exclude = [f"^{re.escape(t)}$" for t in excluded]
    chosen = policy.select(tags, tag_regex=".*", exclude=exclude, semver_range=">=0.0.0-0")
    assert chosen is None or chosen not in excluded
    assert set(policy.candidates(tags, tag_regex=".*", exclude=exclude)) == set(tags) - set(
        excluded
    )


# --- tags are data ---------------------------------------------------------------------------

NOT_TAGS = [
    ("final-newline", "9.9.9\n"),
    ("trailer", "9.9.9\nSigned-off-by: x"),
    ("space-hash", "9.9.9 #x"),
    ("colon-space", ": "),
    ("quote", '"'),
    ("nul", "9.9.9\x00"),
    ("rlo", "9.9.9\u202e"),
    ("full-width", "９.９.９"),
    ("path", "/../9.9.9"),
    ("yaml-tag", "!!python/object:x"),
    ("too-long", "9" * 129),
    ("leading-dot", ".9.9.9"),
    ("leading-dash", "-9.9.9"),
    ("plus", "9.9.9+x"),
    ("empty", ""),
]


@pytest.mark.parametrize("tag", [t for _, t in NOT_TAGS], ids=[i for i, _ in NOT_TAGS])
def test_a_text_that_is_not_an_oci_tag_never_qualifies(tag: str) -> None:
    for policy_name, regex in (("semver", ".*"), ("alphabetical", ".*"), ("numerical", ".*")):
        sel = policy.evaluate(["100", tag], tag_regex=regex, policy=policy_name)
        assert sel.tag == "100"
        assert sel.invalid == 1 and sel.scanned == 1
    assert policy.candidates([tag], tag_regex=r"(?s).*") == []
    assert not policy.is_tag(tag)


@pytest.mark.parametrize(
    "tag", ["1.0.0", "v1", "_x", "a" * 128, "A-b_c.d", "0"], ids=lambda t: t[:10]
)
def test_oci_tags_do_qualify(tag: str) -> None:
    assert policy.is_tag(tag)
    assert policy.evaluate([tag], tag_regex=".*", policy="alphabetical").tag == tag


def test_ignored_entries_are_counted_in_every_message() -> None:
    sel = policy.evaluate(["1.0.0", "x\n", "y\n", "y\n"], tag_regex=".*")
    assert sel.explain().endswith(
        "(2 tag list entries are not valid OCI tags ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) and "
        "were ignored)"
    )
    nothing = policy.evaluate(["x\n"], tag_regex=".*")
    assert nothing.tag is None and "lists no valid tags" in nothing.explain()
    assert policy.evaluate(["1.0.0"], tag_regex=".*").ignored() == ""


def test_tag_regex_must_match_the_whole_tag() -> None:
    tags = ["1.2.3", "1.2.3-debug", "x1.2.3"]
    assert policy.candidates(tags, tag_regex=r"\d+\.\d+\.\d+") == ["1.2.3"]
    assert policy.candidates(tags, tag_regex=r"^\d+\.\d+\.\d+$") == ["1.2.3"]
    assert policy.candidates(tags, tag_regex=r".*", exclude=["debug"]) == ["1.2.3", "x1.2.3"]


def test_an_evaluation_is_shared_by_every_caller_with_the_same_inputs() -> None:
    """1,000 CRs over 100 images judged 100 distinct inputs a thousand times: each is kept."""
    when = {"1.0.0": datetime(2026, 1, 1, tzinfo=UTC), "1.1.0": datetime(2026, 1, 2, tzinfo=UTC)}
    inputs: list[dict[str, Any]] = [
        {"tags": ["1.0.0", "1.1.0"], "tag_regex": r"\d+\.\d+\.\d+"},
        {"tags": ["1.0.0", "1.1.0"], "tag_regex": r"\d+\.\d+\.\d+", "exclude": ["1.1"]},
        {"tags": ["1.0.0", "1.1.0"], "tag_regex": ".*", "policy": "newest", "created": when},
        {"tags": ["1.0.0", "1.1.0"], "tag_regex": ".*", "semver_range": "<1.1.0"},
    ]
    first = [policy.evaluate(**kwargs) for kwargs in inputs]
    again = [policy.evaluate(**{**kwargs}) for kwargs in inputs]
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert [s.tag for s in first] == ["1.1.0", "1.0.0", "1.1.0", "1.0.0"]
    later = {**when, "1.0.0": datetime(2026, 1, 3, tzinfo=UTC)}  # other times: judged afresh
    newest = policy.evaluate(["1.0.0", "1.1.0"], tag_regex=".*", policy="newest", created=later)
    assert newest.tag == "1.0.0"
    pattern = regexes.compile(r"\d+\.\d+\.\d+", "spec.tagRegex")
    assert policy.evaluate(["1.0.0"], tag_regex=pattern) is not policy.evaluate(
        ["1.0.0"], tag_regex=pattern
    )
