r"""values: golden edits, the quoting rules, key paths, get_key, regex edits and every error.

The golden cases live in tests/golden/values/<case>/: `original.yaml`, `expected.yaml` (written by
hand, byte for byte) and `case.json` (the operation and why the case exists). A reviewer sees a
behaviour by opening two files. Every golden edit is also checked independently of the expected
file: both YAML 1.1 (PyYAML/libyaml, what Helm reads) and YAML 1.2 (ruamel.yaml) load the result
as the original data with only the target changed.

The helpers at the top (`loaded`, `with_value`, `assert_only_changed`, `changed_region`) are shared
with test_values_properties.py and test_values_corpus.py.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

from imagepromoter import errors, values

GOLDEN = Path(__file__).parent / "golden" / "values"

# --- shared helpers ------------------------------------------------------------------------


def loaded(text: str, version: str) -> list[Any]:
    """Every document of `text` as data: "1.1" with libyaml (PyYAML), "1.2" with ruamel.yaml."""
    if version == "1.1":
        return _normal(list(yaml.load_all(text, Loader=yaml.CSafeLoader)))
    return _normal(list(YAML(typ="safe", pure=True).load_all(text)))


def _normal(data: Any) -> Any:
    """Data with NaN made comparable (NaN != NaN would fail every equality)."""
    if isinstance(data, dict):
        return {k: _normal(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_normal(v) for v in data]
    if isinstance(data, float) and math.isnan(data):
        return "<NaN>"
    return data


def with_value(documents: list[Any], key: str, value: str) -> list[Any]:
    """A copy of `documents` with the one document holding `key` set to `value` there."""
    segments = values.split_key(key)
    result = copy.deepcopy(documents)
    holders = []
    for document in result:
        node = document
        for segment in segments[:-1]:
            node = _child(node, segment)
        if node is not None and _has(node, segments[-1]):
            holders.append(node)
    assert len(holders) == 1, f"{key} is in {len(holders)} documents"
    last = segments[-1]
    holder = holders[0]
    if isinstance(holder, list):
        holder[int(last)] = value
    else:
        holder[_data_key(holder, last)] = value
    return result


def _data_key(mapping: dict[Any, Any], segment: str) -> Any:
    return next(k for k in mapping if str(k) == segment)


def _has(node: Any, segment: str) -> bool:
    if isinstance(node, dict):
        return any(str(k) == segment for k in node)
    return isinstance(node, list) and segment.isdigit() and int(segment) < len(node)


def _child(node: Any, segment: str) -> Any:
    return (
        (node[int(segment)] if isinstance(node, list) else node[_data_key(node, segment)])
        if (_has(node, segment))
        else None
    )


def assert_only_changed(original: str, edited: str, key: str, value: str) -> None:
    """Both YAML versions load `edited` as `original` with only `key` set to the string `value`."""
    for version in ("1.1", "1.2"):
        expected = with_value(loaded(original, version), key, value)
        assert loaded(edited, version) == expected, f"YAML {version} data differs"


def changed_region(before: str, after: str) -> tuple[int, int, str]:
    """(start, end, new): `after` is `before[:start] + new + before[end:]`, with new minimal."""
    start = 0
    limit = min(len(before), len(after))
    while start < limit and before[start] == after[start]:
        start += 1
    end_before, end_after = len(before), len(after)
    while (
        end_before > start and end_after > start and before[end_before - 1] == after[end_after - 1]
    ):
        end_before -= 1
        end_after -= 1
    return start, end_before, after[start:end_after]


# --- golden files --------------------------------------------------------------------------


def _golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def test_there_are_enough_golden_cases() -> None:
    assert len(_golden_cases()) >= 20


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    spec = json.loads((case / "case.json").read_text(encoding="utf-8"))
    original = (case / "original.yaml").read_bytes().decode("utf-8")  # keeps a BOM
    expected = (case / "expected.yaml").read_bytes()
    if spec["op"] == "set_key":
        edited = values.set_key(original, spec["key"], spec["value"])
    else:
        edited = values.set_regex(original, spec["pattern"], spec["value"])
    assert edited.encode("utf-8") == expected, spec["why"]
    if spec["op"] == "set_key":
        assert_only_changed(original, edited, spec["key"], spec["value"])
        assert values.get_key(edited, spec["key"]) == (spec["value"] or None)
        assert values.set_key(edited, spec["key"], spec["value"]) == edited  # idempotent


# --- key paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "segments"),
    [
        ("image.tag", ("image", "tag")),
        ("tag", ("tag",)),
        ("containers.0.image", ("containers", "0", "image")),
        (
            "podAnnotations.app\\.kubernetes\\.io/version",
            ("podAnnotations", "app.kubernetes.io/version"),
        ),
        ("a\\\\b.c", ("a\\b", "c")),
        ("a\\\\.b", ("a\\", "b")),
    ],
    ids=[
        "dotted",
        "single",
        "list-index",
        "escaped-dots",
        "escaped-backslash",
        "backslash-then-dot",
    ],
)
def test_split_and_join_key(key: str, segments: tuple[str, ...]) -> None:
    assert values.split_key(key) == segments
    assert values.join_key(segments) == key


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty segment"),
        (".a", "empty segment"),
        ("a.", "empty segment"),
        ("a..b", "empty segment"),
        ("a\\xb", "backslash must be followed"),
        ("a\\", "backslash must be followed"),
    ],
    ids=["empty", "leading-dot", "trailing-dot", "double-dot", "bad-escape", "trailing-backslash"],
)
def test_malformed_keys(key: str, problem: str) -> None:
    with pytest.raises(errors.TargetError, match=problem):
        values.set_key("a: 1\n", key, "x")


# --- get_key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("image:\n  tag: 1.10\n", "image.tag", "1.10"),
        ("image:\n  tag: '1.0'\n", "image.tag", "1.0"),
        ('image:\n  tag: "a\\tb"\n', "image.tag", "a\tb"),
        ("image: {tag: v1}\n", "image.tag", "v1"),
        ("ports: [443, 6443]\n", "ports.1", "6443"),
        ("image:\n  tag:\n", "image.tag", None),
        ("image:\n  tag: ~\n", "image.tag", None),
        ("image:\n  tag: null\n", "image.tag", None),
        ("image:\n  tag: NULL\n", "image.tag", None),
        ("image:\n  tag: ''\n", "image.tag", None),
        ("image:\n  tag: 'null'\n", "image.tag", "null"),
        ("note: |\n  two\n  lines\n", "note", "two\nlines\n"),
        ("a: 1\n---\nimage:\n  tag: v2\n", "image.tag", "v2"),
    ],
    ids=[
        "plain-as-written",
        "single-quoted",
        "double-quoted-escape",
        "flow-mapping",
        "flow-sequence",
        "empty",
        "tilde",
        "null",
        "NULL",
        "empty-quoted",
        "quoted-null-is-a-string",
        "block-scalar",
        "second-document",
    ],
)
def test_get_key(text: str, key: str, expected: str | None) -> None:
    assert values.get_key(text, key) == expected


# --- how a value is written ----------------------------------------------------------------

PLAIN_TARGET = "k: old\n"

QUOTED_WHEN_PLAIN = [
    "1.10", "1.1", "10", "+1", "-1", ".5", "1.", "1e3", "1E-3", "1_000", "0x1F", "0o17", "0b101",
    "0123", "12:30", "1:20:30.5", ".inf", "-.Inf", ".NaN", "true", "True", "FALSE", "yes", "No",
    "on", "OFF", "y", "Y", "n", "N", "null", "Null", "~", "2024-01-02", "2024-01-02T10:00:00Z",
    "2024-01-02 10:00:00", "<<", "=", "a: b", "a #b", "trailing:", " lead", "trail ", "",
    "-dev", "?x", ":x", ",x", "[x", "]x", "{x", "}x", "#x", "&x", "*x", "!x", "|x", ">x", "'x",
    '"x', "%x", "@x", "`x", "tab\there", "line\nbreak", "nel\x85", "bom\ufeff",
]  # fmt: skip

STAYS_PLAIN = [
    "1.2.3", "v1.10", "latest", "1.2.3-rc.1+build.5", "sha256:abc123", "a:b", "x-y", "main#1",
    "2024-01-02-abc", "ghcr.io/org/app:1.0", "grüße", "0.0.0.0/0", "a,b", "a[0]", "x{{ .Values }}",
]  # fmt: skip


@pytest.mark.parametrize("value", QUOTED_WHEN_PLAIN, ids=repr)
def test_plain_values_that_would_not_load_back_are_double_quoted(value: str) -> None:
    edited = values.set_key(PLAIN_TARGET, "k", value)
    assert edited.startswith('k: "') and edited.endswith('"\n')
    assert_only_changed(PLAIN_TARGET, edited, "k", value)


@pytest.mark.parametrize("value", STAYS_PLAIN, ids=repr)
def test_plain_values_that_load_back_stay_plain(value: str) -> None:
    edited = values.set_key(PLAIN_TARGET, "k", value)
    assert edited == f"k: {value}\n"
    assert_only_changed(PLAIN_TARGET, edited, "k", value)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("1.2.3", "[1.2.3, b]"),
        ("a:b", '["a:b", b]'),
        ("a,b", '["a,b", b]'),
        ("a]b", '["a]b", b]'),
        ("a}b", '["a}b", b]'),
        ("a?b", '["a?b", b]'),
    ],
    ids=["plain", "colon", "comma", "bracket", "brace", "question-mark"],
)
def test_flow_context_quotes_flow_indicators(value: str, written: str) -> None:
    original = "k: [a, b]\n"
    edited = values.set_key(original, "k.0", value)
    assert edited == f"k: {written}\n"
    assert_only_changed(original, edited, "k.0", value)


@pytest.mark.parametrize(
    ("original", "value", "written"),
    [
        ("k: 'a'\n", "it's", "k: 'it''s'\n"),
        ("k: 'a'\n", " spaced ", "k: ' spaced '\n"),
        ("k: 'a'\n", "true", "k: 'true'\n"),
        ("k: 'a'\n", "two\nlines", 'k: "two\\nlines"\n'),
        ('k: "a"\n', 'say "hi"', 'k: "say \\"hi\\""\n'),
        ('k: "a"\n', "back\\slash", 'k: "back\\\\slash"\n'),
        ('k: "a"\n', "tab\tnew\nline", 'k: "tab\\tnew\\nline"\n'),
        ('k: "a"\n', "bell\x07esc\x1b", 'k: "bell\\aesc\\e"\n'),
        ('k: "a"\n', "nbsp\xa0", 'k: "nbsp\\xA0"\n'),
        ('k: "a"\n', "ls\u2028", 'k: "ls\\u2028"\n'),
        ('k: "a"\n', "", 'k: ""\n'),
        ("k: old\n", 'say "hi"', 'k: say "hi"\n'),
    ],
    ids=[
        "single-doubles-quote",
        "single-keeps-spaces",
        "single-true",
        "single-falls-back-to-double-for-newline",
        "double-escapes-quote",
        "double-escapes-backslash",
        "double-escapes-controls",
        "double-named-escapes",
        "double-hex-escape",
        "double-unicode-escape",
        "double-empty",
        "plain-inner-quotes",
    ],
)
def test_quote_styles(original: str, value: str, written: str) -> None:
    edited = values.set_key(original, "k", value)
    assert edited == written
    assert_only_changed(original, edited, "k", value)


def test_value_already_there_as_a_non_string_is_rewritten_as_a_string() -> None:
    # `tag: 1.10` holds the float 1.1; asking for the string "1.10" must change the file
    assert values.set_key("tag: 1.10\n", "tag", "1.10") == 'tag: "1.10"\n'
    assert values.set_key("tag: 1.10 # x\n", "tag", "1.10") == 'tag: "1.10" # x\n'


def test_a_check_failure_raises_instead_of_returning_damage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def damaging(target: object, value: str, *, flow: bool) -> list[str]:
        return [f"{value}\nextra: key"]

    monkeypatch.setattr(values, "_renderings", damaging)
    with pytest.raises(errors.TargetError, match="could not write the new value"):
        values.set_key("a: 1\nb: 2\n", "a", "x")


def test_libyaml_disagreement_falls_back_to_ruamel() -> None:
    # NEL (U+0085) is a line break in YAML 1.1 (libyaml) and an ordinary character in 1.2
    original = "a: x\x85y\nb: 1.0\n"
    assert values.set_key(original, "b", "2.0") == 'a: x\x85y\nb: "2.0"\n'


# --- errors --------------------------------------------------------------------------------

LOCATION_ERRORS = [
    (
        "missing-key",
        "image:\n  tag: 1\n",
        "image.tga",
        ["image.tga", "no key 'tga'", "nearest existing key is image.tag"],
    ),
    (
        "missing-top-key",
        "image:\n  tag: 1\n",
        "imag.tag",
        ["no key 'imag'", "nearest existing key is image.tag"],
    ),
    ("nothing-similar", "image:\n  tag: 1\n", "zzz", ["no similar key", "e.g. image.tag"]),
    (
        "holds-mapping",
        "image:\n  repo: x\n  tag: 1\n",
        "image",
        ["holds a mapping (line 1)", "e.g. image.repo"],
    ),
    (
        "holds-list",
        "ports:\n- 1\n- 2\n",
        "ports",
        ["holds a list of 2 item(s)", "add an item index", "ports.0"],
    ),
    ("holds-flow-list", "ports: [1, 2]\n", "ports", ["holds a list of 2 item(s)"]),
    (
        "index-out-of-range",
        "ports: [1, 2]\n",
        "ports.2",
        ["list (line 1)", "item index (0 to 1)", "nearest existing key is ports.1"],
    ),
    ("name-on-a-list", "ports: [1, 2]\n", "ports.http", ["'http' must be an item index"]),
    (
        "through-a-value",
        "image:\n  tag: 1\n",
        "image.tag.x",
        ["image.tag holds a single value (line 2)", "no 'x'"],
    ),
    (
        "alias-target",
        "a: &x 1\nb: *x\n",
        "b",
        ["b is an alias (*x, line 2)", "Edit the anchored value instead: a"],
    ),
    (
        "through-alias",
        "base: &b\n  tag: 1\nprod: *b\n",
        "prod.tag",
        ["prod is an alias (*b, line 3)", "instead: base.tag"],
    ),
    (
        "merge-key",
        "base: &b\n  tag: 1\nprod:\n  <<: *b\n  x: 2\n",
        "prod.tag",
        ["merge key (<<)", "(base)", "add 'tag' under prod"],
    ),
    (
        "duplicate-key",
        "image:\n  tag: 1\n  tag: 2\n",
        "image.tag",
        ["more than once", "lines 2 and 3", "remove the duplicate"],
    ),
    (
        "duplicate-parent",
        "image:\n  tag: 1\nimage:\n  tag: 2\n",
        "image.tag",
        ["'image' more than once", "lines 1 and 3"],
    ),
    (
        "multi-document-ambiguous",
        "image:\n  tag: 1\n---\nimage:\n  tag: 2\n",
        "image.tag",
        ["documents 1 and 2", "exactly one value"],
    ),
    ("multi-document-missing", "a: 1\n---\nb: 2\n", "c", ["key c not found"]),
    ("not-yaml", "image: [\n  tag: 1\n", "image.tag", ["not valid YAML", "line 3"]),
    ("not-yaml-tab-indent", "image:\n\ttag: 1\n", "image.tag", ["not valid YAML"]),
    ("not-yaml-control-character", "a: 1\nb: \x01\n", "a", ["not valid YAML", "U+0001", "line 2"]),
    ("empty-file", "", "a", ["no YAML document"]),
    ("comment-only-file", "# nothing here\n", "a", ["no YAML document"]),
    ("scalar-document", "just text\n", "a", ["the document root holds a single value (line 1)"]),
]


@pytest.mark.parametrize(
    ("text", "key", "parts"), [c[1:] for c in LOCATION_ERRORS], ids=[c[0] for c in LOCATION_ERRORS]
)
@pytest.mark.parametrize("operation", ["set_key", "get_key"])
def test_location_errors(operation: str, text: str, key: str, parts: list[str]) -> None:
    with pytest.raises(errors.TargetError) as caught:
        if operation == "set_key":
            values.set_key(text, key, "9.9.9")
        else:
            values.get_key(text, key)
    message = str(caught.value)
    assert f"key {key}" in message or "not valid YAML" in message or "no YAML document" in message
    for part in parts:
        assert part in message


EDIT_ERRORS = [
    (
        "anchored-target",
        "a: &x 1\nb: *x\n",
        "a",
        ["its value is anchored (&x)", "alias *x at line 2"],
    ),
    (
        "anchored-ancestor",
        "base: &b\n  tag: 1\nprod: *b\n",
        "base.tag",
        ["a collection holding it (line 1)", "&b"],
    ),
    (
        "merged-ancestor",
        "base: &b\n  tag: 1\nprod:\n  <<: *b\n",
        "base.tag",
        ["anchored (&b)", "line 4"],
    ),
    ("block-literal", "note: |\n  x\n", "note", ["block scalar (|, line 1)", "note: value"]),
    ("block-folded", "note: >-\n  x\n", "note", ["block scalar (>, line 1)"]),
    ("int-tag", "a: !!int 1\n", "a", ["has the tag tag:yaml.org,2002:int", "make it !!str"]),
    ("custom-tag", "a: !vault x\n", "a", ["has the tag !vault"]),
    ("flow-key-without-colon", "a: {b, c: 1}\n", "a.b", ["has no ':'"]),
]


@pytest.mark.parametrize(
    ("text", "key", "parts"), [c[1:] for c in EDIT_ERRORS], ids=[c[0] for c in EDIT_ERRORS]
)
def test_edit_errors(text: str, key: str, parts: list[str]) -> None:
    with pytest.raises(errors.TargetError) as caught:
        values.set_key(text, key, "9.9.9")
    for part in [f"key {key}", *parts]:
        assert part in str(caught.value)


def test_a_redefined_anchor_is_not_shared() -> None:
    # *x after the second &x refers to the second one; the first may be edited
    text = "a: &x 1\nb: &x 2\nc: *x\n"
    assert values.set_key(text, "a", "v") == "a: &x v\nb: &x 2\nc: *x\n"
    with pytest.raises(errors.TargetError, match="anchored"):
        values.set_key(text, "b", "v")


def test_errors_never_quote_values_from_the_file() -> None:
    text = "db:\n  password: hunter2-secret\n  host: db\n"
    for key in ("db.passwrd", "db", "db.password.x", "db.host.y"):
        with pytest.raises(errors.TargetError) as caught:
            values.set_key(text, key, "x")
        assert "hunter2" not in str(caught.value)


def test_target_error_is_permanent_and_a_value_error() -> None:
    with pytest.raises(errors.TargetError) as caught:
        values.set_key("a: 1\n", "b", "x")
    assert caught.value.permanent and isinstance(caught.value, ValueError)


# --- set_regex -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern", "value", "expected"),
    [
        ('b: "x"\n', 'b: "(?P<value>.*)"', "y", 'b: "y"\n'),
        ("a: 1.0\nb: 1.0\n", r"^b: (.*)$", "2.0", "a: 1.0\nb: 2.0\n"),
        ("a: v1\nb: v1\n", r"(v1)", "v2", "a: v2\nb: v2\n"),
        ("a: v1\n", r"(?P<other>a): (?P<value>\S+)", "v2", "a: v2\n"),
        ("a: v1\n", r"a: (\S+)", "\\1\\g<0>", "a: \\1\\g<0>\n"),
        ("a: v1 # c\n", r"a: (\S+)", "v1", "a: v1 # c\n"),
        ("a: x\nb: y\n", r"^(?:a: (x)|b: y)$", "z", "a: z\nb: y\n"),
        ("a: v1\r\nb: v1\r\n", r"^\w: (.*)$", "v2", "a: v2\r\nb: v2\r\n"),
    ],
    ids=[
        "named-value-group",
        "multiline-anchors",
        "every-match",
        "value-group-wins-over-first",
        "value-is-literal",
        "unchanged",
        "skips-matches-where-the-group-is-absent",
        "crlf-lines",
    ],
)
def test_set_regex(text: str, pattern: str, value: str, expected: str) -> None:
    assert values.set_regex(text, pattern, value) == expected


REGEX_ERRORS = [
    ("does-not-compile", "a: 1\n", "a: (", ["is not a valid regular expression"]),
    ("js-group-accepted-but-unclosed", "a: 1\n", "a: (?<value>.*", ["missing )"]),
    ("no-group", "a: 1\n", "a: 1", ["has no group", "(?P<value>...)"]),
    ("no-match", "a: 1\n", "b: (.*)", ["matches nothing"]),
    ("group-never-takes-part", "a: x\n", "a: (y)?x", ["took part in none", "group 1"]),
    ("breaks-structure", "a: 1\nb: 2\n", "a: (.*)", ["change the structure"], "[x]"),
    ("line-break-in-value", "a: 1\nb: 2\n", "a: (.*)", ["line break"], "x\nc: 3"),
    ("lookbehind", "a: 1\n", "(?<=a: )(.*)", ["uses lookaround"]),
    ("breaks-yaml", "a: '1'\n", "a: '(.*)'", ["invalid YAML"], "it's"),
    ("renames-an-anchor", "a: &x 1\nb: *x\n", "&(x)", ["change the structure"], "y"),
    ("not-yaml", "a: [\n", "a: (.*)", ["not valid YAML"]),
]


@pytest.mark.parametrize("case", REGEX_ERRORS, ids=[c[0] for c in REGEX_ERRORS])
def test_regex_errors(case: tuple[Any, ...]) -> None:
    _, text, pattern, parts, *value = case
    with pytest.raises(errors.TargetError) as caught:
        values.set_regex(text, pattern, value[0] if value else "9.9.9")
    for part in parts:
        assert part in str(caught.value)


def test_regex_may_rewrite_only_part_of_a_scalar() -> None:
    text = "image: ghcr.io/org/app:1.0.0@sha256:aaa\nother: 1\n"
    edited = values.set_regex(text, r"app:([^@]+)@", "1.1.0")
    assert edited == "image: ghcr.io/org/app:1.1.0@sha256:aaa\nother: 1\n"


# --- tabs, limits and many keys at once ------------------------------------------------------

TABS = [
    ("tab-after-colon", "tag:\t1.0.0\n", "tag", "tag:\t2.0.0\n"),
    ("space-then-tab", "tag: \t1.0.0 # c\n", "tag", "tag: \t2.0.0 # c\n"),
    ("nested", "image:\n  tag:\t1.0.0\t# c\t\n", "image.tag", "image:\n  tag:\t2.0.0\t# c\t\n"),
    ("tab-inside-a-value-kept", "a: 'x\ty'\ntag:\t1.0.0\n", "tag", "a: 'x\ty'\ntag:\t2.0.0\n"),
    ("quoted", 'tag:\t"1.0.0"\n', "tag", 'tag:\t"2.0.0"\n'),
]


@pytest.mark.parametrize(
    ("text", "key", "expected"), [t[1:] for t in TABS], ids=[t[0] for t in TABS]
)
def test_a_tab_before_a_value_is_edited_as_helm_reads_it(
    text: str, key: str, expected: str
) -> None:
    import helm_python  # Helm's own Go YAML reading (helm-python-sdk)

    assert values.set_key(text, key, "2.0.0") == expected
    before, after = helm_python.values_from_yaml(text), helm_python.values_from_yaml(expected)
    path = key.split(".")
    holder = before
    for segment in path[:-1]:
        holder = holder[segment]
    holder[path[-1]] = "2.0.0"
    assert after == before


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000 + "]" * 10_000 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(250)),
        "".join("  " * i + f"k{i}:\n" for i in range(250)) + "  " * 250 + "tag: 1\n",
    ],
    ids=["flow-10000", "block-250", "block-250-plain"],  # the last one is read by `plain`
)
def test_a_file_nested_beyond_the_limit_is_a_target_error_at_once(text: str) -> None:
    with pytest.raises(errors.TargetError, match="nests deeper than 200 levels"):
        values.set_key(text, "image.tag", "1")
    with pytest.raises(errors.TargetError, match="nests deeper than 200 levels"):
        values.get_key(text, "image.tag")


def test_set_keys_plans_many_keys_on_one_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "".join(f"app{i}:\n  tag: 1.0.{i}   # c{i}\n" for i in range(300))
    calls: list[str] = []
    real = values.yamlscan.parse.__wrapped__

    def counting(source: str) -> Any:
        calls.append(source)
        return real(source)

    monkeypatch.setattr(values.yamlscan, "parse", counting)
    edits = [(f"app{i}.tag", f"2.0.{i}") for i in range(300)]
    edited, written = values.edit_keys(text, edits)
    assert edited == "".join(f"app{i}:\n  tag: 2.0.{i}   # c{i}\n" for i in range(300))
    assert written == tuple(range(300))
    assert len(calls) == 1  # one ruamel parse; the check re-reads the result with libyaml


def test_set_keys_names_the_failing_edit_and_writes_nothing() -> None:
    with pytest.raises(values.EditFailed) as caught:
        values.set_keys("a: 1\nb: |\n  x\n", [("a", "2"), ("b", "3")])
    assert caught.value.index == 1 and "block scalar" in str(caught.value)


def test_set_keys_refuses_two_keys_for_one_value() -> None:
    with pytest.raises(values.EditFailed, match="names the same value"):
        values.set_keys("a: 1\n", [("a", "2"), ("a", "3")])


def test_set_keys_skips_values_already_there() -> None:
    assert values.edit_keys("a: x\nb: 1\n", [("a", "x"), ("b", "2")]) == (
        "a: x\nb: '2'\n".replace("'", '"'),
        (1,),
    )


def test_a_values_file_beyond_the_size_limit_is_a_target_error_at_once() -> None:
    text = "a: 1\n" + "# " + "x" * values.yamlscan.MAX_CHARS + "\n"
    with pytest.raises(errors.TargetError, match="more than the 1048576 edited"):
        values.set_key(text, "a", "2")
