"""git/packs.py and git/layer.py: a batch's objects in memory, then one pack, checked by git itself.

No server: a bare repository on disk (Dulwich's DiskObjectStore), and the `git` binary the test
servers need anyway to verify the pack and index we write without Dulwich's help.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich import objects
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.object_store import DiskObjectStore, MemoryObjectStore
from dulwich.objects import ObjectID, ShaFile
from dulwich.pack import pack_object_header, write_pack_data
from dulwich.repo import Repo

from imagepromoter import changes
from imagepromoter.git import chain, layer, packs
from tests.test_git_batch_chain import seed_commit

GIT = shutil.which("git")


def some_objects(n: int) -> list[ShaFile]:
    """n blobs, a tree of them, an empty tree, and a commit: every kind, distinct."""
    blobs = [objects.Blob.from_string(f"tag: 1.0.{i}\n".encode()) for i in range(n)]
    tree = objects.Tree()
    for i, blob in enumerate(blobs):
        tree.add(f"app-{i:04d}.yaml".encode(), 0o100644, blob.id)
    empty = objects.Tree()
    commit = seed_commit(tree.id, b"Bot <bot@example.com>")
    return [*blobs, tree, empty, commit]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    made = Repo.init_bare(str(tmp_path / "ws"), mkdir=True)
    yield made
    made.close()


def pack_files(repo: Repo) -> list[Path]:
    return sorted(Path(repo.path, "objects", "pack").iterdir())


def test_a_saved_pack_holds_every_object_and_git_verifies_it(repo: Repo) -> None:
    store = repo.object_store
    assert isinstance(store, DiskObjectStore)
    created = some_objects(50)
    encoded = packs.encode([packs.whole(o) for o in created], store.object_format)
    packs.save(store, encoded)
    files = pack_files(repo)
    assert [p.suffix for p in files] == [".idx", ".pack"]  # no temporary file left behind
    assert files[0].name == f"pack-{encoded.checksum.hex()}.idx"
    for obj in created:
        assert store[obj.id].as_raw_string() == obj.as_raw_string()
    reopened = Repo(repo.path)  # a fresh reader finds the pack by its index
    try:
        assert all(obj.id in reopened.object_store for obj in created)
    finally:
        reopened.close()
    if GIT is None:
        pytest.fail("git is required (the test servers use it too)")
    verified = subprocess.run(
        [GIT, "verify-pack", "-v", str(files[0])], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    listed = {line.split()[0] for line in verified.stdout.splitlines() if " " in line}
    assert {obj.id.decode() for obj in created} <= listed


def test_records_are_the_saved_bytes_so_the_push_sends_what_was_written(repo: Repo) -> None:
    store = repo.object_store
    created = some_objects(5)
    encoded = packs.encode([packs.whole(o) for o in created], store.object_format)
    sent: list[bytes] = []
    entries, checksum = write_pack_data(
        sent.append, iter(encoded.records), store.object_format, num_records=len(created)
    )
    assert b"".join(sent) == encoded.data and checksum == encoded.checksum
    assert [r.sha() for r in encoded.records] == [obj.sha().digest() for obj in created]
    assert sorted((sha, off, crc) for sha, (off, crc) in entries.items()) == encoded.index


def test_saving_the_same_pack_twice_keeps_one(repo: Repo) -> None:
    store = repo.object_store
    assert isinstance(store, DiskObjectStore)
    encoded = packs.encode([packs.whole(o) for o in some_objects(3)], store.object_format)
    packs.save(store, encoded)
    packs.save(store, encoded)
    assert len(pack_files(repo)) == 2 and len(store.packs) == 1


class CountingStore(MemoryObjectStore):
    """A MemoryObjectStore that counts reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[ObjectID] = []

    def __getitem__(self, name: ObjectID) -> ShaFile:  # type: ignore[override]
        self.reads.append(name)
        return super().__getitem__(name)


def test_the_layer_parses_each_base_object_once_and_keeps_writes_until_flush() -> None:
    base = CountingStore()
    seeded, *new = some_objects(2)
    base.add_object(seeded)
    view = layer.Layer(base)
    assert view[seeded.id].id == view[seeded.id].id == seeded.id
    assert base.reads == [seeded.id]
    view.add_objects([(obj, None) for obj in new])
    view.add_objects([(new[0], None)])  # once each
    empty = new[-2]
    assert isinstance(empty, objects.Tree) and len(empty) == 0
    assert view[empty.id] is empty  # found, although an empty Tree is falsy
    assert [obj.id for obj in view.added()] == [obj.id for obj in new]
    assert all(obj.id not in base for obj in new) and all(obj.id in view for obj in new)
    assert view.flush() is None  # not a disk store: added with add_objects, no pack
    assert all(obj.id in base for obj in new) and view.added() == []
    assert view.flush() is None


def test_a_chain_on_a_disk_store_adds_one_pack_and_no_loose_object(repo: Repo) -> None:
    store = repo.object_store
    blob = objects.Blob.from_string(b"tag: 0\n")
    tree = objects.Tree()
    tree.add(b"values.yaml", 0o100644, blob.id)
    seed = objects.Commit()
    seed.tree, seed.parents = tree.id, []
    seed.author = seed.committer = b"Seeder <seed@example.com>"
    seed.author_time = seed.commit_time = seed.author_timezone = seed.commit_timezone = 0
    seed.message = b"seed\n"
    store.add_objects([(blob, None), (tree, None), (seed, None)])
    before = len(store.packs)

    def setting(value: int) -> changes.Planner:
        def plan(read: changes.FileReader) -> changes.Changeset:
            after = f"tag: {value}\n".encode()
            return changes.Changeset(
                (changes.FileChange("values.yaml", read("values.yaml"), after),), f"set {value}"
            )

        return plan

    built = chain.build(
        store, seed.id, [setting(v) for v in range(1, 21)], branch="main",
        author="Bot <bot@example.com>", committer="imagepromoter <ip@localhost>",
        max_file_bytes=1024,
    )  # fmt: skip
    assert sum(1 for link in built.links if link.commit is not None) == 20
    assert len(store.packs) == before + 1
    loose = [p for p in Path(repo.path, "objects").glob("[0-9a-f][0-9a-f]/*")]
    assert loose == []
    assert built.pack is not None and len(built.pack.records) == len(built.created) == 60
    assert {obj.id for obj in built.created} == {
        ObjectID(r.sha().hex().encode()) for r in built.pack.records
    }
    tip = store[built.tip]
    assert isinstance(tip, objects.Commit) and tip.message == b"set 20\n"


@pytest.mark.parametrize(
    ("size", "bits"),
    [(0, 9), (249, 9), (250, 10), (3400, 12), (32506, 15), (32507, 15), (200_000, 15)],
)
def test_a_record_is_deflated_in_the_smallest_window_that_reaches_across_it(
    size: int, bits: int
) -> None:
    """zlib's setup of its default 32 KB window was most of the cost of deflating a small
    object; a window that reaches across the whole object finds the same matches, so only the
    stream header (which names the window to inflate with) may differ."""
    rnd = random.Random(size)
    words = [bytes(rnd.randrange(97, 123) for _ in range(rnd.randrange(1, 9))) for _ in range(40)]
    data = b" ".join(rnd.choice(words) for _ in range(size))[:size]
    assert len(data) == size
    assert packs.window_bits(size) == bits
    (record,) = packs.encode([packs.Whole(3, data, bytes(20))], DEFAULT_OBJECT_FORMAT).records
    header = bytes(pack_object_header(3, None, size, object_format=DEFAULT_OBJECT_FORMAT))
    (chunk,) = record.comp_chunks
    assert chunk.startswith(header)
    deflated = chunk[len(header) :]
    assert zlib.decompress(deflated) == data
    assert deflated[0] >> 4 == bits - 8  # the window the header names
    assert deflated[2:] == zlib.compress(data, -1)[2:]  # the same deflate stream as a 32 KB window
