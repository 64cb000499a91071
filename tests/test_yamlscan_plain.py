"""_yamlscan.plain (libyaml's reading of plain block YAML) gives exactly ruamel.yaml's Stream.

`parse` takes the shortcut whenever `plain` answers, so every field of every node (spans, lines,
event indexes) must equal what the ruamel.yaml path builds: checked on generated documents (all
of which `plain` must take, or the comparison proves nothing), on the values corpus when it is
present, and on the texts `plain` must leave to ruamel.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagepromoter import _yamlscan as yamlscan
from imagepromoter import values

CORPUS = Path(
    os.environ.get("IMAGEPROMOTER_VALUES_CORPUS")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "values-corpus"
)

TRICKY = ["1.10", "yes", "~", "null", "-1", "a:b", "http://h:80/p", "x#y", "a b c", "0o17", "<<"]
scalars = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9._/=-]{0,10}", fullmatch=True), st.sampled_from(TRICKY)
)
keys = st.one_of(st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True), st.just("a key"))
Tree = str | list["Tree"] | dict[str, "Tree"]
trees: st.SearchStrategy[Tree] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4),
        st.dictionaries(keys, children, min_size=1, max_size=4),
    ),
    max_leaves=12,
)


def render(node: Tree, indent: int, draw: st.DrawFn) -> list[str]:
    """Block-style lines of `node`, with comments and indentless sequences drawn at random."""
    pad = " " * indent
    lines: list[str] = []
    if draw(st.booleans()) and draw(st.booleans()):
        lines.append(f"{pad}# a comment: with - indicators")
    if isinstance(node, dict):
        for key, child in node.items():
            if isinstance(child, str):
                tail = " # note" if draw(st.booleans()) else ""
                lines.append(f"{pad}{key}: {child}{tail}")
            else:
                lines.append(f"{pad}{key}:")
                inner = indent if isinstance(child, list) and draw(st.booleans()) else indent + 2
                lines += render(child, inner, draw)
    elif isinstance(node, list):
        for child in node:
            if isinstance(child, str):
                lines.append(f"{pad}- {child}")
            else:
                lines.append(f"{pad}-")
                lines += render(child, indent + 2, draw)
    else:
        lines.append(f"{pad}{node}")
    return lines


@st.composite
def documents(draw: st.DrawFn) -> str:
    root = draw(st.dictionaries(keys, trees, min_size=1, max_size=5))
    lines = render(root, 0, draw)
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "")
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


def ruamel(text: str) -> yamlscan.Stream:
    """What `parse` returns without the shortcut (tabs included)."""
    with mock.patch.object(yamlscan, "plain", return_value=None):
        return yamlscan.parse.__wrapped__(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_plain_block_yaml_reads_as_ruamel_reads_it(text: str) -> None:
    shortcut = yamlscan.plain(text)
    assert shortcut is not None, text
    assert shortcut == ruamel(text)


@pytest.mark.parametrize(
    "text",
    [
        "image:\n  tag: '1.0'\n",
        'image:\n  tag: "1.0"\n',
        "base: &b\n  tag: 1\nother: *b\n",
        "tag: !!str 1\n",
        "list: [a, b]\n",
        "map: {a: 1}\n",
        "tag:\ta\n",
        "note: |\n  text\n",
        "note: >\n  text\n",
        "tag:\n",
        "- \n",
        "long: a\n  b\n",
        "name: café\n",
        "---\na: 1\n---\nb: 2\n",
        "%YAML 1.1\n---\na: 1\n",
        "? complex\n: key\n",
        "a: 1\r\n",
        "# it's a comment with a quote\na: 1\n",
    ],
    ids=[
        "single-quoted", "double-quoted", "anchor-alias", "tag", "flow-sequence", "flow-mapping",
        "tab", "literal", "folded", "empty-value", "empty-item", "multi-line-plain", "non-ascii",
        "documents", "directive", "complex-key", "crlf", "quote-in-comment",
    ],
)  # fmt: skip
def test_anything_else_is_left_to_ruamel(text: str) -> None:
    assert yamlscan.plain(text) is None
    assert yamlscan.parse(text) == ruamel(text)


def test_an_invalid_plain_text_is_left_to_ruamel_for_its_message() -> None:
    text = "a: 1\n b: 2\n"
    assert yamlscan.plain(text) is None
    with pytest.raises(yamlscan.YamlSyntaxError):
        yamlscan.parse(text)


def test_edits_through_the_shortcut_are_the_golden_edits() -> None:
    text = "# app 1\nimage:\n  repository: scale/img\n  tag: 0.0.0 # pinned\nreplicas: 1\n"
    assert yamlscan.plain(text) is not None
    assert values.get_key(text, "image.tag") == "0.0.0"
    yamlscan.parse.cache_clear()
    edited, _ = values.edit_keys(text, [("image.tag", "1.10")])
    yamlscan.parse.cache_clear()
    with mock.patch.object(yamlscan, "plain", return_value=None):
        assert values.edit_keys(text, [("image.tag", "1.10")]) == (edited, (0,))
    yamlscan.parse.cache_clear()
    assert edited == text.replace("0.0.0", '"1.10"')


def test_the_corpus_reads_the_same_through_the_shortcut() -> None:
    if not CORPUS.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"values corpus missing at {CORPUS}")
        pytest.skip(f"values corpus not present at {CORPUS}")
    taken = 0
    for path in sorted(CORPUS.glob("*.yaml")):
        text = path.read_text("utf-8")
        # each file whole, and each of its top-level blocks alone (more of them are plain)
        blocks = ["\n".join(b.splitlines()) + "\n" for b in text.split("\n\n") if b.strip()]
        for candidate in [text, *blocks]:
            shortcut = yamlscan.plain(candidate)
            if shortcut is None:
                continue
            taken += 1
            assert shortcut == ruamel(candidate), path.name
    assert taken > 0
