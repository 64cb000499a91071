"""One batch's view of an object store: new objects kept in memory, written once as one pack.

A batch of 100 promotions into one repository makes 100 chained commits, each with a blob and the
trees on its path. Written as they are made, each commit's objects became a pack of their own
(and the commit a loose object), so the store held a hundred more packs by the end of the batch,
and every later lookup of the same batch consulted every one of their indexes: the chain cost
grew with the square of its length (bench/scale.py at 1,000 CRs: most of the CLI's CPU).

A `Layer` keeps what the chain adds in a dict, serves it back as is, parses each object of the
store below once per batch, and `flush` writes everything added in one `add_objects` call (one
pack). Objects it hands out are shared, not copies: callers read them and never mutate them
(trees.py builds a new Tree rather than editing the one it read).
On a disk store, `flush` writes that pack through git/packs.py and returns it, so the push can
send the same compressed records.
"""

from __future__ import annotations

from collections.abc import Iterable

from dulwich.object_store import BaseObjectStore, DiskObjectStore
from dulwich.objects import ObjectID, ShaFile

from imagepromoter.git import packs


class Layer:
    """Reads through to `base`, parsing each object once; writes stay here until `flush`."""

    def __init__(self, base: BaseObjectStore) -> None:
        self._base = base
        self._added: dict[ObjectID, ShaFile] = {}
        self._read: dict[ObjectID, ShaFile] = {}

    def __getitem__(self, sha: ObjectID) -> ShaFile:
        """The object `sha`: one added here, or the base's (parsed on its first read)."""
        found = self._added.get(sha)
        if found is None:
            found = self._read.get(sha)
        if found is None:  # (not `or`: an empty Tree is falsy)
            found = self._read[sha] = self._base[sha]
        return found

    def __contains__(self, sha: ObjectID) -> bool:
        """Whether `sha` was added here or is in the base store."""
        return sha in self._added or sha in self._read or sha in self._base

    def add_objects(self, objects: Iterable[tuple[ShaFile, str | None]]) -> None:
        """Keep `objects` (in memory, in order, once each) for the next `flush`."""
        for obj, _path in objects:
            self._added.setdefault(obj.id, obj)

    def added(self) -> list[ShaFile]:
        """What was added since the last flush, in the order it was first added."""
        return list(self._added.values())

    def flush(self) -> packs.Encoded | None:
        """Write everything added to the base store at once: one pack (returned) on disk."""
        pending = self.added()
        encoded = None
        if pending and isinstance(self._base, DiskObjectStore):
            level = self._base.pack_compression_level
            encoded = packs.encode(
                [packs.whole(obj) for obj in pending], self._base.object_format,
                compression_level=level,
            )  # fmt: skip
            packs.save(self._base, encoded)
        elif pending:
            self._base.add_objects([(obj, None) for obj in pending])
        self._read.update(self._added)
        self._added.clear()
        return encoded
