"""What a promotion writes: file changes planned against a tree, then committed by the git adapter.

The git adapter calls a `Planner` with a reader of the tree it is about to build on. When a push
loses a race, the adapter fetches the new head and calls the planner again: edits are re-made
from scratch on the new content, never merged. Promotions into one repository and branch are
written as a batch (`GitWriter.write_batch`): each Planner reads the tree the previous ones left
and its changeset becomes its own commit, with its own `author` and message, and the chain goes
out in one push (`WriteResult.push`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class FileChange:
    """One file's content before and after the edit (bytes, exactly as in the repository)."""

    path: str
    before: bytes
    after: bytes


@dataclass(frozen=True)
class Changeset:
    """All edits of one promotion; empty `changes` means every target already holds its value."""

    changes: tuple[FileChange, ...]
    message: str
    author: str | None = None  # "Name <email>" of its commit; None: the batch's spec.git.author


# read(path) -> the file's bytes at the head being built on. Raises errors.TargetError when the
# path is missing, a symlink, a directory, inside .git/, or larger than the configured limit.
FileReader = Callable[[str], bytes]
Planner = Callable[[FileReader], Changeset]


def authored(plan: Planner, author: str) -> Planner:
    """`plan`, its changesets committed as `author` ("Name <email>") unless they name one."""

    def planned(read: FileReader) -> Changeset:
        changeset = plan(read)
        if changeset.author is not None:
            return changeset
        return dataclasses.replace(changeset, author=author)

    return planned


@dataclass(frozen=True)
class Entry:
    """One entry of a folder listing: `kind` is file, symlink or submodule."""

    path: str
    kind: str


class FolderReader(Protocol):
    """A FileReader that can also list a folder (the git adapter's reader is one)."""

    def __call__(self, path: str) -> bytes: ...

    def walk(self, folder: str, *, limit: int) -> list[Entry]: ...


@dataclass(frozen=True)
class Push:
    """One compare-and-swap push of a chain of commits (one per CR of the batch)."""

    tip: str  # the commit the pushed ref points at now: the last of the chain
    before: str  # the commit the chain was built on (the fetched head)
    paths: tuple[str, ...]  # every path the chain changed, in order, once each


@dataclass(frozen=True)
class WriteResult:
    """What the git adapter did: `commit` is None when nothing needed committing (or dry run)."""

    commit: str | None
    branch: str  # the branch pushed to (pushBranch or branch)
    base: str  # the sha of the commit the changeset was built on (in a batch: the previous CR's)
    changeset: Changeset
    push: Push | None = None  # the push that carried `commit` (None: nothing pushed)

    @property
    def pushed(self) -> str | None:
        """The tip of the push that carried this commit (one notification per tip and URL)."""
        return self.push.tip if self.push is not None else None
