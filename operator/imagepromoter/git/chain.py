"""A batch's chain of commits: one per Planner, each built on the tree the previous one left.

`build` is the object-store half of `GitWriter.write_batch` (no network): plan i reads the tree
of commit i-1 (so two CRs editing one file compose instead of conflicting), a non-empty changeset
becomes its own commit with its own author and message (history says which CR did what), and the
chain's tip is what the writer pushes, with exactly the objects the chain created. The chain is
built on a git/layer.Layer: its objects stay in memory while it grows and reach the store in one
pack at the end (a pack per commit made a 100-commit chain cost the square of its length).

A Planner that raises (TargetError, Held, any PromotionError, a bug) fails only its own entry: its
exception is kept and the next plan reads the same tree. A failure of the reader itself that is
not a PromotionError (a missing object: a damaged workspace) is re-raised out of `build`, so the
writer re-clones instead of blaming one CR.

An empty changeset is `dependent` when it is empty only because an earlier commit of the chain
changed a path it read: if the push then fails, that CR does not hold its value on the remote
either, so `Chain.outcome` fails it with the push's error instead of reporting UpToDate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import posixpath
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from dulwich import objects
from dulwich.object_store import BaseObjectStore
from dulwich.objects import ObjectID

from imagepromoter import changes, errors
from imagepromoter.git import layer, packs, trees


@dataclass(frozen=True)
class Link:
    """One plan's entry: its result (or exception), its commit, and whether it leaned on others."""

    result: changes.WriteResult | BaseException
    commit: ObjectID | None = None
    dependent: bool = False


@dataclass
class Chain:
    """The commits built on `base`, one Link per plan in order; `tip` is `base` if none."""

    base: ObjectID
    tip: ObjectID
    links: list[Link] = field(default_factory=list)
    created: list[objects.ShaFile] = field(default_factory=list)  # once each, for the pack
    pack: packs.Encoded | None = None  # `created` as written to a disk store, for the push
    paths: tuple[str, ...] = ()

    def outcome(
        self,
        *,
        pushed: bool = False,
        failed: BaseException | None = None,
        landed: ObjectID | None = None,
        dry_run: bool = False,
    ) -> list[changes.WriteResult | BaseException]:
        """Each entry's answer after the push (`pushed`), its failure (`failed`), or neither.

        `landed` is the tip of an earlier push whose answer was lost, found on the remote: an
        entry with nothing left to change (not thanks to this chain) reports it as its commit.
        A dry run's entries have no commit and name the fetched head as their base.
        """
        if dry_run:
            base = self.base.decode()
            return [
                link.result
                if isinstance(link.result, BaseException)
                else dataclasses.replace(link.result, commit=None, base=base)
                for link in self.links
            ]
        push = None
        if pushed:
            push = changes.Push(tip=self.tip.decode(), before=self.base.decode(), paths=self.paths)
        answers: list[changes.WriteResult | BaseException] = []
        for link in self.links:
            result = link.result
            if isinstance(result, BaseException):
                answers.append(result)
            elif failed is not None and (link.commit is not None or link.dependent):
                answers.append(failed)
            elif link.commit is not None:
                answers.append(dataclasses.replace(result, push=push))
            elif landed is not None and not link.dependent:
                answers.append(dataclasses.replace(result, commit=landed.decode()))
            else:
                answers.append(result)
        return answers


def build(
    store: BaseObjectStore,
    base: ObjectID,
    plans: Sequence[changes.Planner],
    *,
    branch: str,
    author: str,
    committer: str,
    max_file_bytes: int,
) -> Chain:
    """Run every plan on the tree the previous commits left (a dry run passes a scratch store).

    What the chain creates is written to `store` once, as one pack, when every plan has run.
    """
    chain = Chain(base=base, tip=base)
    view = layer.Layer(store)
    offsets = trees.Offsets()
    parent = _commit_of(view, base)
    changed: dict[str, None] = {}  # as the changesets name them, in order, once each
    written: set[str] = set()  # the same, normalised, for `touches`
    for plan in plans:
        read = _Recording(trees.reader(view, parent.tree, max_file_bytes=max_file_bytes))
        try:
            changeset = plan(read)
        except Exception as exc:
            read.raise_damage()
            chain.links.append(Link(exc))
            continue
        read.raise_damage()
        result = changes.WriteResult(
            commit=None, branch=branch, base=parent.id.decode(), changeset=changeset
        )
        if not changeset.changes:
            chain.links.append(Link(result, dependent=read.touches(written)))
            continue
        made = _commit(view, offsets, parent, changeset, changeset.author or author, committer)
        changed.update((c.path, None) for c in changeset.changes)
        written.update(posixpath.normpath(c.path) for c in changeset.changes)
        chain.links.append(Link(dataclasses.replace(result, commit=made.id.decode()), made.id))
        parent = made
    chain.created = view.added()
    chain.pack = view.flush()
    chain.tip = parent.id
    chain.paths = tuple(changed)
    return chain


class _Recording:
    """A FolderReader that remembers what it read and whether the store itself failed."""

    def __init__(self, inner: trees.TreeReader) -> None:
        self._inner = inner
        self.read: set[str] = set()
        self.walked: set[str] = set()
        self._damage: Exception | None = None

    def __call__(self, path: str) -> bytes:
        self.read.add(posixpath.normpath(path))
        with self._watch():
            return self._inner(path)

    def walk(self, folder: str, *, limit: int) -> list[changes.Entry]:
        self.walked.add(posixpath.normpath(folder))
        with self._watch():
            return self._inner.walk(folder, limit=limit)

    def touches(self, paths: set[str]) -> bool:
        """Whether any of `paths` is one this reader read, or lies in a folder it walked."""
        for path in paths:
            if path in self.read:
                return True
            if any(f == "." or path.startswith(f + "/") or path == f for f in self.walked):
                return True
        return False

    def raise_damage(self) -> None:
        """Re-raise a failure of the object store (even if the plan swallowed it)."""
        if self._damage is not None:
            raise self._damage

    @contextlib.contextmanager
    def _watch(self) -> Iterator[None]:
        """Record a non-PromotionError raised by the tree reader: the workspace is damaged."""
        try:
            yield
        except errors.PromotionError:
            raise
        except Exception as exc:
            self._damage = exc
            raise


def _commit_of(store: layer.Layer, sha: ObjectID) -> objects.Commit:
    found = store[sha]
    assert isinstance(found, objects.Commit)
    return found


def _commit(
    store: layer.Layer,
    offsets: trees.Offsets,
    parent: objects.Commit,
    changeset: changes.Changeset,
    author: str,
    committer: str,
) -> objects.Commit:
    """Add the changeset's blobs and trees, and the commit, to `store`; return the commit."""
    tree_id, _ = trees.write_changes(store, parent.tree, changeset.changes, offsets=offsets)
    made = objects.Commit()
    made.tree = tree_id
    made.parents = [parent.id]
    made.author = author.encode("utf-8")
    made.committer = committer.encode("utf-8")
    made.author_time = made.commit_time = int(time.time())
    made.author_timezone = made.commit_timezone = 0
    made.encoding = b"UTF-8"
    message = changeset.message if changeset.message.endswith("\n") else changeset.message + "\n"
    made.message = message.encode("utf-8")
    store.add_objects([(made, None)])
    return made
