"""Reading targets from, and writing changes into, trees in an object store (no server needed)."""

from __future__ import annotations

import pytest
from dulwich import objects
from dulwich.object_store import MemoryObjectStore

from imagepromoter import changes, errors
from imagepromoter.git import layer, trees


def build(store: MemoryObjectStore, entries: dict[str, tuple[int, bytes]]) -> objects.ObjectID:
    """A tree from {path: (mode, content)}; returns the root tree id."""
    root: dict[str, object] = {}
    for path, entry in entries.items():
        node = root
        *dirs, name = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})  # type: ignore[assignment]
        node[name] = entry

    def write(node: dict[str, object]) -> objects.ObjectID:
        tree = objects.Tree()
        for name, value in node.items():
            if isinstance(value, dict):
                tree.add(name.encode(), 0o040000, write(value))
            else:
                mode, content = value  # type: ignore[misc]
                blob = objects.Blob.from_string(content)
                store.add_object(blob)
                tree.add(name.encode(), mode, blob.id)
        store.add_object(tree)
        return tree.id

    return write(root)


ENTRIES = {
    "values.yaml": (0o100644, b"tag: 1\n"),
    "run.sh": (0o100755, b"#!/bin/sh\n"),
    "env/dev/values.yaml": (0o100644, b"tag: 1\n"),
    "env/prod/values.yaml": (0o100644, b"tag: 2\n"),
    "link.yaml": (0o120000, b"values.yaml"),
    "sub": (0o160000, b""),
}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("link.yaml", "is a symlink"),
        ("sub", "is a submodule"),
        ("env", "is a directory"),
        ("env/qa/values.yaml", "does not exist \\(qa is not in env; it has: dev, prod\\)"),
        ("values.yaml/x", "values.yaml is not a directory"),
        ("a/../../b", "resolves outside"),
        ("./.git/HEAD", "inside .git/"),
        ("", "not a relative path"),
        (".", "names the repository root"),
        ("big.yaml", "over the 8-byte limit"),
    ],
    ids=[
        "symlink",
        "submodule",
        "directory",
        "missing",
        "file-as-dir",
        "escape",
        "dot-git",
        "empty",
        "root",
        "too-large",
    ],
)
def test_reader_refuses(path: str, message: str) -> None:
    store = MemoryObjectStore()
    entries = dict(ENTRIES, **{"big.yaml": (0o100644, b"123456789")})
    root = build(store, entries)
    with pytest.raises(errors.TargetError, match=message):
        trees.reader(store, root, max_file_bytes=8)(path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("values.yaml", b"tag: 1\n"), ("./env//prod/values.yaml", b"tag: 2\n")],
    ids=["top", "normalised"],
)
def test_reader_reads_bytes(path: str, expected: bytes) -> None:
    store = MemoryObjectStore()
    root = build(store, ENTRIES)
    assert trees.reader(store, root, max_file_bytes=100)(path) == expected


def test_write_changes_touches_only_changed_paths_and_keeps_modes() -> None:
    store = MemoryObjectStore()
    root = build(store, ENTRIES)
    new_root, created = trees.write_changes(
        store,
        root,
        [
            changes.FileChange("env/dev/values.yaml", b"tag: 1\n", b"tag: 9\n"),
            changes.FileChange("run.sh", b"#!/bin/sh\n", b"#!/bin/sh\necho\n"),
        ],
    )
    old, new = store[root], store[new_root]
    assert isinstance(old, objects.Tree) and isinstance(new, objects.Tree)
    read = trees.reader(store, new_root, max_file_bytes=100)
    assert read("env/dev/values.yaml") == b"tag: 9\n"
    assert read("run.sh") == b"#!/bin/sh\necho\n"
    assert new[b"run.sh"][0] == 0o100755
    assert new[b"link.yaml"] == old[b"link.yaml"] and new[b"sub"] == old[b"sub"]
    old_env, new_env = store[old[b"env"][1]], store[new[b"env"][1]]
    assert isinstance(old_env, objects.Tree) and isinstance(new_env, objects.Tree)
    assert new_env[b"prod"] == old_env[b"prod"]  # untouched subtree shared by sha
    assert new_env[b"dev"] != old_env[b"dev"]
    # The new objects: two blobs, and the trees root, env, env/dev; nothing shared.
    kinds = sorted(type(o).__name__ for o in created)
    assert kinds == ["Blob", "Blob", "Tree", "Tree", "Tree"]
    assert new_root in {o.id for o in created} and new_env[b"prod"][1] not in {
        o.id for o in created
    }


def test_a_chain_of_spliced_trees_is_byte_for_byte_what_dulwich_would_serialise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """write_changes with Offsets (splicing shas into the bytes) gives the same tree ids as
    without, over a chain of edits: changed files, two folders at once, a new file, an
    executable."""
    store = MemoryObjectStore()
    entries = {
        f"apps/app-{i:02d}/values.yaml": (0o100644, f"tag: {i}\n".encode()) for i in range(30)
    }
    entries["apps/run.sh"] = (0o100755, b"#!/bin/sh\n")
    entries["top.yaml"] = (0o100644, b"tag: 0\n")
    start = build(store, entries)
    offsets = trees.Offsets()
    plain, spliced = start, start
    rebuilt: list[int] = []
    rebuild = trees._rebuilt

    def counting(
        original: objects.Tree,
        entries: dict[bytes, tuple[int, objects.ObjectID]],
        known: trees.Offsets | None,
    ) -> objects.Tree:
        rebuilt.append(known is not None)
        return rebuild(original, entries, known)

    monkeypatch.setattr(trees, "_rebuilt", counting)
    steps = [
        [("apps/app-03/values.yaml", b"tag: 9\n")],
        [("apps/app-03/values.yaml", b"tag: 10\n"), ("top.yaml", b"tag: 1\n")],
        [("apps/run.sh", b"#!/bin/sh\necho\n")],
        [("apps/app-29/values.yaml", b"tag: new\n"), ("apps/app-00/values.yaml", b"x\n")],
        [("apps/app-00/extra.yaml", b"a: 1\n")],  # a new file: that folder is rebuilt
        [("apps/app-00/extra.yaml", b"a: 2\n")],
    ]
    view = layer.Layer(store)  # as a chain reads: the trees it wrote, not parsed copies
    for step in steps:
        file_changes = [changes.FileChange(path, b"", after) for path, after in step]
        plain, _ = trees.write_changes(store, plain, file_changes)
        spliced, created = trees.write_changes(view, spliced, file_changes, offsets=offsets)
        assert spliced == plain
        for obj in created:
            parsed = objects.ShaFile.from_raw_string(obj.type_num, obj.as_raw_string())
            assert obj.id == parsed.id and obj.as_raw_string() == store[obj.id].as_raw_string()
            if isinstance(obj, objects.Tree):  # a spliced tree's entries are its bytes' entries
                assert isinstance(parsed, objects.Tree) and obj.items() == parsed.items()
    view.flush()
    read = trees.reader(store, spliced, max_file_bytes=100)
    assert read("apps/app-29/values.yaml") == b"tag: new\n"
    assert read("apps/app-00/extra.yaml") == b"a: 2\n"
    root = store[spliced]
    assert isinstance(root, objects.Tree)
    apps = store[root[b"apps"][1]]
    assert isinstance(apps, objects.Tree) and apps[b"run.sh"][0] == 0o100755
    assert offsets.get(spliced) is not None and offsets.get(start) is None
    # with offsets: root, apps and app-03 once; app-29 and app-00 (first seen); app-00 (new file)
    assert rebuilt.count(True) == 6
