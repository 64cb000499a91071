"""semver: lenient versions, SemVer 2.0 precedence, and Masterminds-style ranges.

Rows labelled `masterminds:` restate examples from the Masterminds/semver README (the library
Flux's image-reflector-controller and Argo CD Image Updater parse ranges with); rows labelled
`argocd:` restate Argo CD Image Updater's update-strategies documentation; `semver.org:` rows
restate item 11 of the SemVer 2.0 specification.
"""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagepromoter import errors, semver

# --- parsing -------------------------------------------------------------------------------

PARSED = [
    ("1.2.3", (1, 2, 3, (), ())),
    ("v1.2.3", (1, 2, 3, (), ())),
    ("1.2", (1, 2, 0, (), ())),
    ("v1", (1, 0, 0, (), ())),
    ("0.0.0", (0, 0, 0, (), ())),
    ("1.2.0-dev.10", (1, 2, 0, ("dev", "10"), ())),
    ("1.2-rc.1", (1, 2, 0, ("rc", "1"), ())),
    ("1.2.3+build.7", (1, 2, 3, (), ("build", "7"))),
    ("1.2.3-rc.1+exp.sha.5114f85", (1, 2, 3, ("rc", "1"), ("exp", "sha", "5114f85"))),
    ("1.2.3-x-y-z.--", (1, 2, 3, ("x-y-z", "--"), ())),
    ("2024.01.15", (2024, 1, 15, (), ())),
    ("20240115", (20240115, 0, 0, (), ())),
    ("1.2.3-0", (1, 2, 3, ("0",), ())),
    ("99999999999999999999.0.0", (99999999999999999999, 0, 0, (), ())),
]


@pytest.mark.parametrize(("text", "parts"), PARSED, ids=[t for t, _ in PARSED])
def test_parse_version(text: str, parts: tuple[object, ...]) -> None:
    v = semver.parse_version(text)
    assert v is not None
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == parts


NOT_VERSIONS = [
    "",
    "latest",
    "main",
    "sha-1a2b3c4",
    "V1.2.3",
    "1.2.3.4",
    "1.2.3-",
    "1.2.3+",
    "1.2.3-rc..1",
    "1.2.3-rc.01",
    "-1.2.3",
    "1.2.3 ",
    "１.2.3",
    "1.2.x",
    "vv1",
    "1.2.3_4",
]


@pytest.mark.parametrize("text", NOT_VERSIONS, ids=[repr(t) for t in NOT_VERSIONS])
def test_not_a_version(text: str) -> None:
    assert semver.parse_version(text) is None


# --- precedence ----------------------------------------------------------------------------

ASCENDING = [
    # semver.org item 11, the example chain
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


@pytest.mark.parametrize(
    ("low", "high"),
    list(itertools.pairwise(ASCENDING)),
    ids=[f"semver.org:{a}<{b}" for a, b in itertools.pairwise(ASCENDING)],
)
def test_semver_org_chain(low: str, high: str) -> None:
    assert semver.parse_version(low) < semver.parse_version(high)  # type: ignore[operator]


LESS = [
    ("1.2.0-dev.9", "1.2.0-dev.10", "numeric-identifiers-by-value"),
    ("1.2.0-rc.1", "1.2.0", "release-above-its-pre-release"),
    ("1.2.0-rc.1", "1.2.0-rc.1.1", "longer-wins-on-equal-prefix"),
    ("1.2.0-1", "1.2.0-a", "numeric-below-alphanumeric"),
    ("1.2.0-RC", "1.2.0-alpha", "ascii-uppercase-first"),
    ("1.2.0-alpha10", "1.2.0-alpha2", "mixed-identifier-is-text"),
    ("1.9.0", "1.10.0", "minor-by-value"),
    ("1.2.9", "1.3.0-alpha", "pre-release-of-later-version-is-higher"),
    ("v1.2.3", "1.2.4", "v-prefix-ignored"),
    ("1", "1.0.1", "short-form-is-zero-filled"),
    ("0.9", "1", "major"),
    ("2024.01.15", "2024.2.1", "zero-padded-calver"),
]


@pytest.mark.parametrize(("low", "high"), [r[:2] for r in LESS], ids=[r[2] for r in LESS])
def test_precedence(low: str, high: str) -> None:
    a, b = semver.parse_version(low), semver.parse_version(high)
    assert a is not None and b is not None
    assert a < b and b > a and a != b


EQUAL = [
    ("v1.2.0", "1.2.0", "v-prefix"),
    ("1.2", "1.2.0", "short-form"),
    ("1", "1.0.0", "major-only"),
    ("1.2.0+build.1", "1.2.0+build.2", "build-metadata-ignored"),
    ("1.2.0-rc.1+a", "1.2.0-rc.1", "build-metadata-ignored-on-pre-release"),
]


@pytest.mark.parametrize(("a", "b"), [r[:2] for r in EQUAL], ids=[r[2] for r in EQUAL])
def test_equal_precedence(a: str, b: str) -> None:
    va, vb = semver.parse_version(a), semver.parse_version(b)
    assert va == vb and hash(va) == hash(vb) and not va < vb  # type: ignore[operator]


def test_str_is_canonical() -> None:
    assert str(semver.parse_version("v1.2-rc.1+b.2")) == "1.2.0-rc.1+b.2"


# --- ranges --------------------------------------------------------------------------------

# (range, version, in range?, id)
RANGES = [
    # Masterminds README: wildcards
    ("1.2.x", "1.2.0", True, "masterminds:1.2.x-is->=1.2.0,<1.3.0:low"),
    ("1.2.x", "1.2.99", True, "masterminds:1.2.x:high"),
    ("1.2.x", "1.3.0", False, "masterminds:1.2.x:excludes-1.3.0"),
    ("1.2.x", "1.1.9", False, "masterminds:1.2.x:excludes-1.1.9"),
    (">= 1.2.x", "5.0.0", True, "masterminds:>=1.2.x-is->=1.2.0"),
    ("<= 2.x", "2.9.9", True, "masterminds:<=2.x-is-<3:in"),
    ("<= 2.x", "3.0.0", False, "masterminds:<=2.x-is-<3:out"),
    ("*", "0.0.1", True, "masterminds:*-is->=0.0.0"),
    ("*", "987.6.5", True, "masterminds:*-any-release"),
    ("x", "1.0.0", True, "x-alone-is-any"),
    ("1.2", "1.2.7", True, "bare-partial-is-x-range"),
    ("1", "1.9.0", True, "bare-major-is-x-range"),
    ("1", "2.0.0", False, "bare-major-excludes-next"),
    # Masterminds README: tilde
    ("~1.2.3", "1.2.3", True, "masterminds:~1.2.3-is->=1.2.3,<1.3.0:low"),
    ("~1.2.3", "1.2.9", True, "masterminds:~1.2.3:high"),
    ("~1.2.3", "1.3.0", False, "masterminds:~1.2.3:excludes-1.3.0"),
    ("~1.2.3", "1.2.2", False, "masterminds:~1.2.3:excludes-1.2.2"),
    ("~1", "1.9.9", True, "masterminds:~1-is->=1,<2"),
    ("~1", "2.0.0", False, "masterminds:~1:excludes-2"),
    ("~2.3", "2.3.7", True, "masterminds:~2.3-is->=2.3,<2.4"),
    ("~2.3", "2.4.0", False, "masterminds:~2.3:excludes-2.4"),
    ("~1.2.x", "1.2.5", True, "masterminds:~1.2.x-is->=1.2.0,<1.3.0"),
    ("~1.x", "1.7.0", True, "masterminds:~1.x-is->=1,<2"),
    ("~>1.2", "1.2.4", True, "tilde-arrow-alias"),
    ("~1.2", "1.3.0", False, "issue:~1.2-excludes-1.3"),
    # Masterminds README: caret (npm's rule for 0.x)
    ("^1.2.3", "1.9.9", True, "masterminds:^1.2.3-is->=1.2.3,<2.0.0"),
    ("^1.2.3", "2.0.0", False, "masterminds:^1.2.3:excludes-2"),
    ("^1.2.3", "1.2.2", False, "masterminds:^1.2.3:excludes-below"),
    ("^1.2.x", "1.2.0", True, "masterminds:^1.2.x-is->=1.2.0,<2.0.0"),
    ("^2.3", "2.9.0", True, "masterminds:^2.3-is->=2.3,<3"),
    ("^2.x", "2.0.0", True, "masterminds:^2.x-is->=2.0.0,<3"),
    ("^1.2", "1.99.0", True, "issue:^1.2"),
    ("^1.2", "1.1.0", False, "issue:^1.2-excludes-1.1"),
    ("^0.2", "0.2.9", True, "argocd:^0.2-matches-0.2.x"),
    ("^0.2", "0.3.0", False, "argocd:^0.2-excludes-0.3"),
    ("^0.2.3", "0.2.4", True, "npm:^0.2.3-is-<0.3.0"),
    ("^0.0.3", "0.0.4", False, "npm:^0.0.3-is-<0.0.4"),
    ("^0.0", "0.0.9", True, "npm:^0.0-is-<0.1.0"),
    ("^0", "0.9.0", True, "npm:^0-is-<1.0.0"),
    ("^0", "1.0.0", False, "npm:^0-excludes-1"),
    # Masterminds README: hyphen ranges
    ("1.2 - 1.4.5", "1.2.0", True, "masterminds:1.2-1.4.5-is->=1.2,<=1.4.5:low"),
    ("1.2 - 1.4.5", "1.4.5", True, "masterminds:1.2-1.4.5:inclusive-high"),
    ("1.2 - 1.4.5", "1.4.6", False, "masterminds:1.2-1.4.5:excludes-above"),
    ("2.3.4 - 4.5", "4.5.9", True, "partial-upper-covers-its-patches"),
    ("2.3.4 - 4.5", "4.6.0", False, "partial-upper-excludes-next-minor"),
    # comparisons, AND by space or comma, OR
    (">=1 <2", "1.0.0", True, "issue:>=1 <2:low"),
    (">=1 <2", "1.99.99", True, "issue:>=1 <2:high"),
    (">=1 <2", "2.0.0", False, "issue:>=1 <2:excludes-2"),
    (">0,<2", "0.0.1", False, "issue:>0,<2:>0-on-partial-is->=1"),
    (">0,<2", "1.0.0", True, "issue:>0,<2"),
    (">0, <2", "1.5.0", True, "comma-and-space"),
    (">= 1.2, < 3.0.0 || >= 4.2.3", "4.3.0", True, "masterminds:or-of-ands:second"),
    (">= 1.2, < 3.0.0 || >= 4.2.3", "3.5.0", False, "masterminds:or-of-ands:gap"),
    (">= 1.2, < 3.0.0 || >= 4.2.3", "1.2.0", True, "masterminds:or-of-ands:first"),
    ("^1 || ^3", "3.1.0", True, "issue:a||b"),
    ("^1 || ^3", "2.1.0", False, "issue:a||b:gap"),
    ("=1.2.3", "1.2.3", True, "exact"),
    ("=1.2.3", "1.2.4", False, "exact-excludes-other"),
    ("1.2.3", "v1.2.3", True, "exact-ignores-v"),
    ("=1.2.3", "1.2.3+build.9", True, "exact-ignores-build"),
    ("!=1.2.3", "1.2.3", False, "not-equal"),
    ("!=1.2.3", "1.2.4", True, "not-equal-other"),
    ("^1, !=1.2.3", "1.2.3", False, "not-equal-in-a-set"),
    ("!=1.2", "1.2.5", False, "not-equal-partial-excludes-the-minor"),
    ("!=1.2", "1.3.0", True, "not-equal-partial-keeps-others"),
    ("> 1.2.3", "1.2.4", True, "space-after-operator"),
    (">1.2.3", "1.2.3", False, "greater-is-strict"),
    (">1.2", "1.2.9", False, "npm:>1.2-is->=1.3.0"),
    (">1.2", "1.3.0", True, "npm:>1.2-is->=1.3.0:in"),
    ("<1.2", "1.1.9", True, "less-than-partial"),
    ("<1.2", "1.2.0", False, "less-than-partial-excludes"),
    ("<=1.2.3", "1.2.3", True, "less-equal"),
    ("=>1.2", "1.2.0", True, "masterminds:=>-alias"),
    ("=<1.2", "1.2.9", True, "masterminds:=<-alias"),
    ("v1.x", "1.0.0", True, "argocd:v1.x-matches-1.0"),
    ("1.x", "v1.0", True, "argocd:1.x-matches-v1.0"),
    (">*", "1.0.0", False, "greater-than-any-is-empty"),
    ("<*", "1.0.0", False, "less-than-any-is-empty"),
    (">=*", "1.0.0", True, "at-least-any-is-all"),
]


@pytest.mark.parametrize(
    ("text", "version", "expected"), [r[:3] for r in RANGES], ids=[r[3] for r in RANGES]
)
def test_range(text: str, version: str, expected: bool) -> None:
    v = semver.parse_version(version)
    assert v is not None
    assert (v in semver.parse_range(text)) is expected


# The pre-release rule: a pre-release is in a comparator set only if that set names one.
PRERELEASES = [
    ("^1.2", "1.3.0-rc.1", False, "caret-without-pre-release"),
    ("*", "1.0.0-rc.1", False, "any-release-is-not-any-pre-release"),
    (">=1.0.0", "1.5.0-rc.1", False, "masterminds:constraint-without-pre-release"),
    (">=1.0.0-0", "1.5.0-rc.1", True, "masterminds:-0-admits-pre-releases"),
    (">=1.0.0-0", "1.0.0-alpha", True, "-0-is-the-lowest-pre-release"),
    (">=1.0.0-0", "0.9.0-rc.1", False, "pre-release-below-the-bound"),
    (">=1.2.0-0 <1.3.0", "1.2.5-rc.1", True, "set-names-one-so-all-of-the-set-admits"),
    (">=1.2.0-0 <1.3.0", "1.3.0-rc.1", True, "upper-bound-by-precedence:1.3.0-rc.1<1.3.0"),
    (">=1.2.0-0 <1.3.0-0", "1.3.0-rc.1", False, "write--0-on-the-upper-bound-to-exclude"),
    ("^1.2.0-rc.1", "1.2.0-rc.2", True, "caret-on-pre-release"),
    ("^1.2.0-rc.1", "1.2.0-rc.0", False, "caret-on-pre-release:below"),
    ("^1.2.0-rc.1", "2.0.0-rc.1", False, "implied-upper-bound-excludes-its-pre-releases"),
    ("~1.2.0-beta.2", "1.2.0-beta.10", True, "tilde-on-pre-release"),
    ("=1.2.0-dev.10", "1.2.0-dev.10", True, "exact-pre-release"),
    ("=1.2.0-dev.10", "1.2.0-dev.9", False, "exact-pre-release:other"),
    ("^2 || >=1.0.0-0 <2", "1.1.0-rc.1", True, "or:the-set-that-names-one"),
    ("^1 || >=3.0.0-0", "1.1.0-rc.1", False, "or:other-set-names-one"),
    ("1.2.0-rc.1 - 1.2.0", "1.2.0-rc.5", True, "hyphen-with-pre-release"),
    ("^1.2", "1.2.0", True, "release-still-in"),
]


@pytest.mark.parametrize(
    ("text", "version", "expected"),
    [r[:3] for r in PRERELEASES],
    ids=[r[3] for r in PRERELEASES],
)
def test_prerelease_rule(text: str, version: str, expected: bool) -> None:
    v = semver.parse_version(version)
    assert v is not None
    assert (v in semver.parse_range(text)) is expected


@pytest.mark.parametrize(
    ("text", "names"),
    [("^1.2", False), (">=1.0.0-0", True), ("^1 || =2.0.0-rc.1", True), ("*", False)],
    ids=["caret", "dash-zero", "in-one-alternative", "star"],
)
def test_names_prerelease(text: str, names: bool) -> None:
    assert semver.parse_range(text).names_prerelease is names


BAD_RANGES = [
    ("", "is empty"),
    ("   ", "is empty"),
    ("latest", "cannot read 'latest'"),
    (">=", "cannot read '>='"),
    ("1.x.2", "number after a wildcard"),
    ("1.x-rc.1", "pre-release on a wildcard"),
    ("^1 ||", "empty alternative"),
    ("|| ^1", "empty alternative"),
    ("^1 |  | ^2", "cannot read '|'"),
    (">1 - 2", "hyphen range takes plain versions"),
    ("1.2.3.4", "cannot read"),
    ("~=1.2", "cannot read"),
    ("1.2.3-rc..1", "cannot read"),
    (">=1.2.3-rc.01", "leading zero (01)"),
    ("^1.0.0-00", "leading zero (00)"),
    ("1.2-alpha.007 - 2", "leading zero (007)"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_RANGES, ids=[repr(t) for t, _ in BAD_RANGES])
def test_bad_range(text: str, problem: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        semver.parse_range(text)
    assert caught.value.field == "spec.semverRange"
    assert problem in caught.value.problem
    assert "^1.2" in caught.value.problem  # says what to write instead


def test_bad_range_names_the_given_field() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"^spec\.x\.range: "):
        semver.parse_range("nope", field="spec.x.range")


def test_invalid_spec_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        semver.parse_range("nope")


# --- properties ----------------------------------------------------------------------------

identifiers = st.one_of(
    st.integers(0, 30).map(str),
    st.text("abcrRC-", min_size=1, max_size=4),
)
versions = st.builds(
    semver.Version,
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.lists(identifiers, max_size=3).map(tuple),
    st.lists(st.text("abc1", min_size=1, max_size=3), max_size=2).map(tuple),
)


def _spec_compare(a: semver.Version, b: semver.Version) -> int:
    """SemVer item 11 written out step by step, as an oracle independent of `precedence`."""
    for m, n in zip(a.release, b.release, strict=True):
        if m != n:
            return -1 if m < n else 1
    if not a.prerelease or not b.prerelease:
        return (not a.prerelease) - (not b.prerelease)
    for x, y in zip(a.prerelease, b.prerelease, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(a.prerelease) > len(b.prerelease)) - (len(a.prerelease) < len(b.prerelease))


@given(versions, versions)
def test_order_matches_the_spec_written_out(a: semver.Version, b: semver.Version) -> None:
    expected = _spec_compare(a, b)
    assert (a < b, a == b, a > b) == (expected < 0, expected == 0, expected > 0)


@given(st.lists(versions, max_size=8))
def test_sorting_is_a_total_order(vs: list[semver.Version]) -> None:
    ordered = sorted(vs)
    assert ordered == sorted(vs, key=functools.cmp_to_key(_spec_compare))
    assert all(a <= b for a, b in itertools.pairwise(ordered))


@given(versions)
def test_text_round_trips(v: semver.Version) -> None:
    again = semver.parse_version(str(v))
    assert again == v and again is not None and again.build == v.build
    assert semver.parse_version("v" + str(v)) == v


@given(versions, st.sampled_from(["^", "~", ">=", "<=", "=", ""]))
def test_a_version_is_in_its_own_caret_tilde_and_equal_ranges(v: semver.Version, op: str) -> None:
    assert v in semver.parse_range(f"{op}{v}")
