"""A batch's new objects as one pack: compressed once, indexed from what was written, sent as is.

A batch of 100 promotions makes about 500 objects (a commit, a blob and the trees on its path per
CR). Dulwich's `add_objects` writes them as a pack and then reads that pack back, inflating every
object again, to build its index (the path it shares with thin packs from a fetch); the push then
compresses the same objects a second time. Here `encode` compresses each object once, keeping
each record's offset and CRC as `write_pack_data` reports them, so `save` writes the index from
those, and `records` hand the push the same compressed bytes (Dulwich's pack writer sends
`comp_chunks` as they are). Each entry is whole (no deltas), and deflated here in one call.

The workspace's fold (workspace.consolidate) writes its one pack the same way, from the objects
the refs need; the blobs among them it copies as read, never parsed (`Whole`).

`save` writes `pack-<checksum>.pack`, then its `.idx` (Dulwich, like git, only opens a pack whose
index exists, so a reader never sees half a pack), each through a temporary file and a rename.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dulwich.object_format import ObjectFormat
from dulwich.object_store import PACK_MODE, DiskObjectStore
from dulwich.objects import ShaFile
from dulwich.pack import UnpackedObject, pack_object_header, write_pack_data, write_pack_index


@dataclass(frozen=True)
class Encoded:
    """A pack's bytes, its index entries (sorted), its checksum, and one record per object."""

    data: bytes
    index: list[tuple[bytes, int, int | None]]
    checksum: bytes
    records: list[UnpackedObject]


class Whole(NamedTuple):
    """What a whole (not delta) pack record is made of: the object's type, bytes and binary sha.

    A fold (workspace.consolidate) copies blobs it never parses, so a record need not be a
    ShaFile.
    """

    type_num: int
    raw: bytes
    sha: bytes


def whole(obj: ShaFile) -> Whole:
    """`obj` as a pack record's parts."""
    return Whole(obj.type_num, obj.as_raw_string(), obj.sha().digest())


def unpacked(obj: Whole) -> UnpackedObject:
    """`obj` as a whole (not delta) pack entry whose data is one chunk."""
    return UnpackedObject(
        obj.type_num, delta_base=None, crc32=None, decomp_chunks=[obj.raw], sha=obj.sha
    )


def encode(
    objects: Sequence[Whole], object_format: ObjectFormat, *, compression_level: int = -1
) -> Encoded:
    """Compress `objects` (distinct) into one pack, in order, each as a whole object."""
    records = [_compressed(obj, object_format, compression_level) for obj in objects]
    buffer = io.BytesIO()
    entries, checksum = write_pack_data(  # takes each record's comp_chunks as they are
        buffer.write, iter(records), object_format, num_records=len(records)
    )
    for record in records:
        record.crc32 = entries[record.sha()][1]
    index: list[tuple[bytes, int, int | None]] = sorted(
        (sha, offset, crc) for sha, (offset, crc) in entries.items()
    )
    return Encoded(data=buffer.getvalue(), index=index, checksum=checksum, records=records)


def _compressed(obj: Whole, object_format: ObjectFormat, level: int) -> UnpackedObject:
    """`obj`'s pack record, header and all, deflated in one call with a window that fits it.

    Dulwich's writer deflates through a `compressobj`; one `zlib.compress` call on a 100-entry
    tree took a third of the time for the same bytes. For a small object most of what is left
    is zlib setting up its 32 KB window, so the window is the smallest that reaches across the
    whole object (`window_bits`): the same deflate stream, and the stream's header tells every
    reader (git, Dulwich) the window to inflate with.
    """
    record = unpacked(obj)
    header = pack_object_header(obj.type_num, None, len(obj.raw), object_format=object_format)
    deflated = zlib.compress(obj.raw, level, window_bits(len(obj.raw)))
    record.comp_chunks = [bytes(header) + deflated]
    return record


def window_bits(size: int) -> int:
    """The smallest zlib window (9 to 15 bits) whose reach covers `size` bytes.

    Deflate matches reach back the window less 262 bytes (its lookahead); past 32 KB the window
    is zlib's default.
    """
    return min(15, max(9, (size + 262).bit_length()))


def save(store: DiskObjectStore, pack: Encoded) -> tuple[str, str]:
    """Put `pack` into `store`'s pack directory (pack first, index last) and open it.

    Returns the paths of its two files (the same when this pack was there already).
    """
    folder = os.fspath(store.pack_dir)
    base = os.path.join(folder, "pack-" + pack.checksum.hex())
    if not os.path.exists(base + ".idx"):
        _replace(folder, base + ".pack", pack.data)
        index = io.BytesIO()
        write_pack_index(index, pack.index, pack.checksum, version=store.pack_index_version)
        _replace(folder, base + ".idx", index.getvalue())
    store.packs  # noqa: B018 (the property opens packs that appeared since the last look)
    return base + ".pack", base + ".idx"


def _replace(folder: str, path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in `folder` and a rename."""
    fd, temporary = tempfile.mkstemp(dir=folder, prefix="tmp_pack_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, PACK_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
