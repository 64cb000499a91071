"""What a promotion writes: file changes planned against a tree, then committed by the git adapter.

The git adapter calls a `Planner` with a reader of the branch head it is about to build on. When a
push loses a race, the adapter fetches the new head and calls the planner again: edits are re-made
from scratch on the new content, never merged.
"""

from __future__ import annotations

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


# read(path) -> the file's bytes at the head being built on. Raises errors.TargetError when the
# path is missing, a symlink, a directory, inside .git/, or larger than the configured limit.
FileReader = Callable[[str], bytes]
Planner = Callable[[FileReader], Changeset]


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
class WriteResult:
    """What the git adapter did: `commit` is None when nothing needed committing (or dry run)."""

    commit: str | None
    branch: str  # the branch pushed to (pushBranch or branch)
    base: str  # the sha of the head the changeset was built on
    changeset: Changeset
