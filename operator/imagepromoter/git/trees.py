"""Reading files from, and writing a changeset into, a commit's tree in the object store.

There is no working tree: a promotion reads blobs straight from the head commit's tree and builds
new blob and tree objects for the changed paths only (every untouched subtree is shared by sha).
That is what makes a promotion in a large repository cheap, and it means a checkout can never be
left half-written.

`reader` is the `changes.FileReader` handed to the Planner. It is where target paths are made
safe: a path is refused (TargetError) when it is absolute, escapes the repository (`..`), enters
`.git/` (any letter case), crosses or names a symlink or submodule, names a directory, does not
exist, or is larger than `max_file_bytes`. Refusing symlinks (rather than following them) is what
keeps a link to `../../etc` or into `.git/` from being edited. Its `walk(folder, limit=...)` lists
a folder for `markers` targets by the same rules: symlinks and submodules are reported, never
entered, `.git` is skipped, and more than `limit` entries is a TargetError.
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Iterable, Sequence
from typing import Protocol

from dulwich import objects
from dulwich.objects import ObjectID, ShaFile

from imagepromoter import changes, errors

SYMLINK_MODE = 0o120000
SUBMODULE_MODE = 0o160000
FILE_MODE = 0o100644


class Objects(Protocol):
    """What reading and writing trees needs of a store: a Dulwich object store or a git/layer."""

    def __getitem__(self, sha: ObjectID, /) -> ShaFile: ...

    def add_objects(self, objects: Sequence[tuple[ShaFile, str | None]], /) -> object: ...


def split_path(path: str) -> list[str]:
    """The components of a target path, or TargetError when it is not a safe relative path."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise errors.TargetError(f"{path!r} is not a relative path inside the repository")
    normal = posixpath.normpath(path)
    parts = normal.split("/")
    if normal.startswith("..") or ".." in parts:
        raise errors.TargetError(f"{path} resolves outside the repository; targets must stay in it")
    if any(part.lower() == ".git" for part in parts):
        raise errors.TargetError(f"{path} is inside .git/; only tracked files can be targets")
    if normal == ".":
        raise errors.TargetError(f"{path!r} names the repository root, not a file")
    return parts


def reader(store: Objects, tree_id: ObjectID, *, max_file_bytes: int) -> TreeReader:
    """A FileReader over the tree `tree_id` that enforces the target safety rules."""
    return TreeReader(store, tree_id, max_file_bytes=max_file_bytes)


class TreeReader:
    """`read(path)` -> bytes (a changes.FileReader), and `walk(folder)` for folder targets."""

    def __init__(self, store: Objects, tree_id: ObjectID, *, max_file_bytes: int) -> None:
        self._store = store
        self._tree_id = tree_id
        self._max_file_bytes = max_file_bytes

    def __call__(self, path: str) -> bytes:
        store, max_file_bytes = self._store, self._max_file_bytes
        mode, sha = _lookup(store, self._tree_id, path)
        if stat.S_ISLNK(mode) or mode == SYMLINK_MODE:
            raise errors.TargetError(
                f"{path} is a symlink; point the target at the real file instead"
            )
        if mode == SUBMODULE_MODE:
            raise errors.TargetError(f"{path} is a submodule, not a file")
        if stat.S_ISDIR(mode):
            raise errors.TargetError(f"{path} is a directory; a target must name a file")
        blob = store[sha]
        if not isinstance(blob, objects.Blob):
            raise errors.TargetError(f"{path} is not a file")
        size = blob.raw_length()
        if size > max_file_bytes:
            raise errors.TargetError(
                f"{path} is {size} bytes, over the {max_file_bytes}-byte limit for target files"
            )
        return bytes(blob.as_raw_string())

    def walk(self, folder: str, *, limit: int) -> list[changes.Entry]:
        """Every entry under `folder` (a file: itself), symlinks and submodules never entered.

        `folder` follows the path rules of `read` ('.' is the repository root). More than
        `limit` entries is a TargetError: a folder target must stay a bounded amount of work.
        """
        if posixpath.normpath(folder) == ".":
            mode, sha = stat.S_IFDIR, self._tree_id
            prefix = ""
        else:
            mode, sha = _lookup(self._store, self._tree_id, folder)
            prefix = posixpath.normpath(folder)
        if not stat.S_ISDIR(mode) or mode == SUBMODULE_MODE:
            return [changes.Entry(prefix, _kind(mode))]
        found: list[changes.Entry] = []
        pending = [(prefix, sha)]
        while pending:
            here, tree_sha = pending.pop()
            tree = self._store[tree_sha]
            assert isinstance(tree, objects.Tree)
            for item in sorted(tree.items(), key=lambda i: i.path):
                name = item.path.decode("utf-8", "replace")
                path = f"{here}/{name}" if here else name
                if len(found) >= limit:
                    raise errors.TargetError(
                        f"{folder} holds more than {limit} files and folders; point the target "
                        "at a smaller folder"
                    )
                kind = _kind(item.mode)
                if kind == "dir":
                    if name.lower() != ".git":
                        pending.append((path, item.sha))
                    continue
                found.append(changes.Entry(path, kind))
        return sorted(found, key=lambda e: e.path)


def _kind(mode: int) -> str:
    if mode == SYMLINK_MODE or stat.S_ISLNK(mode):
        return "symlink"
    if mode == SUBMODULE_MODE:
        return "submodule"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file"


def _lookup(store: Objects, tree_id: ObjectID, path: str) -> tuple[int, ObjectID]:
    parts = split_path(path)
    mode, sha = stat.S_IFDIR, tree_id
    walked: list[str] = []
    for part in parts:
        if mode == SYMLINK_MODE:
            raise errors.TargetError(
                f"{path} goes through the symlink {'/'.join(walked)}; targets may not follow links"
            )
        if not stat.S_ISDIR(mode) or mode == SUBMODULE_MODE:
            raise errors.TargetError(f"{path}: {'/'.join(walked)} is not a directory")
        tree = store[sha]
        assert isinstance(tree, objects.Tree)
        try:
            mode, sha = tree[part.encode("utf-8")]
        except KeyError:
            where = "/".join(walked) or "the repository root"
            names = ", ".join(sorted(n.decode("utf-8", "replace") for n in tree)[:10])
            raise errors.TargetError(
                f"{path} does not exist ({part} is not in {where}; it has: {names})"
            ) from None
        walked.append(part)
    return mode, sha


class Offsets:
    """Where each entry's sha sits in the bytes of trees a chain wrote, by tree id.

    A chain of commits rewrites the same trees again and again, each time changing the sha of
    an entry or two: the next tree's bytes are the previous tree's with those 20 bytes replaced.
    With the offsets, `write_changes` splices them instead of re-serialising every entry (a
    100-entry folder cost about 0.2 ms per commit that way). Learned from the bytes of a tree
    this module serialised (so canonical: sorted, canonical modes), never from a fetched one.
    """

    def __init__(self) -> None:
        self._by_tree: dict[ObjectID, dict[bytes, int]] = {}

    def get(self, tree_id: ObjectID) -> dict[bytes, int] | None:
        """name -> offset of its sha in the tree's bytes, if this chain wrote that tree."""
        return self._by_tree.get(tree_id)

    def learn(self, tree: objects.Tree) -> None:
        """Record the offsets of `tree`'s entries, walking its bytes (git's tree format)."""
        raw = tree.as_raw_string()
        found: dict[bytes, int] = {}
        position = 0
        while position < len(raw):
            space = raw.index(b" ", position)
            end = raw.index(b"\0", space)
            found[raw[space + 1 : end]] = end + 1
            position = end + 21
        self._by_tree[tree.id] = found

    def share(self, tree_id: ObjectID, found: dict[bytes, int]) -> None:
        """`tree_id` has the same entries at the same places as the tree `found` belongs to."""
        self._by_tree[tree_id] = found


def write_changes(
    store: Objects,
    tree_id: ObjectID,
    file_changes: Iterable[changes.FileChange],
    *,
    offsets: Offsets | None = None,
) -> tuple[ObjectID, list[objects.ShaFile]]:
    """Add blobs and trees for `file_changes` on top of `tree_id`.

    Returns the new root tree id and the objects created (exactly what a remote that has
    `tree_id` lacks). With `offsets` (one per chain), trees are spliced where it can.
    """
    edits: dict[tuple[str, ...], ObjectID] = {}
    new_objects: list[objects.ShaFile] = []
    for change in file_changes:
        blob = objects.Blob.from_string(change.after)
        new_objects.append(blob)
        edits[tuple(split_path(change.path))] = blob.id
    root = _rewrite(store, tree_id, edits, new_objects, offsets)
    store.add_objects([(obj, None) for obj in new_objects])
    return root, new_objects


def _rewrite(
    store: Objects,
    tree_id: ObjectID,
    edits: dict[tuple[str, ...], ObjectID],
    new_objects: list[objects.ShaFile],
    offsets: Offsets | None,
) -> ObjectID:
    """Rewrite one tree level: set files at this level, recurse into changed subtrees."""
    original = store[tree_id]
    assert isinstance(original, objects.Tree)
    here: dict[str, ObjectID] = {}
    below: dict[str, dict[tuple[str, ...], ObjectID]] = {}
    for parts, blob_id in edits.items():
        if len(parts) == 1:
            here[parts[0]] = blob_id
        else:
            below.setdefault(parts[0], {})[parts[1:]] = blob_id
    entries: dict[bytes, tuple[int, ObjectID]] = {}
    for name, blob_id in here.items():
        key = name.encode("utf-8")
        mode = original[key][0] if key in original else FILE_MODE
        entries[key] = (mode if stat.S_ISREG(mode) else FILE_MODE, blob_id)
    for name, sub_edits in below.items():
        key = name.encode("utf-8")
        _, sub_id = original[key]
        entries[key] = (stat.S_IFDIR, _rewrite(store, sub_id, sub_edits, new_objects, offsets))
    tree = _spliced(original, entries, offsets) or _rebuilt(original, entries, offsets)
    new_objects.append(tree)
    return tree.id


def _spliced(
    original: objects.Tree, entries: dict[bytes, tuple[int, ObjectID]], offsets: Offsets | None
) -> objects.Tree | None:
    """`original` with the shas of `entries` replaced in its bytes, when only shas change."""
    found = offsets.get(original.id) if offsets is not None else None
    if found is None:
        return None
    for key, (mode, _) in entries.items():
        if key not in found or key not in original or original[key][0] != mode:
            return None
    raw = bytearray(original.as_raw_string())
    for key, (_, sha) in entries.items():
        at = found[key]
        raw[at : at + 20] = objects.hex_to_sha(sha)
    tree = _SplicedTree.of(raw, {**original._entries, **entries})
    assert offsets is not None
    offsets.share(tree.id, found)
    return tree


class _SplicedTree(objects.Tree):
    """A Tree made of bytes and entries that are known to agree, so nothing is parsed.

    `Tree.from_raw_string` parses every entry back out of the bytes (half of a commit's cost in
    a 100-entry folder); a spliced tree's entries are its original's with the new shas, so they
    are handed over instead. Entries are Dulwich's `Tree._entries` (name -> (mode, hex sha)), the
    one private name this relies on; test_git_trees compares every spliced tree with a parse of
    its bytes.
    """

    __slots__ = ()

    @classmethod
    def of(cls, raw: bytes | bytearray, entries: dict[bytes, tuple[int, ObjectID]]) -> _SplicedTree:
        tree = cls()
        tree.set_raw_chunks([bytes(raw)])  # `_deserialize` below: the bytes are not parsed
        tree._entries = entries
        return tree

    def _deserialize(self, chunks: list[bytes]) -> None:
        """Nothing to parse: `of` sets the entries."""


def _rebuilt(
    original: objects.Tree, entries: dict[bytes, tuple[int, ObjectID]], offsets: Offsets | None
) -> objects.Tree:
    """A new Tree of `original`'s entries and `entries`, serialised by Dulwich."""
    tree = objects.Tree()
    for entry in original.items():
        tree.add(entry.path, entry.mode, entry.sha)
    for key, (mode, sha) in entries.items():
        tree.add(key, mode, sha)
    if offsets is not None:
        offsets.learn(tree)
    return tree
