"""List selectors in key paths: the grammar, golden edits, and every error.

Golden cases live in tests/golden/selectors/<case>/ (`original.yaml`, `expected.yaml` written by
hand, `case.json` with the key, the value and why the case exists). Each edit is checked three
ways: byte for byte against `expected.yaml`; against the same edit made with the positional key
(`index_key`), which the values tests already check independently, so the selector must pick
exactly that item; and by loading both YAML versions, which must see only that value changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagepromoter import _selectors as selectors
from imagepromoter import errors, spec, values
from tests.test_values import changed_region, loaded

GOLDEN = Path(__file__).parent / "golden" / "selectors"
Select = selectors.Select

# --- the grammar --------------------------------------------------------------------------

PARSED = [
    ("containers[name=app].image", ("containers", Select(("name",), "app"), "image")),
    ('containers[name="my app"].image', ("containers", Select(("name",), "my app"), "image")),
    ("a[name='x']", ("a", Select(("name",), "x"))),
    ("a[name=v1.2=3]", ("a", Select(("name",), "v1.2=3"))),
    ("a[metadata.name=web]", ("a", Select(("metadata", "name"), "web"))),
    ("[kind=Deployment].spec", (Select(("kind",), "Deployment"), "spec")),
    ("a[k=1][j=2].b", ("a", Select(("k",), "1"), Select(("j",), "2"), "b")),
    ("a.[k=1]", ("a", Select(("k",), "1"))),
    ('a[k=""]', ("a", Select(("k",), ""))),
    (r'a[k="q\"uote\\"]', ("a", Select(("k",), 'q"uote\\'))),
    (r"a[k=x\]y]", ("a", Select(("k",), "x]y"))),
    (r"a\[0\].b", ("a[0]", "b")),
    ("image.tag", ("image", "tag")),
    (r"a\.b.c", ("a.b", "c")),
]


@pytest.mark.parametrize(("key", "steps"), PARSED, ids=[k for k, _ in PARSED])
def test_parse(key: str, steps: tuple[Any, ...]) -> None:
    assert selectors.parse(key) == steps
    assert values.split_key(key) == steps
    assert selectors.parse(selectors.render(steps)) == steps  # render is parse's inverse


RENDERED = [
    (("containers", Select(("name",), "app"), "image"), "containers[name=app].image"),
    (("c", Select(("name",), "my app")), "c[name=my app]"),
    (("c", Select(("name",), " padded")), 'c[name=" padded"]'),
    (("c", Select(("name",), "x]y")), 'c[name="x]y"]'),
    (("c", Select(("name",), "")), 'c[name=""]'),
    ((Select(("metadata", "name"), "w"), "spec"), "[metadata.name=w].spec"),
    (("a[0]", "b.c"), r"a\[0\].b\.c"),
]


@pytest.mark.parametrize(("steps", "text"), RENDERED, ids=[t for _, t in RENDERED])
def test_render(steps: tuple[Any, ...], text: str) -> None:
    assert selectors.render(steps) == text
    assert values.join_key(steps) == text


MALFORMED = [
    ("a[name=app", "not closed"),
    ("a[name]", "has no '='"),
    ("a[=x]", "needs a field name"),
    ("a[name=]", "has no value"),
    ('a[name="x]', "not closed"),
    ('a[name="x"y]', "not closed"),
    ("a[name=x]b", "must be followed by '.'"),
    ("a]b", "closes no selector"),
    ("a[na[me=x]", "'[' inside"),
    (r"a[n\x=1]", "backslash must be followed"),
    (r"a\x", "backslash must be followed"),
    ("a..b", "empty segment"),
    ("", "empty segment"),
    ("a.", "empty segment"),
]


@pytest.mark.parametrize(("key", "problem"), MALFORMED, ids=[k or "empty" for k, _ in MALFORMED])
def test_malformed(key: str, problem: str) -> None:
    with pytest.raises(errors.TargetError) as caught:
        selectors.parse(key)
    assert problem in str(caught.value)


@pytest.mark.parametrize(("key", "problem"), MALFORMED[:-2], ids=[k for k, _ in MALFORMED[:-2]])
def test_spec_validates_selectors_with_the_same_grammar(key: str, problem: str) -> None:
    doc = {
        "image": "ghcr.io/a/b",
        "tagRegex": ".*",
        "git": {"url": "https://example.com/g.git"},
        "targets": [{"path": "v.yaml", "key": key}],
    }
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(doc)
    assert "spec.targets[0].key" in str(caught.value)
    assert problem in str(caught.value)


def test_spec_accepts_a_selector_key() -> None:
    doc = {
        "image": "ghcr.io/a/b",
        "tagRegex": ".*",
        "git": {"url": "https://example.com/g.git"},
        "targets": [{"path": "d.yaml", "key": 'spec.containers[name="my app"].image'}],
    }
    assert spec.parse(doc).targets[0].key == 'spec.containers[name="my app"].image'


# --- golden edits --------------------------------------------------------------------------


def _cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def test_there_are_golden_cases() -> None:
    assert len(_cases()) >= 8


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    meta = json.loads((case / "case.json").read_text("utf-8"))
    original = (case / "original.yaml").read_bytes().decode("utf-8")
    expected = (case / "expected.yaml").read_bytes()
    edited = values.set_key(original, meta["key"], meta["value"])
    assert edited.encode("utf-8") == expected, meta["why"]
    if meta["index_key"] is not None:
        assert edited == values.set_key(original, meta["index_key"], meta["value"])
    start, end, written = changed_region(original, edited)
    assert "\n" not in written and "\n" not in original[start:end]
    for version in ("1.1", "1.2"):
        before, after = loaded(original, version), loaded(edited, version)
        assert len(before) == len(after)
        changed = [n for n, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert len(changed) == 1, f"YAML {version}: documents {changed} changed"
        if "document" in meta:
            assert changed == [meta["document"] - 1]
    assert values.get_key(edited, meta["key"]) == meta["value"]
    assert values.set_key(edited, meta["key"], meta["value"]) == edited


# --- what is found instead -----------------------------------------------------------------

DEPLOYMENT = """\
spec:
  containers:
  - name: web
    image: a:1
  - name: web
    image: b:1
  - name: app
    image: c:1
  - image: d:1
  - plain-scalar
"""

ERRORS = [
    ("spec.containers[name=api].image", "has no item matching [name=api]"),
    ("spec.containers[name=api].image", "'web', 'web', 'app' (2 without it)"),
    ("spec.containers[name=web].image", "is ambiguous"),
    ("spec.containers[name=web].image", "items 0 and 1, lines 3 and 5"),
    ("spec.containers[name=web][image=b:1].tag", "key spec.containers[name=web][image=b:1].tag "),
    ("spec[name=web].image", "holds a mapping (line 2), not a list"),
    ("spec.containers[name=app]", "holds a mapping"),
    ("spec.containers[name=app].image.x", "holds a single value"),
    ("[kind=Deployment].spec", "the document matches [kind=Deployment]"),
]


@pytest.mark.parametrize(("key", "message"), ERRORS, ids=[f"{k}|{m}" for k, m in ERRORS])
def test_errors_name_what_was_found(key: str, message: str) -> None:
    with pytest.raises(errors.TargetError) as caught:
        values.set_key(DEPLOYMENT, key, "x")
    assert message in str(caught.value)


def test_two_selectors_choose_together() -> None:
    edited = values.set_key(DEPLOYMENT, "spec.containers[name=web][image=b:1].image", "b:2")
    assert edited == DEPLOYMENT.replace("b:1", "b:2")


def test_selector_on_a_root_list() -> None:
    text = "- name: a\n  v: 1\n- name: b\n  v: 1\n"
    assert values.set_key(text, "[name=b].v", "2") == '- name: a\n  v: 1\n- name: b\n  v: "2"\n'


def test_selector_through_an_alias_is_refused() -> None:
    text = "base: &c\n- name: a\n  v: x\ncopy: *c\n"
    with pytest.raises(errors.TargetError, match="alias"):
        values.set_key(text, "copy[name=a].v", "y")
    with pytest.raises(errors.TargetError, match="copied by the alias"):
        values.set_key(text, "base[name=a].v", "y")


def test_no_document_matches_lists_what_the_documents_have() -> None:
    text = "kind: Service\n---\nkind: ConfigMap\n---\nmetadata: {}\n"
    with pytest.raises(errors.TargetError) as caught:
        values.set_key(text, "[kind=Deployment].spec", "x")
    assert "none of the 3 documents matches [kind=Deployment]" in str(caught.value)
    assert "'Service', 'ConfigMap' (1 without it)" in str(caught.value)


def test_selector_in_several_documents_is_the_multi_document_error() -> None:
    text = "c:\n- name: a\n  v: 1\n---\nc:\n- name: a\n  v: 1\n"
    with pytest.raises(errors.TargetError, match="documents 1 and 2"):
        values.set_key(text, "c[name=a].v", "2")


def test_loaded_data_sanity() -> None:
    """The oracle's loader reads the golden originals (a check of the harness)."""
    for case in _cases():
        assert loaded((case / "original.yaml").read_text("utf-8"), "1.1")


# --- render and parse are inverses, for any names and values -------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_select = st.builds(
    Select, st.lists(_text, min_size=1, max_size=3).map(tuple), st.text(max_size=12)
)
_steps = st.lists(st.one_of(_text, _select), min_size=1, max_size=6)


@given(_steps)
@settings(max_examples=200, deadline=None)
def test_render_then_parse_is_the_identity(steps: list[Any]) -> None:
    assert selectors.parse(selectors.render(steps)) == tuple(steps)
