"""Workspace object storage stays bounded: packs are consolidated, so cycle cost does not grow.

Every promotion fetches and pushes through its own small pack; Dulwich loads every pack index to
look an object up, so without consolidation each write costs more than the last (issue 11: 7.1 s
on the first cycle of 100 CRs, 16.3 s on the ninth). `workspace.consolidate` folds the packs
(and the loose objects the writer adds) into one once there are more than `workspace.MAX_PACKS`,
keeping only what the refs' commits and trees need: a fold of everything would itself grow with
every past cycle (one commit per promotion), as a 1,000-CR bench showed (bench/scale.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from dulwich import objects
from dulwich.repo import Repo

from imagepromoter import credentials, spec
from imagepromoter.git import workspace, writer
from tests.servers import git_http
from tests.test_git_writer import DEV, SEED, set_tag


def packs(path: Path) -> list[Path]:
    return sorted((path / "objects/pack").glob("*.pack"))


def commit_of(repo: Repo, blobs: list[objects.Blob], parent: bytes | None = None) -> bytes:
    """A commit on refs/heads/main whose tree holds `blobs` (one file each)."""
    tree = objects.Tree()
    for i, blob in enumerate(blobs):
        tree.add(f"f{i}".encode(), 0o100644, blob.id)
    commit = objects.Commit()
    commit.tree, commit.parents = tree.id, [parent] if parent else []
    commit.author = commit.committer = b"t <t@example.com>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"c\n"
    repo.object_store.add_objects([(tree, None), (commit, None)])
    repo.refs[b"refs/heads/main"] = commit.id
    return commit.id


@pytest.mark.parametrize(
    ("made", "folded"),
    [(1, False), (workspace.MAX_PACKS - 3, False), (workspace.MAX_PACKS - 2, True)],
    ids=["few-packs", "at-the-bound", "over-the-bound"],
)
def test_packs_over_the_bound_are_folded_into_what_the_refs_need(
    tmp_path: Path, made: int, folded: bool
) -> None:
    repo = Repo.init_bare(str(tmp_path), mkdir=False)
    old = [objects.Blob.from_string(f"old {i}\n".encode()) for i in range(made)]
    for blob in old:
        repo.object_store.add_objects([(blob, None)])
    first = commit_of(repo, old)  # history: a commit the next one replaces
    new = [objects.Blob.from_string(f"new {i}\n".encode()) for i in range(2)]
    repo.object_store.add_objects([(blob, None) for blob in new])
    head = commit_of(repo, new, parent=first)
    assert len(packs(tmp_path)) == made + 3
    assert workspace.consolidate(repo) is folded
    repo.close()
    reopened = Repo(str(tmp_path))
    store = reopened.object_store
    assert all(store[b.id].as_raw_string() == b.data for b in new), "the head's tree is kept"
    assert head in store
    if folded:
        assert len(packs(tmp_path)) == 1
        assert not any(b.id in store for b in old), "history nobody reads is dropped"
        assert first not in store and reopened.get_shallow() == {head}
    else:
        assert all(b.id in store for b in old)
    reopened.close()


def test_a_second_fold_of_the_same_refs_keeps_its_pack(tmp_path: Path) -> None:
    """The refs did not move since the last fold (say, pushes that failed): the fold is the
    same pack, by name, as the one it replaces, and deleting the old packs must not take it."""
    repo = Repo.init_bare(str(tmp_path), mkdir=False)
    kept = [objects.Blob.from_string(b"kept\n")]
    repo.object_store.add_objects([(blob, None) for blob in kept])
    head = commit_of(repo, kept)
    for round_ in range(2):
        for i in range(workspace.MAX_PACKS):
            unused = objects.Blob.from_string(f"unused {round_} {i}\n".encode())
            repo.object_store.add_objects([(unused, None)])
        assert workspace.consolidate(repo)
        assert len(packs(tmp_path)) == 1
        assert head in repo.object_store and kept[0].id in repo.object_store
    repo.close()


def test_git_itself_reads_the_fold_whole(tmp_path: Path) -> None:
    """The fold is written as one pack by git/packs.py (not Dulwich's add_objects): git's own
    fsck must find every object the head needs in it, nested trees and a submodule entry too."""
    repo = Repo.init_bare(str(tmp_path), mkdir=False)
    blobs = [objects.Blob.from_string(f"tag: 1.0.{i}\n".encode()) for i in range(5)]
    repo.object_store.add_objects([(blob, None) for blob in blobs])
    inner = objects.Tree()
    inner.add(b"values.yaml", 0o100644, blobs[0].id)
    inner.add(b"vendored", objects.S_IFGITLINK, b"1" * 40)  # a commit of another repository
    repo.object_store.add_objects([(inner, None)])
    first = commit_of(repo, blobs[1:3])
    head = commit_of(repo, blobs[3:], parent=first)
    top = repo.object_store[repo.object_store[head].tree]
    top.add(b"environments", 0o040000, inner.id)
    commit = repo.object_store[head]
    commit.tree = top.id
    repo.object_store.add_objects([(top, None), (commit, None)])
    repo.refs[b"refs/heads/main"] = commit.id
    for i in range(workspace.MAX_PACKS):
        repo.object_store.add_objects([(objects.Blob.from_string(f"unused {i}\n".encode()), None)])
    assert workspace.consolidate(repo)
    repo.close()
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is required (the test servers use it too)")
    checked = subprocess.run(
        [git, "--git-dir", str(tmp_path), "fsck", "--full", "--no-dangling"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    (pack,) = packs(tmp_path)
    listed = subprocess.run(
        [git, "verify-pack", "-v", str(pack.with_suffix(".idx"))],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    kept = {line.split()[0] for line in listed.splitlines() if line[:40].isalnum() and " " in line}
    needed = {commit.id, top.id, inner.id, *(b.id for b in blobs[:1] + blobs[3:])}
    assert kept == {sha.decode() for sha in needed}


@pytest.mark.servers
def test_many_promotions_keep_the_workspace_to_a_few_packs(
    tmp_path: Path,
    git_http_server: git_http.GitHttpServer,
    git_http_creds: credentials.BasicCredentials,
) -> None:
    url = git_http_server.create_repo("scale-packs", SEED)
    git_writer = writer.GitWriter(tmp_path / "ws")
    git = spec.GitSpec(url=url, branch="main")
    bare = git_http_server.repo_path("scale-packs")
    rounds = 2 * workspace.MAX_PACKS + 3
    for i in range(rounds):
        git_http.push_commit(bare, "main", {"OTHER.md": f"{i}\n"})  # each fetch brings a pack
        result = git_writer.write(git, git_http_creds, set_tag(f"2.0.{i}-dev"))
        assert result.commit is not None
    (path,) = [p for p in (tmp_path / "ws").iterdir() if p.is_dir()]
    assert 1 <= len(packs(path)) <= workspace.MAX_PACKS + 1
    assert f"tag: 2.0.{rounds - 1}-dev".encode() in git_http.read_file(bare, "main", DEV)
    assert git_writer.write(git, git_http_creds, set_tag("3.0.0-dev")).commit is not None


def test_loose_objects_over_the_bound_are_packed(tmp_path: Path) -> None:
    repo = Repo.init_bare(str(tmp_path), mkdir=False)
    kept = [objects.Blob.from_string(f"kept {i}\n".encode()) for i in range(3)]
    for blob in kept:
        repo.object_store.add_object(blob)
    for i in range(workspace.MAX_LOOSE + 1):
        repo.object_store.add_object(objects.Blob.from_string(f"loose {i}\n".encode()))
    commit_of(repo, kept)
    assert workspace.consolidate(repo)
    assert len(packs(tmp_path)) == 1
    assert not list(repo.object_store._iter_loose_objects())
    repo.close()
    reopened = Repo(str(tmp_path))
    assert all(reopened.object_store[b.id].data == b.data for b in kept)
    reopened.close()


@pytest.mark.parametrize("existing", [False, True], ids=["new", "made-before"])
def test_workspaces_read_no_multi_pack_index_and_pack_at_level_1(
    tmp_path: Path, existing: bool
) -> None:
    """Every object read looked for a multi-pack-index file (a stat per read) unless it is off."""
    path = tmp_path / "ws"
    if existing:  # a workspace from before the settings: a valid one, with its own config
        path.mkdir()
        Repo.init_bare(str(path)).close()
        (path / "imagepromoter-complete").touch()
    with workspace.open_repo(path) as repo:
        store = repo.object_store
        assert store.get_midx() is None
        assert store._use_midx is False
        assert store.pack_compression_level == 1
    config = (path / "config").read_text()
    assert "multiPackIndex = false" in config and "packCompression = 1" in config
