"""values fidelity over real Helm values files: every scalar leaf, edited one at a time.

The corpus is third-party data read in place, never copied into the project:
`../shared/fixtures/values-corpus/*.yaml` beside the clone, or the folder named by
IMAGEPROMOTER_VALUES_CORPUS. When it is absent the test skips with the reason; under CI=true it
fails instead, because CI must run it.

For each file, ruamel.yaml's composer (independent of the token spans values uses) lists every
scalar leaf and where it sits. Each case sets one leaf to a new string, rotating through values
that stress quoting (`1.10`, `yes`, `release: 2`, `build #7`, '', ...), and checks:

- the changed bytes lie inside the leaf's span (for an empty value: a pure insertion right after
  its `:` or `-`), so comments, blank lines, order and quoting elsewhere are untouched;
- YAML 1.1 (libyaml) loads the result as the original data with only that leaf changed, and so
  does YAML 1.2 (ruamel.yaml) on every YAML12_EVERY-th case (it is pure Python and slow);
- get_key reads the new value back (on the same cases as YAML 1.2: it re-parses in pure Python);
- leaves values must refuse are refused with the right error: anything reached through or shared
  by an alias, block scalars (`|`, `>`), values with a non-string tag;
- every leaf under a list of maps, addressed with list selectors (`[name=x]`) instead of indexes,
  gets exactly the edit (or refusal) its index key gets, and a selector matching several items
  is refused as ambiguous.

By default each file contributes at most SAMPLE_PER_FILE leaves, spread evenly and always the same
ones; IMAGEPROMOTER_VALUES_CORPUS_FULL=1 runs every leaf. The totals and the throughput are
printed at the end of the module (shown by pytest -s or -rA, e.g.
`pytest tests/test_values_corpus.py -q -s`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from imagepromoter import _selectors as selectors
from imagepromoter import errors, values
from tests.test_values import changed_region, loaded

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "values-corpus"
CORPUS = Path(os.environ.get("IMAGEPROMOTER_VALUES_CORPUS") or DEFAULT_CORPUS)
FULL = os.environ.get("IMAGEPROMOTER_VALUES_CORPUS_FULL", "").lower() in {"1", "true", "yes"}
SAMPLE_PER_FILE = 60
YAML12_EVERY = 10
NEW_VALUES = [
    "9.9.9", "1.10", "yes", "release: 2", "build #7", "", "it's", "0x1F", "v2.0.0-rc.1+meta",
    "東京", 'say "hi"', "12:30",
]  # fmt: skip
MERGE = "tag:yaml.org,2002:merge"
STRING_TAGS = {"tag:yaml.org,2002:str", "!"}


def _files() -> list[Any]:
    files = sorted(CORPUS.glob("*.yaml")) if CORPUS.is_dir() else []
    if not files:
        return [pytest.param(None, id="corpus-missing")]
    return [pytest.param(path, id=path.name.removesuffix("_values.yaml")) for path in files]


@dataclass
class _Tally:
    files: int = 0
    cases: int = 0
    edited: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    selectors: int = 0
    ambiguous: int = 0


@pytest.fixture(scope="module")
def tally() -> Iterator[_Tally]:
    totals = _Tally()
    yield totals
    if totals.cases:
        mode = "every leaf" if FULL else f"up to {SAMPLE_PER_FILE} leaves per file"
        print(
            f"\nvalues corpus: {totals.files} files, {totals.cases} (file, key) cases ({mode}): "
            f"{totals.edited} edited, refused {totals.refused}; "
            f"{totals.cases / totals.seconds:.0f} set_key calls/second "
            f"({totals.seconds:.2f}s inside set_key); selectors: {totals.selectors} leaves "
            f"addressed by [field=value], {totals.ambiguous} ambiguous selectors refused"
        )


@dataclass(frozen=True)
class _Leaf:
    """One scalar leaf as ruamel.yaml's composer sees it, and what values must do with it."""

    segments: tuple[str, ...]
    node: ScalarNode
    key_node: ScalarNode | None  # the mapping key in front of it, if any
    refusal: str  # the error values must raise ('' when the edit must succeed)


@pytest.mark.slow
@pytest.mark.parametrize("path", _files())
def test_every_leaf_edits_only_its_bytes(path: Path | None, tally: _Tally) -> None:
    if path is None:
        reason = f"values corpus not found at {CORPUS} (set IMAGEPROMOTER_VALUES_CORPUS)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    text = path.read_bytes().decode("utf-8")
    leaves = list(_leaves(text))
    chosen = leaves if FULL else _spread(leaves, SAMPLE_PER_FILE)
    original_11 = loaded(text, "1.1")
    original_12 = loaded(text, "1.2")
    tally.files += 1
    for leaf in chosen:
        key = values.join_key(leaf.segments)
        value = NEW_VALUES[tally.cases % len(NEW_VALUES)]
        check_12 = tally.cases % YAML12_EVERY == 0
        tally.cases += 1
        started = time.perf_counter()
        try:
            edited = values.set_key(text, key, value)
        except errors.TargetError as exc:
            tally.seconds += time.perf_counter() - started
            assert leaf.refusal, f"{key}: unexpected refusal: {exc}"
            assert leaf.refusal in str(exc), f"{key}: {exc}"
            tally.refused[leaf.refusal] = tally.refused.get(leaf.refusal, 0) + 1
            continue
        tally.seconds += time.perf_counter() - started
        assert not leaf.refusal, f"{key}: should have been refused ({leaf.refusal})"
        tally.edited += 1
        _assert_inside_span(text, edited, leaf, key)
        _assert_one_change(original_11, loaded(edited, "1.1"), leaf.segments, value, key)
        if check_12:
            _assert_one_change(original_12, loaded(edited, "1.2"), leaf.segments, value, key)
            assert values.get_key(edited, key) == (value or None), key


def _spread(leaves: list[_Leaf], count: int) -> list[_Leaf]:
    """`count` leaves spread evenly over the file, always the same ones (or all, if fewer)."""
    if len(leaves) <= count:
        return leaves
    return [leaves[i * len(leaves) // count] for i in range(count)]


def _assert_inside_span(text: str, edited: str, leaf: _Leaf, key: str) -> None:
    """The edit replaced bytes of the leaf only (or inserted right after its indicator)."""
    if edited == text:
        return
    start, end, written = changed_region(text, edited)
    assert "\n" not in written and "\r" not in written, key
    node = leaf.node
    if node.value == "" and node.style is None:  # empty: composer marks are not its place
        assert start == end, f"{key}: an empty value must be an insertion"
        at = len(text[:start].rstrip(" "))  # `tag: # c` + `X ` reads as an insertion after `: `
        assert text[at - 1] in ":-", f"{key}: inserted at {start}, not after ':' or '-'"
        assert edited.startswith(text[:at]) and edited.endswith(text[at:]), key
        if leaf.key_node is not None:
            between = text[leaf.key_node.end_mark.index : at]
            assert "\n" not in between, f"{key}: inserted on another line than its key"
        return
    span = (node.start_mark.index, node.end_mark.index)
    assert span[0] <= start and end <= span[1], f"{key}: changed {start}:{end}, span {span}"


def _assert_one_change(
    before: list[Any], after: list[Any], segments: tuple[str, ...], value: str, key: str
) -> None:
    """`after` is `before` with the one leaf at `segments` set to `value` (no deep copies)."""
    holder_after = _holder(after, segments)
    holder_before = _holder(before, segments)
    last = _index(holder_after, segments[-1])
    assert holder_after[last] == value, key
    holder_after[last] = holder_before[_index(holder_before, segments[-1])]
    assert after == before, f"{key}: something besides the target changed"


def _holder(documents: list[Any], segments: tuple[str, ...]) -> Any:
    holders = []
    for node in documents:
        for segment in segments[:-1]:
            if isinstance(node, dict) and segment in node:
                node = node[segment]
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                node = None
                break
        if node is not None:
            holders.append(node)
    assert len(holders) == 1
    return holders[0]


def _index(holder: Any, segment: str) -> Any:
    return int(segment) if isinstance(holder, list) else segment


# --- the independent oracle: ruamel.yaml's composer --------------------------------------


def _leaves(text: str) -> Iterator[_Leaf]:
    """Every scalar leaf with a key path, with the refusal values must give, in file order."""
    documents = list(YAML(typ="safe", pure=True).compose_all(text))
    references: dict[int, int] = {}
    for document in documents:
        _count(document, references)
    seen: dict[tuple[str, ...], int] = {}
    found = [
        leaf for document in documents for leaf in _walk(document, (), None, (), text, references)
    ]
    for leaf in found:
        seen[leaf.segments] = seen.get(leaf.segments, 0) + 1
    for leaf in found:
        if seen[leaf.segments] > 1 and not leaf.refusal:  # same path in two documents
            yield _Leaf(leaf.segments, leaf.node, leaf.key_node, "documents")
        else:
            yield leaf


def _count(node: Node, references: dict[int, int]) -> None:
    """How many times each node is referenced (more than once: an alias copies it)."""
    references[id(node)] = references.get(id(node), 0) + 1
    if references[id(node)] > 1:
        return
    if isinstance(node, MappingNode):
        for k, v in node.value:
            _count(k, references)
            _count(v, references)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _count(item, references)


def _walk(
    node: Node,
    path: tuple[str, ...],
    key_node: ScalarNode | None,
    above: tuple[Node, ...],
    text: str,
    references: dict[int, int],
) -> Iterator[_Leaf]:
    if any(n is node for n in above):
        return  # a recursive alias
    chain = (*above, node)
    if isinstance(node, MappingNode):
        keys = [k.value for k, _ in node.value if isinstance(k, ScalarNode)]
        for k, v in node.value:
            if not isinstance(k, ScalarNode) or k.tag == MERGE:
                continue
            leaves = _walk(v, (*path, k.value), k, chain, text, references)
            if keys.count(k.value) > 1:
                leaves = (_refused(leaf, "more than once") for leaf in leaves)
            yield from leaves
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, str(index)), None, chain, text, references)
    elif isinstance(node, ScalarNode) and path:
        refusal = ""
        if any(references[id(n)] > 1 for n in chain):  # reached through, or copied by, an alias
            refusal = "alias"
        elif node.style in {"|", ">"}:
            refusal = "block scalar"
        elif text.startswith("!", node.start_mark.index) and node.tag not in STRING_TAGS:
            refusal = "has the tag"
        yield _Leaf(path, node, key_node, refusal)


def _refused(leaf: _Leaf, refusal: str) -> _Leaf:
    return _Leaf(leaf.segments, leaf.node, leaf.key_node, leaf.refusal or refusal)


def test_yaml_versions_of_the_oracle_agree_on_a_small_file() -> None:
    """The oracle's loaders read the same simple file the same way (a check of the harness)."""
    text = "a:\n  b: [1, x]\n  c: ~\n"
    assert loaded(text, "1.1") == loaded(text, "1.2") == [{"a": {"b": [1, "x"], "c": None}}]
    assert yaml.safe_load(text) == loaded(text, "1.1")[0]


# --- list selectors: [field=value] picks the same leaf as the index ----------------------------


@pytest.mark.parametrize("path", _files())
def test_selectors_pick_the_leaf_the_index_names(path: Path | None, tally: _Tally) -> None:
    """Every leaf under a list of maps, addressed by `[field=value]` instead of its index.

    For each list index on the leaf's path, the selector uses a scalar field (`name` first)
    whose value is unique among that list's items, as the composer reads them. The edit must be
    byte for byte the edit the index key makes (checked above against both loaders), or be
    refused the same way. A non-unique field must be refused as ambiguous.
    """
    if path is None:
        reason = f"values corpus not found at {CORPUS} (set IMAGEPROMOTER_VALUES_CORPUS)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    text = path.read_bytes().decode("utf-8")
    documents = list(YAML(typ="safe", pure=True).compose_all(text))
    under_lists = [leaf for leaf in _leaves(text) if any(s.isdigit() for s in leaf.segments)]
    picked = 0
    for leaf in under_lists if FULL else _spread(under_lists, SAMPLE_PER_FILE):
        keys = _selector_keys(documents, leaf.segments)
        if keys is None:
            continue
        selected, ambiguous = keys
        index_key = values.join_key(leaf.segments)
        value = NEW_VALUES[picked % len(NEW_VALUES)]
        picked += 1
        tally.selectors += 1
        assert _outcome(text, selected, value) == _outcome(text, index_key, value), selected
        if ambiguous is not None:
            with pytest.raises(errors.TargetError, match="is ambiguous"):
                values.set_key(text, ambiguous, value)
            tally.ambiguous += 1


def _outcome(text: str, key: str, value: str) -> str:
    """The edited text, or the kind of refusal (messages differ: they quote the key)."""
    try:
        return values.set_key(text, key, value)
    except errors.TargetError as exc:
        for refusal in ("alias", "block scalar", "has the tag", "more than once", "documents"):
            if refusal in str(exc):
                return f"refused: {refusal}"
        raise


def _selector_keys(
    documents: list[Node], segments: tuple[str, ...]
) -> tuple[str, str | None] | None:
    """(selector key, a key whose selector matches several items or None), or None if none."""
    holders = [d for d in documents if _composed(d, segments[:-1]) is not None]
    if len(holders) != 1:
        return None
    node: Node = holders[0]
    steps: list[Any] = []
    ambiguous_steps: list[Any] | None = None
    for segment in segments:
        if isinstance(node, SequenceNode):
            item = node.value[int(segment)]
            unique, shared = _fields(node, item)
            if unique is None:
                return None
            if ambiguous_steps is None and shared is not None:
                ambiguous_steps = [*steps, selectors.Select((shared[0],), shared[1])]
            steps.append(selectors.Select((unique[0],), unique[1]))
            if ambiguous_steps is not None and len(ambiguous_steps) < len(steps):
                ambiguous_steps.append(steps[-1])
            node = item
        else:
            steps.append(segment)
            if ambiguous_steps is not None:
                ambiguous_steps.append(segment)
            node = _composed(node, (segment,))
    if not any(isinstance(s, selectors.Select) for s in steps):
        return None
    ambiguous = values.join_key(ambiguous_steps) if ambiguous_steps is not None else None
    return values.join_key(steps), ambiguous


def _fields(
    sequence: SequenceNode, item: Node
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(a field and value unique to `item` in the list, one `item` shares with another item)."""
    if not isinstance(item, MappingNode):
        return None, None
    scalars = [
        (k.value, v.value)
        for k, v in item.value
        if isinstance(k, ScalarNode) and isinstance(v, ScalarNode) and k.tag != MERGE
    ]
    names = [k for k, _ in scalars]
    counts: dict[tuple[str, str], int] = {}
    for other in sequence.value:
        if isinstance(other, MappingNode):
            for k, v in other.value:
                if isinstance(k, ScalarNode) and isinstance(v, ScalarNode):
                    counts[(k.value, v.value)] = counts.get((k.value, v.value), 0) + 1
    usable = [(k, v) for k, v in scalars if names.count(k) == 1]
    usable.sort(key=lambda kv: kv[0] != "name")
    unique = next((kv for kv in usable if counts[kv] == 1), None)
    shared = next((kv for kv in usable if counts[kv] > 1), None)
    return unique, shared


def _composed(node: Node | None, segments: tuple[str, ...]) -> Node | None:
    """The composed node at `segments` under `node`, or None."""
    for segment in segments:
        if isinstance(node, MappingNode):
            found = [v for k, v in node.value if isinstance(k, ScalarNode) and k.value == segment]
            node = found[0] if len(found) == 1 else None
        elif (
            isinstance(node, SequenceNode) and segment.isdigit() and int(segment) < len(node.value)
        ):
            node = node.value[int(segment)]
        else:
            return None
    return node
