"""Flux-style setter markers: golden edits in Flux's own testdata shapes, parsing, folder walks.

Golden cases live in tests/golden/markers/<case>/ (`original.yaml`, `expected.yaml` by hand,
`case.json`: the promotion the markers must name, how many it has, why, and the Flux testdata file
whose shape it follows). Every case runs through `targets.apply` on a one-file markers target.
Folder targets run on the git adapter's real tree reader over a dulwich object store, with
symlinks (in and out of the folder), a submodule and files that are not YAML.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from dulwich.object_store import MemoryObjectStore

from imagepromoter import errors, holds, markers, spec, targets
from imagepromoter.git import trees
from tests.test_git_trees import build
from tests.test_values import loaded

GOLDEN = Path(__file__).parent / "golden" / "markers"
DIGEST = "sha256:8f2e1c0a9b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"
VARIABLES = {
    "image": "ghcr.io/myorg/myapp",
    "tag": "1.4.0",
    "digest": DIGEST,
    "name": "myapp",
    "namespace": "gitops",
    "version": "1.4.0",
}


def _target(path: str, value: str = spec.MARKERS_DEFAULT_VALUE) -> spec.Target:
    return spec.Target(path=path, key=None, regex=None, value=value, markers=True)


def _cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def test_there_are_golden_cases() -> None:
    assert len(_cases()) >= 5


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    meta = json.loads((case / "case.json").read_text("utf-8"))
    original = (case / "original.yaml").read_bytes().decode("utf-8")
    expected = (case / "expected.yaml").read_bytes()
    namespace, name = meta["promotion"].split(":")
    assert len(markers.find(original, namespace, name)) == meta["markers"]
    target = _target("deploy/file.yaml")
    edits = targets.apply([target], lambda path: original.encode(), VARIABLES)
    edited = edits.edited[target.path]
    assert edited.encode("utf-8") == expected, meta["why"]
    assert len(loaded(edited, "1.1")) == len(loaded(original, "1.1"))
    again = targets.apply([target], lambda path: edited.encode(), VARIABLES)
    assert again.changes() == ()


FIND = [
    ('a: x # {"$imagepolicy": "gitops:myapp"}\n', [("a", "")]),
    ('a: x # {"$imagepolicy": "gitops:myapp:tag"}\n', [("a", "tag")]),
    ('a: x # {"$imagepolicy": "gitops:myapp:name"}\n', [("a", "name")]),
    ('a: x # {"$imagepolicy": "gitops:myapp:digest"}\n', [("a", "digest")]),
    ('a: x # {"$imagepolicy": "gitops:myapp:other"}\n', []),
    ('a: x # {"$imagepolicy": "gitops:myapp-prod"}\n', []),
    ('a: x # {"$imagepolicy": "gitopsx:myapp"}\n', []),
    ('a: x#{"$imagepolicy":"gitops:myapp"}\n', []),  # no space before #: no comment
    ('a: x    # {"$imagepolicy": "gitops:myapp"}\n', [("a", "")]),
    ('a: x # {"$imagepolicy": "gitops:myapp"\n', []),  # not JSON
    ('a: x # {"$imagepolicy": 5}\n', []),
    ('a: # {"$imagepolicy": "gitops:myapp"}\n', [("a", "")]),  # empty value
    ('# {"$imagepolicy": "gitops:myapp"}\na: x\n', []),  # a comment line of its own
    ('a: [x, y] # {"$imagepolicy": "gitops:myapp"}\n', []),  # on a list, not a scalar
    ('a:\n- x # {"$imagepolicy": "gitops:myapp:tag"}\n', [("a.0", "tag")]),
    ('a: "x y" # {"$imagepolicy": "gitops:myapp"}\n', [("a", "")]),
    ("a: x\n", []),
]


@pytest.mark.parametrize(("text", "found"), FIND, ids=[t.split("\n")[0] for t, _ in FIND])
def test_find(text: str, found: list[tuple[str, str]]) -> None:
    assert [(m.key, m.kind) for m in markers.find(text, "gitops", "myapp")] == found


def test_a_marker_on_a_block_scalar_is_not_read_as_its_line_comment() -> None:
    text = 'a: | # {"$imagepolicy": "gitops:myapp"}\n  x\n'
    assert markers.find(text, "gitops", "myapp") == []


def test_marked_file_that_is_not_yaml_is_an_error() -> None:
    text = 'a: [x # {"$imagepolicy": "gitops:myapp"}\n'
    with pytest.raises(errors.TargetError, match="markers but is not valid YAML"):
        targets.apply([_target("a.yaml")], lambda path: text.encode(), VARIABLES)


def test_a_file_without_our_marker_is_an_error_naming_the_comment_to_add() -> None:
    text = 'a: x # {"$imagepolicy": "gitops:other"}\n'
    with pytest.raises(errors.TargetError) as caught:
        targets.apply([_target("a.yaml")], lambda path: text.encode(), VARIABLES)
    assert '# {"$imagepolicy": "gitops:myapp"}' in str(caught.value)


def test_value_template_sets_the_whole_reference_form() -> None:
    text = 'image: ghcr.io/myorg/myapp:1.3.0 # {"$imagepolicy": "gitops:myapp"}\n'
    target = _target("a.yaml", "${image}:${tag}@${digest}")
    edits = targets.apply([target], lambda path: text.encode(), VARIABLES)
    assert edits.edited["a.yaml"] == text.replace("1.3.0", f"1.4.0@{DIGEST}")
    assert edits.previous == ["ghcr.io/myorg/myapp:1.3.0"]


def test_marked_anchor_copied_by_an_alias_is_refused_naming_the_line() -> None:
    text = 'a: &t x # {"$imagepolicy": "gitops:myapp:tag"}\nb: *t\n'
    with pytest.raises(errors.TargetError, match=r"the marker at line 1: .*copied by the alias"):
        targets.apply([_target("a.yaml")], lambda path: text.encode(), VARIABLES)


# --- folders, on the git adapter's tree reader ---------------------------------------------

MARKED = b'image: ghcr.io/myorg/myapp:1.3.0 # {"$imagepolicy": "gitops:myapp"}\n'
OTHER = b'image: ghcr.io/myorg/other:1.0.0 # {"$imagepolicy": "gitops:other"}\n'
FILE, LINK, SUBMODULE = 0o100644, 0o120000, 0o160000


def _reader(entries: dict[str, tuple[int, bytes]]) -> trees.TreeReader:
    store = MemoryObjectStore()
    return trees.reader(store, build(store, entries), max_file_bytes=1024)


def test_folder_walk_sets_every_marked_file_and_follows_no_link() -> None:
    read = _reader(
        {
            "apps/dev/deploy.yaml": (FILE, MARKED),
            "apps/dev/cron.yml": (FILE, MARKED + b"---\n" + OTHER),
            "apps/dev/other.yaml": (FILE, OTHER),
            "apps/dev/notes.txt": (FILE, MARKED),  # not .yaml: not read
            "apps/dev/Kustomization": (FILE, MARKED),  # kustomize's other name: read, as Flux
            "apps/dev/broken.yaml": (FILE, b"a: [\n"),  # no marker: never parsed
            "apps/link.yaml": (LINK, b"../outside.yaml"),  # a link out of the folder
            "apps/loop": (LINK, b"."),
            "apps/vendor": (SUBMODULE, b""),
            "outside.yaml": (FILE, MARKED),
        }
    )
    edits = targets.apply([_target("apps")], read, VARIABLES)
    assert sorted(c.path for c in edits.changes()) == [
        "apps/dev/Kustomization",
        "apps/dev/cron.yml",
        "apps/dev/deploy.yaml",
    ]
    for change in edits.changes():
        assert change.after == change.before.replace(b"myapp:1.3.0", b"myapp:1.4.0")


def test_whole_repository_folder() -> None:
    read = _reader({"a.yaml": (FILE, MARKED), "b/c.yaml": (FILE, MARKED)})
    edits = targets.apply([_target(".")], read, VARIABLES)
    assert sorted(c.path for c in edits.changes()) == ["a.yaml", "b/c.yaml"]


def test_folder_without_markers_says_what_was_looked_at() -> None:
    read = _reader({"apps/a.yaml": (FILE, OTHER), "apps/l.yaml": (LINK, b"x")})
    with pytest.raises(errors.TargetError) as caught:
        targets.apply([_target("apps")], read, VARIABLES)
    message = str(caught.value)
    assert (
        "looked in 1 .yaml/.yml file(s) under it, 1 symlink(s) or submodule(s) not followed"
        in message
    )


def test_folder_target_naming_a_symlink_is_refused() -> None:
    read = _reader({"apps": (LINK, b"../etc"), "x.yaml": (FILE, MARKED)})
    with pytest.raises(errors.TargetError, match="apps is a symlink"):
        targets.apply([_target("apps")], read, VARIABLES)


def test_folder_entry_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "MAX_FOLDER_ENTRIES", 3)
    read = _reader({f"apps/{n}.yaml": (FILE, MARKED) for n in range(4)})
    with pytest.raises(errors.TargetError, match="more than 3 files and folders"):
        targets.apply([_target("apps")], read, VARIABLES)


def test_folder_file_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "MAX_FOLDER_FILES", 2)
    read = _reader({f"apps/{n}.yaml": (FILE, MARKED) for n in range(3)})
    with pytest.raises(errors.TargetError, match="3 YAML files, over the limit of 2"):
        targets.apply([_target("apps")], read, VARIABLES)


def test_folder_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "MAX_FOLDER_BYTES", len(MARKED) * 2 - 1)
    read = _reader({f"apps/{n}.yaml": (FILE, MARKED) for n in range(2)})
    with pytest.raises(errors.TargetError, match="add up to more than"):
        targets.apply([_target("apps")], read, VARIABLES)


def test_folder_file_over_the_readers_size_limit_names_it() -> None:
    read = _reader({"apps/big.yaml": (FILE, MARKED + b"#" * 2000)})
    with pytest.raises(errors.TargetError, match=r"apps/big.yaml is .* bytes, over the 1024-byte"):
        targets.apply([_target("apps")], read, VARIABLES)


def test_folder_error_in_one_file_names_the_file() -> None:
    read = _reader({"apps/a.yaml": (FILE, b'a: &t x # {"$imagepolicy": "gitops:myapp"}\nb: *t\n')})
    with pytest.raises(errors.TargetError, match=r"\(apps\): apps/a.yaml: the marker at line 1"):
        targets.apply([_target("apps")], read, VARIABLES)


# --- spec ----------------------------------------------------------------------------------


def _spec(target: dict[str, object]) -> dict[str, object]:
    return {
        "image": "ghcr.io/myorg/myapp",
        "tagRegex": ".*",
        "git": {"url": "https://example.com/g.git"},
        "targets": [target],
    }


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("apps/", "apps"),
        ("./apps//dev/", "apps/dev"),
        (".", "."),
        ("./", "."),
        ("a.yaml", "a.yaml"),
    ],
    ids=["folder", "normalised", "root", "root-slash", "file"],
)
def test_spec_markers_paths(path: str, stored: str) -> None:
    target = spec.parse(_spec({"path": path, "markers": True})).targets[0]
    assert (target.path, target.markers, target.kind, target.value) == (
        stored,
        True,
        "markers",
        "${image}:${tag}",
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"path": "apps/", "markers": True, "key": "a"}, "(both are set: key and markers)"),
        ({"path": "apps/", "markers": False}, "needs exactly one of key, regex, kustomizeImage"),
        ({"path": "apps/", "markers": "yes"}, "spec.targets[0].markers: must be true or false"),
        ({"path": "../x", "markers": True}, "must stay inside the repository"),
        ({"path": ".git/", "markers": True}, "points into .git/"),
        ({"path": "apps/", "key": "a"}, "names a directory"),
    ],
    ids=["with-key", "false-alone", "not-bool", "escapes", "git-dir", "folder-for-a-key"],
)
def test_spec_rejects_bad_markers_targets(target: dict[str, object], message: str) -> None:
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(_spec(target))
    assert message in str(caught.value)


def test_holds_see_each_marker_as_a_key_target_of_its_file() -> None:
    text = 'image: ghcr.io/myorg/myapp:1.2.9 # {"$imagepolicy": "gitops:myapp"}\n'
    ident = holds.ident("a.yaml", "image", None)
    guard = holds.Guard(hold=True, recorded={ident: "ghcr.io/myorg/myapp:1.3.0"})
    with pytest.raises(holds.Held, match=re.escape("a.yaml holds ghcr.io/myorg/myapp:1.2.9")):
        targets.apply([_target("a.yaml")], lambda path: text.encode(), VARIABLES, guard=guard)
    guard = holds.Guard(hold=True, recorded={ident: "ghcr.io/myorg/myapp:1.2.9"})
    targets.apply([_target("a.yaml")], lambda path: text.encode(), VARIABLES, guard=guard)
    assert guard.written == {ident: "ghcr.io/myorg/myapp:1.4.0"}

