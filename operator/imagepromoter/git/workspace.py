"""The workspace: one bare repository per (URL, branch), kept between runs under a work directory.

Design:
- Bare and shallow. The first promotion fetches the branch head at depth 1; nothing is checked
  out (the writer reads and writes objects directly). Later promotions fetch at depth 1 too, but
  announce the heads they have, so the server sends only the new commit and the objects that
  changed (about 300 bytes after a one-file commit in the 500-file benchmark repository, against
  64 KB for the first clone); and if the remote history was rewritten, depth 1 still bounds the
  transfer to one tree instead of the whole history.
- The ls-remote skip is built into `fetch`: Dulwich's fetch first reads the remote's refs (that
  is an ls-remote) and asks for nothing when every wanted head is already in the object store, so
  an unchanged branch costs one small request and no pack.
- Heads are taken from the refs each fetch returns, never from `refs/remotes/*` (Dulwich's
  `porcelain.fetch(repo, URL)` does not update those). The heads last seen (and pushed) are
  recorded as the workspace's own `refs/heads/<name>`: Dulwich announces only `refs/heads/*` as
  "have" when it fetches (anything else and the server re-sends the whole tree), and `open` uses
  them to check the workspace is whole.
- No remote is configured and no URL is written to the workspace's config, so credentials cannot
  end up on disk; the directory name is a hash of the redacted URL and the branch.
- A damaged workspace (not a repository, missing objects, a recorded head whose commit or tree is
  gone, a leftover of an interrupted first clone) is deleted and cloned again, never half-used.
- One `threading.Lock` per workspace serializes writers in this process (`Workspaces.lock`).
- Storage stays bounded: every fetch brings a pack and every commit adds loose objects, and
  Dulwich consults every pack index per lookup, so a workspace nobody folds gets slower with every
  past cycle. Leaving `open_repo` normally folds them into one pack once there are more than
  MAX_PACKS packs or MAX_LOOSE loose objects (always under the workspace's lock), keeping only
  what the refs' commits and trees need: a batch adds one commit per CR, and a fold that kept all
  history grew with every past cycle (bench/scale.py, 1,000 CRs, five changed cycles).
- The workspace's own config turns off what only costs here: Dulwich looks for a
  multi-pack-index file on every object read unless `core.multiPackIndex` is false (nothing here
  writes one), and the packs a batch writes are compressed at level 1, as git compresses loose
  objects by default (`core.loosecompression`): on a 100-entry tree, level 6 took 1.5 times as
  long for under 1 % fewer bytes. `open_repo` sets both on workspaces made before they were.
- A push whose answer never came is remembered as a ref of the workspace (`pending`), so the
  next pass can tell our own commit on the remote from someone else's (see writer.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dulwich import errors as dulwich_errors
from dulwich import objects
from dulwich.config import ConfigFile
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from imagepromoter import errors
from imagepromoter.git import deadlines, failures, packs, urls

_SEEN_PREFIX = Ref(b"refs/heads/")
_COMPLETE_MARKER = "imagepromoter-complete"
MAX_PACKS = 8  # more packs than this are folded into one (see consolidate)
MAX_LOOSE = 512  # and so are more loose objects than this
_SETTINGS = {  # (section, name) -> value; see "config" above
    ((b"core",), b"multiPackIndex"): b"false",
    ((b"core",), b"packCompression"): b"1",
}


class Workspaces:
    """Where workspaces live, and the in-process lock of each one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[Path, threading.Lock] = {}
        self._registry_lock = threading.Lock()

    def path(self, url: str, branch: str) -> Path:
        """The directory of the workspace for (url, branch): readable prefix + hash."""
        display = urls.redact(url)
        digest = hashlib.sha256(f"{display}\0{branch}".encode()).hexdigest()[:20]
        tail = display.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{tail}-{branch}")[:40]
        return self.root / f"{slug}-{digest}"

    def lock(self, path: Path) -> threading.Lock:
        """The lock that serializes every writer of the workspace at `path`."""
        with self._registry_lock:
            return self._locks.setdefault(path, threading.Lock())


@contextlib.contextmanager
def open_repo(path: Path) -> Iterator[Repo]:
    """Open the workspace at `path`, replacing it with an empty one when it is damaged."""
    repo = _open_valid(path)
    if repo is None:
        discard(path)
        path.mkdir(parents=True)
        repo = Repo.init_bare(str(path))
    repo = _configured(repo)
    try:
        yield repo
        consolidate(repo)
    finally:
        repo.close()


def _configured(repo: Repo) -> Repo:
    """`repo` with `_SETTINGS` in its config: reopened when it lacked them."""
    config = repo.get_config()
    missing = {key: value for key, value in _SETTINGS.items() if _setting(config, key) != value}
    if not missing:
        return repo
    for (section, name), value in missing.items():
        config.set(section, name, value)
    config.write_to_path()
    path = repo.path
    repo.close()
    return Repo(path)  # the object store reads these settings when it opens


def _setting(config: ConfigFile, key: tuple[tuple[bytes, ...], bytes]) -> bytes | None:
    try:
        return config.get(*key)
    except KeyError:
        return None


def consolidate(repo: Repo) -> bool:
    """Past MAX_PACKS or MAX_LOOSE, keep one pack of what the refs need, and nothing else.

    What the refs need: each ref's commit and its whole tree. Older commits are history this
    cache never reads again (the writer builds on the fetched head; the checks that read history
    fetch it when it is missing), so they are dropped and the kept commits become the shallow
    boundary, as after the first depth-1 clone. A fold that packed everything would grow with
    every past cycle (each promotion adds a commit), which is what this is here to prevent.
    """
    if len(repo.object_store.packs) <= MAX_PACKS and not _more_loose_than(repo, MAX_LOOSE):
        return False
    kept, boundary = _needed(repo)
    store = repo.object_store
    old_packs = [Path(pack._basename + s) for pack in store.packs for s in (".pack", ".idx")]
    loose = [p for fanout in _fanouts(repo) for p in fanout.iterdir()]
    keep: set[Path] = set()
    if kept:
        folded = packs.encode(
            kept, store.object_format, compression_level=store.pack_compression_level
        )
        # a pack is named by its checksum: a fold of what an earlier fold kept (the refs have not
        # moved since) is that same pack, which must stay
        keep = {Path(path) for path in packs.save(store, folded)}
    for path in [*old_packs, *loose]:
        if path not in keep:
            path.unlink(missing_ok=True)
    repo.update_shallow(boundary, repo.get_shallow() - boundary)
    store.close()  # forget the deleted packs; the next open reads the one left
    return True


def _needed(repo: Repo) -> tuple[list[packs.Whole], set[ObjectID]]:
    """Every object the refs' commits and trees need, and the heads whose parents go.

    Only `refs/heads/*` tips (the remote's heads, as last seen) become shallow: they are what a
    fetch announces; a pending push's commit may not be on the server at all. Blobs are copied
    as read, never parsed.
    """
    store = repo.object_store
    refs = repo.refs.as_dict()
    tips = {sha for sha in refs.values() if sha in store}
    heads = {sha for name, sha in refs.items() if name.startswith(_SEEN_PREFIX)}
    kept: dict[ObjectID, packs.Whole] = {}
    boundary: set[ObjectID] = set()
    trees: list[ObjectID] = []
    blobs: dict[ObjectID, None] = {}
    for sha in tips:
        commit = store[sha]
        if not isinstance(commit, objects.Commit):
            continue
        kept[sha] = packs.whole(commit)
        if sha in heads and any(parent not in tips for parent in commit.parents):
            boundary.add(sha)
        trees.append(commit.tree)
    while trees:
        tree_id = trees.pop()
        if tree_id in kept:
            continue
        tree = store[tree_id]
        assert isinstance(tree, objects.Tree)
        kept[tree_id] = packs.whole(tree)
        for entry in tree.iteritems():
            if stat.S_ISDIR(entry.mode):
                trees.append(entry.sha)
            elif not objects.S_ISGITLINK(entry.mode):  # a submodule's commit is not ours
                blobs[entry.sha] = None
    for sha in blobs:
        kept[sha] = packs.Whole(*store.get_raw(sha), objects.hex_to_sha(sha))
    return list(kept.values()), boundary


def _fanouts(repo: Repo) -> list[Path]:
    return list(Path(repo.path, "objects").glob("[0-9a-f][0-9a-f]"))


def _more_loose_than(repo: Repo, bound: int) -> bool:
    count = 0
    for fanout in _fanouts(repo):
        count += sum(1 for _ in fanout.iterdir())
        if count > bound:
            return True
    return False


def discard(path: Path) -> None:
    """Delete a workspace (it is re-cloned on next use)."""
    shutil.rmtree(path, ignore_errors=True)


def _open_valid(path: Path) -> Repo | None:
    if not path.exists():
        return None
    try:
        repo = Repo(str(path))
    except (dulwich_errors.NotGitRepository, OSError, ValueError, KeyError):
        return None
    try:
        if not repo.bare or not (path / _COMPLETE_MARKER).exists():
            raise ValueError("incomplete workspace")
        for name, sha in repo.refs.as_dict(_SEEN_PREFIX).items():
            del name
            commit = repo.object_store[sha]
            if not isinstance(commit, objects.Commit):
                raise ValueError("recorded head is not a commit")
            if commit.tree not in repo.object_store:
                raise ValueError("recorded head has no tree")
    except Exception:  # any inconsistency means: throw it away and clone again
        repo.close()
        return None
    return repo


@dataclass(frozen=True)
class RemoteRefs:
    """The remote's refs as the last fetch saw them (full names -> sha) and its symrefs."""

    refs: Mapping[Ref, ObjectID]
    symrefs: Mapping[Ref, Ref]

    def head(self, branch: str) -> ObjectID | None:
        """The sha of `branch` on the remote, or None when it does not exist."""
        return self.refs.get(branch_ref(branch))


def branch_ref(branch: str) -> Ref:
    """`main` -> `refs/heads/main`."""
    return Ref(b"refs/heads/" + branch.encode("utf-8"))


def fetch(
    repo: Repo,
    remote: urls.Remote,
    branches: Sequence[str],
    *,
    depth: int = 1,
    deepen: bool = False,
    secret_name: str | None = None,
) -> RemoteRefs:
    """Fetch the heads of `branches` that are not yet in the store; return the remote's refs.

    With `deepen`, the heads are asked for again at `depth` even when present, to get history.
    """
    wanted = [branch_ref(b) for b in branches]

    def determine_wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
        shas = [refs[r] for r in wanted if refs.get(r)]
        return [s for s in dict.fromkeys(shas) if s and (deepen or s not in repo.object_store)]

    with deadlines.phase("fetch"):
        try:
            result = remote.client.fetch(
                remote.path, repo, determine_wants=determine_wants, depth=depth
            )
        except errors.PromotionError:
            raise
        except Exception as exc:
            raise failures.translate(exc, remote.display, secret_name=secret_name) from None
        failures.raise_if_expired(remote.display)
    refs = {name: sha for name, sha in result.refs.items() if sha is not None}
    for name in wanted:
        sha = refs.get(name)
        if sha is not None and sha in repo.object_store:
            repo.refs[name] = sha
    (Path(repo.path) / _COMPLETE_MARKER).touch()
    return RemoteRefs(refs=refs, symrefs=dict(result.symrefs))


_PENDING_PREFIX = b"refs/imagepromoter/pending/"


def pending(repo: Repo, branch: str) -> ObjectID | None:
    """The commit of a push to `branch` whose answer we never got, if any."""
    ref = Ref(_PENDING_PREFIX + branch.encode("utf-8"))
    try:
        sha = repo.refs[ref]
    except KeyError:
        return None
    return sha if sha in repo.object_store else None


def set_pending(repo: Repo, branch: str, sha: ObjectID | None) -> None:
    """Remember (or, with None, forget) a push to `branch` whose outcome is unknown."""
    ref = Ref(_PENDING_PREFIX + branch.encode("utf-8"))
    if sha is None:
        with contextlib.suppress(KeyError):
            del repo.refs[ref]
    else:
        repo.refs[ref] = sha


def record_head(repo: Repo, branch: str, sha: ObjectID) -> None:
    """Remember that the remote's `branch` is at `sha` (after our own push), as a future "have"."""
    repo.refs[branch_ref(branch)] = sha


def ls_remote(remote: urls.Remote, *, secret_name: str | None = None) -> RemoteRefs:
    """The remote's refs and symrefs, without fetching anything."""
    with deadlines.phase("ls-remote"):
        try:
            result = remote.client.get_refs(remote.path)
        except Exception as exc:
            raise failures.translate(exc, remote.display, secret_name=secret_name) from None
        failures.raise_if_expired(remote.display)
    refs = {name: sha for name, sha in result.refs.items() if sha is not None}
    return RemoteRefs(refs=refs, symrefs=dict(result.symrefs))


def default_branch(remote_refs: RemoteRefs, display: str) -> str:
    """The branch the remote's HEAD points at (what `git clone` would check out)."""
    target: bytes | None = remote_refs.symrefs.get(Ref(b"HEAD"))
    if target is None:
        head = remote_refs.refs.get(Ref(b"HEAD"))
        same = sorted(
            n for n, s in remote_refs.refs.items() if s == head and n.startswith(b"refs/heads/")
        )
        preferred = [n for n in (b"refs/heads/main", b"refs/heads/master") if n in same]
        target = (preferred or same or [None])[0]
    if target is None or not target.startswith(b"refs/heads/"):
        raise errors.GitError(
            f"{display} has no default branch (an empty repository?); push a first commit or "
            "set spec.git.branch"
        )
    return str(target.removeprefix(b"refs/heads/").decode("utf-8"))


def ancestors(repo: Repo, start: ObjectID, limit: int) -> tuple[set[ObjectID], bool]:
    """Commits reachable from `start` that are in the store (up to `limit`), and whether the
    walk was complete (reached root commits) rather than cut by the shallow boundary or limit."""
    shallow = repo.get_shallow()
    seen: set[ObjectID] = set()
    stack = [start]
    complete = True
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        if len(seen) >= limit or sha not in repo.object_store:
            complete = False
            continue
        seen.add(sha)
        if sha in shallow:
            complete = False
            continue
        commit = repo.object_store[sha]
        assert isinstance(commit, objects.Commit)
        stack.extend(commit.parents)
    return seen, complete
