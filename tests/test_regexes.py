"""regexes: user regexes on RE2, linear time, named groups in both spellings, clear refusals."""

from __future__ import annotations

import re
import time

import pytest

from imagepromoter import errors, regexes


def test_catastrophic_pattern_runs_in_linear_time_where_python_re_does_not() -> None:
    tag = "a" * 5000 + "b"
    pattern = regexes.compile("^(a+)+$", "spec.tagRegex")
    started = time.process_time()
    assert pattern.fullmatch(tag) is None
    linear = time.process_time() - started
    started = time.process_time()
    assert re.fullmatch("^(a+)+$", "a" * 18 + "b") is None  # 2**18 paths already
    backtracking = time.process_time() - started
    assert linear < backtracking * 50  # a ratio of two measurements, not a wall-clock bound


@pytest.mark.parametrize(
    ("pattern", "text", "groups"),
    [
        (r"(?P<v>\d+)-(?<s>\w+)", "12-dev", {"v": "12", "s": "dev"}),
        (r"^[(?<]+$", "(?<", {}),
        (r"\(?<x>", "<x>", {}),
        (r"(?<a>x)?(?<b>y)", "y", {"a": None, "b": "y"}),
    ],
    ids=["both-spellings", "inside-a-class", "escaped-paren", "group-not-taking-part"],
)
def test_named_groups(pattern: str, text: str, groups: dict[str, str | None]) -> None:
    match = regexes.compile(pattern, "f").fullmatch(text)
    assert match is not None and match.groupdict() == groups


def test_dollar_never_matches_before_a_final_newline() -> None:
    pattern = regexes.compile(r"^(?P<version>\d+\.\d+\.\d+)$", "f")
    assert pattern.fullmatch("9.9.9\n") is None and pattern.search("9.9.9\n") is None


def test_ascii_classes_and_character_spans() -> None:
    assert regexes.compile(r"\d+", "f").fullmatch("９") is None
    match = regexes.compile("(?P<value>é+)", "f", multiline=True).search("café é")
    assert match is not None and match.span("value") == (3, 4)


def test_multiline_finditer() -> None:
    pattern = regexes.compile(r"^tag: (?P<value>.*)$", "f", multiline=True)
    assert [m.group("value") for m in pattern.finditer("tag: a\nx: 1\ntag: b\n")] == ["a", "b"]


REFUSED = [
    ("backreference", r"(a)\1", "backreference"),
    ("named-backreference", r"(?P<a>x)(?P=a)", "backreference"),
    ("lookahead", r"x(?=y)", "lookaround"),
    ("negative-lookbehind", r"(?<!x)y", "lookaround"),
    ("possessive", r"a*+", "possessive"),
    ("atomic", r"(?>a)", "atomic group"),
    ("python-Z", r"a\Z", "\\z"),
    ("bad-group-name", r"(?P<1a>x)", "letters, digits and _"),
    ("duplicate-group", r"(?P<a>x)|(?P<a>y)", "twice"),
    ("too-long", "a" * 4097, "at most 4096"),
    ("repetition-too-big", "(?:a{100}){100}", "invalid repetition size"),
    ("unbalanced", "(a", "missing )"),
]


@pytest.mark.parametrize(
    ("pattern", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refused_patterns_are_invalid_spec_naming_the_field(pattern: str, words: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        regexes.compile(pattern, "spec.excludeTags[2]")
    assert caught.value.field == "spec.excludeTags[2]"
    assert words in caught.value.problem


def test_a_compiled_pattern_is_kept_and_a_failing_one_fails_every_time() -> None:
    first = regexes.compile(r"^(?P<version>\d+)-kept$", "spec.tagRegex")
    assert regexes.compile(r"^(?P<version>\d+)-kept$", "spec.tagRegex") is first
    assert regexes.compile(r"^(?P<version>\d+)-kept$", "spec.excludeTags") is not first
    assert regexes.compile(r"^(?P<version>\d+)-kept$", "regex", multiline=True) is not first
    assert first.fullmatch("12-kept") is not None
    for _ in range(2):
        with pytest.raises(errors.InvalidSpec, match=r"spec\.tagRegex"):
            regexes.compile(r"(a)\1", "spec.tagRegex")
