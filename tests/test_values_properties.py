"""values properties: for generated YAML and values, set_key changes the target and nothing else.

Documents are generated as data and written by real dumpers in many layouts (block and flow,
2- and 4-space indentation, every scalar quoted one way, narrow widths that fold long values,
CRLF, a BOM, no final newline). For a random scalar leaf and a random new string:

- YAML 1.1 (libyaml) and YAML 1.2 (ruamel.yaml) both load the result as the original data with
  only that leaf changed, to exactly the new string;
- the bytes that changed lie inside the old scalar's span as ruamel.yaml's composer reports it
  (an independent parser from the one values uses to find spans), and no line break is written;
- get_key reads the value back, and setting it again changes nothing.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, SequenceNode

from imagepromoter import errors, values
from tests.test_values import assert_only_changed, changed_region, loaded

TRICKY = [
    "1.10", "1.1", "10", "0123", "0x1F", "0o17", "1e3", "1_000", "12:30", "true", "yes", "no",
    "on", "off", "y", "n", "null", "~", "", " ", "a: b", "a #b", "#", "-", "- x", "? x", "[", "]",
    "{", "}", ",", "&a", "*a", "!a", "|", ">", "'", '"', "%", "@", "`", "<<", "=", ".inf", ".nan",
    "2024-01-02", "it's", 'say "hi"', "back\\slash", "tab\tx", "two\nlines", "\r", "é", "東京",
    "1.2.3-dev", "sha256:abc", "v1.10", "x" * 120,
]  # fmt: skip

strings = st.one_of(st.text(max_size=16), st.sampled_from(TRICKY))
keys = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=8).filter(
    lambda k: k != "<<" and not values._NOT_A_STRING.match(k)  # `0E0` is a float key in YAML 1.2
)
scalars = st.one_of(strings, st.integers(-1000, 10**12), st.booleans(), st.none())
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
documents = st.dictionaries(keys, trees, min_size=1, max_size=5)


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


@st.composite
def layouts(draw: st.DrawFn, data: dict[str, Any]) -> tuple[str, str]:
    """`data` written by a real dumper in a drawn layout, and the YAML version it wrote."""
    version = draw(st.sampled_from(["1.1", "1.2"]))
    if version == "1.1":
        text = yaml.dump(
            data,
            Dumper=_NoAliases,
            allow_unicode=draw(st.booleans()),
            default_flow_style=draw(st.sampled_from([False, True, None])),
            default_style=draw(st.sampled_from([None, None, '"', "'"])),
            indent=draw(st.sampled_from([2, 4])),
            width=draw(st.sampled_from([20, 80, 4096])),
            sort_keys=draw(st.booleans()),
        )
    else:
        dumper = YAML(typ="safe", pure=True)
        dumper.default_flow_style = draw(st.sampled_from([False, None]))
        mapping = draw(st.sampled_from([2, 4]))
        offset = draw(st.sampled_from([0, 2]))
        dumper.indent(mapping=mapping, sequence=mapping + offset, offset=offset)
        dumper.representer.ignore_aliases = lambda data: True
        out = io.StringIO()
        dumper.dump(data, out)
        text = out.getvalue()
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    if draw(st.booleans()):
        text = "\ufeff" + text
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    return text, version


def _faithful(text: str, version: str, document: dict[str, Any]) -> bool:
    """True when the dumper wrote `document` correctly and both YAML versions read it as such.

    ruamel.yaml's dumper has bugs at the edges (it writes the string `?0` plain in a flow
    collection, where it reads back as a mapping), and a plain scalar can resolve differently in
    the two versions (PyYAML writes the string key `0E0` plain; YAML 1.2 reads it as a float):
    such texts say nothing about values, whose oracle loads the result in both versions.
    """
    try:
        other = "1.1" if version == "1.2" else "1.2"
        return loaded(text, version) == [document] and loaded(text, other) == [document]
    except Exception:
        return False


def _leaves(data: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(data, list):
        return [leaf for i, v in enumerate(data) for leaf in _leaves(v, (*path, str(i)))]
    return [path]  # an empty collection is no leaf: it yields nothing above


def _composed_span(text: str, segments: tuple[str, ...]) -> tuple[int, int]:
    """The character span ruamel.yaml's composer gives the scalar at `segments`."""
    node = YAML(typ="safe", pure=True).compose(text)
    for segment in segments:
        if isinstance(node, SequenceNode):
            node = node.value[int(segment)]
        else:
            assert isinstance(node, MappingNode)
            node = next(v for k, v in node.value if k.value == segment)
    return node.start_mark.index, node.end_mark.index


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_set_key_changes_exactly_the_target(data: st.DataObject) -> None:
    document = data.draw(documents, label="document")
    text, version = data.draw(layouts(document), label="text")
    assume(_faithful(text, version, document))
    leaves = [leaf for leaf in _leaves(document) if leaf]
    assume(leaves)
    segments = data.draw(st.sampled_from(leaves), label="leaf")
    key = values.join_key(segments)
    value = data.draw(strings, label="value")
    span_start, span_end = _composed_span(text, segments)
    if text.startswith("!!", span_start) and not text.startswith("!!str", span_start):
        # a quoting dumper tags non-strings (`!!int "5"`); values refuses to retype them
        with pytest.raises(errors.TargetError, match="has the tag"):
            values.set_key(text, key, value)
        return

    edited = values.set_key(text, key, value)

    assert_only_changed(text, edited, key, value)
    if edited != text:
        start, end, written = changed_region(text, edited)
        assert span_start <= start and end <= span_end, (start, end, span_start, span_end)
        assert "\n" not in written and "\r" not in written
    assert values.get_key(edited, key) == (value or None)
    assert values.set_key(edited, key, value) == edited


TARGETS = ["k: old\n", "k: 'old'\n", 'k: "old"\n', "k:\n", "k: [old]\n", "k: {x: old}\n"]
TARGET_KEYS = {"k: [old]\n": "k.0", "k: {x: old}\n": "k.x"}


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(st.sampled_from(TARGETS), st.one_of(st.text(), st.sampled_from(TRICKY)))
def test_any_string_loads_back_as_itself(original: str, value: str) -> None:
    key = TARGET_KEYS.get(original, "k")
    edited = values.set_key(original, key, value)
    assert_only_changed(original, edited, key, value)
    assert edited.count("\n") == 1  # still one line: nothing was folded or broken


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, strings, min_size=1, max_size=5), st.data())
def test_set_regex_with_a_literal_value_group_matches_set_key(
    document: dict[str, str], data: st.DataObject
) -> None:
    """A regex over a double-quoted value and set_key on it write the same bytes."""
    text = yaml.dump(document, Dumper=_NoAliases, default_style='"', width=4096, allow_unicode=True)
    top = data.draw(st.sampled_from(sorted(document)))
    value = data.draw(st.text(st.characters(min_codepoint=97, max_codepoint=122), max_size=8))
    quoted_key = yaml.dump(
        top, Dumper=_NoAliases, default_style='"', width=4096, allow_unicode=True
    )
    quoted_key = quoted_key.removesuffix("\n...\n").strip()
    pattern = rf'^{_escape(quoted_key)}: "(?P<value>[^"\\]*(?:\\.[^"\\]*)*)"$'
    by_regex = values.set_regex(text, pattern, value)
    assert by_regex == values.set_key(text, values.join_key((top,)), value)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


YAMLISH = st.text(st.sampled_from(list("ab01:-#&*!|>'\"{}[],? \t\n\r.~%@`\\")), max_size=40)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(st.one_of(YAMLISH, st.text(max_size=40)), st.sampled_from(["a", "a.b", "a.0", "0"]))
def test_any_text_gives_a_result_or_a_target_error(text: str, key: str) -> None:
    """Whatever the file holds, values answers or raises TargetError; it never crashes."""
    for call in (
        lambda: values.get_key(text, key),
        lambda: values.set_key(text, key, "1.10"),
        lambda: values.set_regex(text, r"a: (.*)", "x"),
    ):
        try:
            result = call()
        except errors.TargetError:
            continue
        if isinstance(result, str) and result != text:
            loaded(result, "1.2")  # an edit result is still YAML (this raises if not)
