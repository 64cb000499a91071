# ruff: noqa: E501  (the error table reads best one case per line)
"""kustomizeImage targets: golden edits of kustomizations, and every error naming what exists.

Golden cases live in tests/golden/kustomize/<case>/ (`original.yaml`, `expected.yaml` by hand,
`case.json`: the image, the value template, the variables, the value the edit replaced and why).
Each is applied through `targets.apply`, the function reconcile's planner calls, so the choice
between `newTag` and `digest` is the one a promotion makes. Both YAML loaders must see only that
field of that entry changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imagepromoter import errors, holds, kustomize, spec, targets
from tests.test_values import changed_region, loaded

GOLDEN = Path(__file__).parent / "golden" / "kustomize"
BASE = {"image": "ghcr.io/myorg/myapp", "name": "myapp-dev", "namespace": "gitops"}


def _target(image: str, value: str = "${tag}") -> spec.Target:
    return spec.Target(
        path="overlays/dev/kustomization.yaml",
        key=None,
        regex=None,
        value=value,
        kustomize_image=image,
    )


def _apply(text: str, target: spec.Target, variables: dict[str, str]) -> targets.Edits:
    def read(path: str) -> bytes:
        assert path == target.path
        return text.encode("utf-8")

    return targets.apply([target], read, {**BASE, **variables})


def _cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def test_there_are_golden_cases() -> None:
    assert len(_cases()) >= 5


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    meta = json.loads((case / "case.json").read_text("utf-8"))
    original = (case / "original.yaml").read_bytes().decode("utf-8")
    expected = (case / "expected.yaml").read_bytes()
    target = _target(meta["kustomizeImage"], meta["value"])
    edits = _apply(original, target, meta["variables"])
    edited = edits.edited[target.path]
    assert edited.encode("utf-8") == expected, meta["why"]
    assert edits.previous == [meta["previous"]]
    field = kustomize.field_for(meta["value"])
    new_value = meta["variables"]["digest" if field == "digest" else "tag"]
    for version in ("1.1", "1.2"):
        before, after = loaded(original, version)[0], loaded(edited, version)[0]
        entry = next(e for e in after["images"] if e["name"] == meta["kustomizeImage"])
        old = next(e for e in before["images"] if e["name"] == meta["kustomizeImage"])
        assert entry[field] == new_value
        if field in old:
            entry[field] = old[field]
        else:  # added: one new line, nothing else
            del entry[field]
        assert after == before, f"YAML {version}: more than {field} changed"
    start, end, written = changed_region(original, edited)
    if meta["previous"]:
        assert "\n" not in written
    else:
        assert start == end and written.count("\n") == 1, "an addition is one whole line"
    again = _apply(edited, target, meta["variables"])
    assert again.changes() == ()  # already holds it: nothing to commit


def test_field_for_value_templates() -> None:
    assert kustomize.field_for("${digest}") == "digest"
    assert kustomize.field_for(" ${digest} ") == "digest"
    assert kustomize.field_for("${tag}") == "newTag"
    assert kustomize.field_for("${tag}@${digest}") == "newTag"


def test_key_for_quotes_names_that_need_it() -> None:
    assert kustomize.key_for("ghcr.io/a/b", "newTag") == "images[name=ghcr.io/a/b].newTag"
    assert kustomize.key_for("reg:5000/a]b", "digest") == 'images[name="reg:5000/a]b"].digest'


KUSTOMIZATION = """\
images:
- name: ghcr.io/myorg/other
  newName: ghcr.io/myorg/myapp
  newTag: 1.0.0
- name: redis
  newTag: "7"
- name: ghcr.io/myorg/pinned
  newTag: 1.0.0
  digest: sha256:11
- name: ghcr.io/myorg/untagged
  newName: mirror/untagged
"""

ERRORS: list[tuple[str, str, Any, str]] = [
    ("missing-entry", KUSTOMIZATION, "ghcr.io/myorg/myapp", "has no entry with name ghcr.io/myorg/myapp"),
    ("names-present", KUSTOMIZATION, "ghcr.io/myorg/myapp", "ghcr.io/myorg/other (newName ghcr.io/myorg/myapp), redis, ghcr.io/myorg/pinned"),
    ("matches-name-not-newName", KUSTOMIZATION, "ghcr.io/myorg/myapp", "must be an entry's name (not its newName)"),
    ("no-newTag-in-flow-entry", "images: [{name: x}]\n", "x", "has no newTag and is not a block mapping it can be added to"),
    ("pinned-by-digest", KUSTOMIZATION, "ghcr.io/myorg/pinned", "pinned by digest"),
    ("no-images", "resources: [a.yaml]\n", "x", "has no images: list"),
    ("images-not-a-list", "images: {name: x}\n", "x", "not one list of entries"),
    ("duplicate-entry", "images:\n- name: x\n  newTag: a\n- name: x\n  newTag: b\n", "x", "2 entries with name x (lines 2 and 4)"),
    ("not-yaml", "images: [\n", "x", "not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "image", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(name: str, text: str, image: str, message: str) -> None:
    with pytest.raises(errors.TargetError) as caught:
        _apply(text, _target(image), {"tag": "2.0.0", "digest": "sha256:22"})
    assert message in str(caught.value)
    assert str(caught.value).startswith("spec.targets[0] (overlays/dev/kustomization.yaml): ")


def test_a_missing_field_is_added_to_the_entry_only() -> None:
    edits = _apply(KUSTOMIZATION, _target("ghcr.io/myorg/untagged"), {"tag": "2.0.0"})
    assert edits.edited[_target("x").path] == KUSTOMIZATION.replace(
        "- name: ghcr.io/myorg/untagged\n", "- name: ghcr.io/myorg/untagged\n  newTag: 2.0.0\n"
    )


@pytest.mark.parametrize(
    "text",
    ["images:\n- name: >-\n    x\n", "images:\n- {name: x}\n"],
    ids=["folded-name", "flow-entry"],
)
def test_a_field_that_cannot_be_added_in_place_is_refused(text: str) -> None:
    with pytest.raises(errors.TargetError, match="add `newTag: <current>` to it"):
        _apply(text, _target("x"), {"tag": "2"})


def test_spec_parses_kustomize_targets() -> None:
    doc = {
        "image": "ghcr.io/myorg/myapp",
        "tagRegex": ".*",
        "git": {"url": "https://example.com/g.git"},
        "targets": [
            {"path": "overlays/dev/kustomization.yaml", "kustomizeImage": "ghcr.io/myorg/myapp"},
            {
                "path": "overlays/prod/kustomization.yaml",
                "kustomizeImage": "ghcr.io/myorg/myapp",
                "value": "${digest}",
            },
        ],
    }
    parsed = spec.parse(doc).targets
    assert [(t.kind, t.kustomize_image, t.value) for t in parsed] == [
        ("kustomizeImage", "ghcr.io/myorg/myapp", "${tag}"),
        ("kustomizeImage", "ghcr.io/myorg/myapp", "${digest}"),
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"path": "k.yaml", "kustomizeImage": "a", "key": "b"}, "(both are set: key and kustomizeImage)"),
        ({"path": "k.yaml", "kustomizeImage": "a@sha256:00"}, "no @digest"),
        ({"path": "k.yaml", "kustomizeImage": ""}, "must not be empty"),
        ({"path": "k.yaml", "kustomizeImage": 5}, "must be a string"),
    ],
    ids=["with-key", "digest-in-name", "empty", "number"],
)  # fmt: skip
def test_spec_rejects_bad_kustomize_targets(target: dict[str, Any], message: str) -> None:
    doc = {
        "image": "ghcr.io/a/b",
        "tagRegex": ".*",
        "git": {"url": "https://example.com/g.git"},
        "targets": [target],
    }
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(doc)
    assert message in str(caught.value)


def test_holds_see_a_kustomize_target_as_its_entry_key() -> None:
    """A tag someone else put in the entry is held; the record names the entry's selector key."""
    text = "images:\n- name: ghcr.io/myorg/myapp\n  newTag: 1.2.9\n"
    target = _target("ghcr.io/myorg/myapp")
    ident = holds.ident(target.path, "images[name=ghcr.io/myorg/myapp].newTag", None)
    guard = holds.Guard(hold=True, recorded={ident: "1.3.0"})
    with pytest.raises(holds.Held) as caught:
        targets.apply([target], lambda path: text.encode(), {**BASE, "tag": "1.4.0"}, guard=guard)
    assert (caught.value.found, caught.value.ours) == ("1.2.9", "1.3.0")
    assert holds.current_value(text, "images[name=ghcr.io/myorg/myapp].newTag", None) == "1.2.9"
    guard = holds.Guard(hold=True, recorded={ident: "1.2.9"})
    targets.apply([target], lambda path: text.encode(), {**BASE, "tag": "1.4.0"}, guard=guard)
    assert guard.written == {ident: "1.4.0"}
