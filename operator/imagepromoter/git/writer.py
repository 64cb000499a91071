"""GitWriter: one atomic commit per promotion, pushed with compare-and-swap.

One `write` call:
1. Resolves the branch (spec.git.branch, or the remote HEAD's branch) and takes the in-process
   lock of the (URL, branch) workspace, so CRs on one repository never push over each other.
2. Fetches the branch head (and pushBranch's, if set) into the shallow bare workspace; nothing is
   transferred when the heads have not moved.
3. Calls the Planner with a reader of the base commit's tree; an empty changeset means every
   target already holds its value: no commit (idempotent). A dry run stops here.
4. Writes blobs, trees and one commit (author from the spec, committer = the operator) straight
   into the object store, for all of the CR's edits at once.
5. Pushes with compare-and-swap. Dulwich's `send_pack` does not raise when the server refuses a
   ref, and a server that allows non-fast-forward pushes would accept a commit built on a stale
   parent and drop someone else's work. So `update_refs` sends nothing unless the remote ref still
   equals the parent we built on, the command we send carries that parent as the old value (git's
   receive-pack then refuses to update if the ref moved in between), and every `ref_status` entry
   is inspected. On a lost race the head is fetched again and the Planner re-runs on the new
   content from scratch (never a merge), up to `retries` times with jittered backoff; then
   PushRejected. A refusal that is not a race (the ref did not move: a hook, a protected branch)
   is PushRejected at once with the server's words.

pushBranch (a review branch), the exact rule:
- absent: it is created at the promotion commit built on `branch`'s head;
- present and containing `branch`'s head (it is `branch` plus review commits): the promotion is
  committed on top of pushBranch's head (a fast-forward; nothing is lost anywhere, and a second
  run sees its own edit there and commits nothing);
- present but not containing `branch`'s head (`branch` moved on, e.g. the review was merged or
  someone pushed to `branch`): the promotion is rebuilt on `branch`'s head and pushBranch is moved
  there, but only if every commit on pushBranch that is not on `branch` was made by this operator
  (an older promotion that the new one supersedes). If anyone else committed to pushBranch, or its
  history cannot be checked within `HISTORY_LIMIT` commits, it is PushRejected: merge or delete
  the review branch. `branch` itself is never written in this mode, so no commit pushed to
  `branch` by someone else can be lost.

Deadlines and limits: `write(..., deadline=)` takes the pass's deadline (a time.monotonic()
instant) and runs under a `deadlines.Watchdog`, which ends every socket and ssh process of the
write at that instant; the GitError then names the phase (fetch, push, ls-remote) and the remote.
Waiting for the workspace lock (another CR on the same repository and branch) and for one of the
`max_per_host` connection slots of the git host is bounded by the same deadline.

A push whose answer never came (the deadline ended it, the connection dropped) may still have
landed. Its commit is kept as the workspace's pending ref; the next write that finds that commit
at the remote tip, or in the tip's ancestry, with the targets already holding our values,
reports that commit as its own (WriteResult.commit), so the status shows it instead of ''.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from dulwich import objects, pack
from dulwich.objects import ObjectID
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref
from dulwich.repo import Repo

from imagepromoter import changes, credentials, errors, spec
from imagepromoter.git import deadlines, failures, trees, urls, workspace

logger = logging.getLogger(__name__)

DEFAULT_COMMITTER = "imagepromoter <imagepromoter@localhost>"
DEFAULT_MAX_FILE_BYTES = 5 * 2**20
HISTORY_LIMIT = 50  # commits examined on a pushBranch that diverged from branch
DEFAULT_MAX_PER_HOST = 4  # git operations at once against one host


@dataclass(frozen=True)
class _Attempt:
    """What one try built on: the base commit, the ref to move, and the value it must still hold."""

    base: ObjectID
    ref: Ref
    expected: ObjectID | None  # None: the ref must not exist yet


class _LostRace(Exception):
    """The remote ref moved between our fetch and our push."""


class GitWriter:
    """Commits a Planner's changeset to a remote branch; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        retries: int = 5,
        committer: str = DEFAULT_COMMITTER,
        timeout: float = urls.DEFAULT_TIMEOUT,
        backoff: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        max_per_host: int = DEFAULT_MAX_PER_HOST,
        ssh_alive_interval: int = deadlines.SSH_ALIVE_INTERVAL,
        ssh_alive_count: int = deadlines.SSH_ALIVE_COUNT,
    ) -> None:
        self.max_per_host = max_per_host
        self.ssh_alive_interval = ssh_alive_interval
        self.ssh_alive_count = ssh_alive_count
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._hosts_lock = threading.Lock()
        self.workspaces = workspace.Workspaces(workdir)
        self.max_file_bytes = max_file_bytes
        self.retries = retries
        self.committer = committer
        self.timeout = timeout
        self.backoff = backoff
        self._sleep = sleep

    def write(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plan: changes.Planner,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> changes.WriteResult:
        """Plan on the branch head, commit, and push with compare-and-swap (see module doc).

        `deadline` is a time.monotonic() instant by which every network wait ends.
        """
        with (
            deadlines.Watchdog(deadline),
            urls.connect(
                git.url, creds, timeout=self.timeout, secret_name=git.secret_ref
            ) as remote,
        ):
            deadlines.instrument(
                remote.client,
                alive_interval=self.ssh_alive_interval,
                alive_count=self.ssh_alive_count,
            )
            host = _host(git.url)
            slot = self._host_slot(host)
            busy = f"a free connection to {host}"
            branch = git.branch
            if not branch:
                with deadlines.bounded(slot, busy):
                    refs = workspace.ls_remote(remote, secret_name=git.secret_ref)
                branch = workspace.default_branch(refs, remote.display)
            path = self.workspaces.path(git.url, branch)
            what = f"another promotion into {remote.display} {branch} to finish"
            # the workspace lock first: a writer queued behind another on the same branch holds
            # no connection slot that writers to other repositories on this host could use
            with (
                deadlines.bounded(self.workspaces.lock(path), what),
                deadlines.bounded(slot, busy),
            ):
                try:
                    return self._write_locked(remote, path, git, branch, plan, dry_run=dry_run)
                except errors.PromotionError:
                    raise
                except (KeyError, ValueError, AssertionError, OSError) as exc:
                    # Missing objects or unreadable files: the workspace is damaged. Start over
                    # from a fresh clone once; a second failure is reported.
                    logger.warning(
                        "workspace %s damaged (%s); re-cloning", path, type(exc).__name__
                    )
                    workspace.discard(path)
                    return self._write_locked(remote, path, git, branch, plan, dry_run=dry_run)

    def _host_slot(self, host: str) -> threading.BoundedSemaphore:
        with self._hosts_lock:
            slot = self._hosts.get(host)
            if slot is None:
                slot = self._hosts[host] = threading.BoundedSemaphore(self.max_per_host)
            return slot

    def _write_locked(
        self,
        remote: urls.Remote,
        path: Path,
        git: spec.GitSpec,
        branch: str,
        plan: changes.Planner,
        *,
        dry_run: bool,
    ) -> changes.WriteResult:
        target = git.push_branch or branch
        for attempt in range(self.retries + 1):
            with workspace.open_repo(path) as repo:
                chosen = self._prepare(repo, remote, git, branch)
                base_commit = repo.object_store[chosen.base]
                assert isinstance(base_commit, objects.Commit)
                read = trees.reader(
                    repo.object_store, base_commit.tree, max_file_bytes=self.max_file_bytes
                )
                changeset = plan(read)
                result = changes.WriteResult(
                    commit=None, branch=target, base=chosen.base.decode(), changeset=changeset
                )
                if dry_run:
                    return result
                landed = self._pending_landed(repo, remote, git, chosen, target)
                if landed is not None and not changeset.changes:
                    logger.info(
                        "push of %s to %s %s had no answer but landed; reporting it",
                        landed.decode()[:7],
                        remote.display,
                        target,
                    )
                    return dataclasses.replace(result, commit=landed.decode())
                if not changeset.changes:
                    return result
                commit, created = self._commit(repo, base_commit, changeset, git.author)
                try:
                    self._push(
                        repo, remote, chosen, commit, created, target, secret_name=git.secret_ref
                    )
                except _LostRace:
                    logger.info(
                        "push to %s %s lost a race (attempt %d); re-planning on the new head",
                        remote.display,
                        target,
                        attempt + 1,
                    )
                else:
                    workspace.record_head(repo, target, commit)
                    return changes.WriteResult(
                        commit=commit.decode(),
                        branch=target,
                        base=chosen.base.decode(),
                        changeset=changeset,
                    )
            if attempt < self.retries:
                pause = random.uniform(0, self.backoff * 2**attempt)  # noqa: S311
                watchdog = deadlines.current()
                left = watchdog.remaining() if watchdog is not None else None
                self._sleep(pause if left is None else min(pause, left))
                failures.raise_if_expired(remote.display)
        raise errors.PushRejected(
            f"pushing to {target} at {remote.display} lost to other writers {self.retries + 1} "
            "times in a row; will retry at the next interval"
        )

    def _pending_landed(
        self, repo: Repo, remote: urls.Remote, git: spec.GitSpec, chosen: _Attempt, target: str
    ) -> ObjectID | None:
        """Our unanswered push's commit, if the remote's `target` is it or descends from it.

        The pending record is dropped either way: it is answered now.
        """
        sha = workspace.pending(repo, target)
        if sha is None:
            return None
        workspace.set_pending(repo, target, None)
        tip = chosen.expected
        if tip is None:
            return None
        if tip == sha:
            return sha
        seen, complete = workspace.ancestors(repo, tip, HISTORY_LIMIT)
        if sha not in seen and not complete:
            names = [target]
            workspace.fetch(
                repo, remote, names, depth=HISTORY_LIMIT, deepen=True, secret_name=git.secret_ref
            )
            seen, complete = workspace.ancestors(repo, tip, HISTORY_LIMIT)
        return sha if sha in seen else None

    def _prepare(self, repo: Repo, remote: urls.Remote, git: spec.GitSpec, branch: str) -> _Attempt:
        """Fetch the heads and decide what to build on and which ref to move (pushBranch rule)."""
        secret = git.secret_ref
        push_branch = git.push_branch if git.push_branch and git.push_branch != branch else None
        names = [branch] + ([push_branch] if push_branch else [])
        seen = workspace.fetch(repo, remote, names, secret_name=secret)
        head = seen.head(branch)
        if head is None:
            raise errors.GitError(
                f"branch {branch} does not exist at {remote.display}; check spec.git.branch "
                "(or create the branch)"
            )
        branch_ref = workspace.branch_ref(branch)
        if push_branch is None:
            return _Attempt(base=head, ref=branch_ref, expected=head)
        push_ref = workspace.branch_ref(push_branch)
        push_head = seen.head(push_branch)
        if push_head is None:
            return _Attempt(base=head, ref=push_ref, expected=None)
        if push_head == head:
            return _Attempt(base=push_head, ref=push_ref, expected=push_head)
        on_push, push_complete = workspace.ancestors(repo, push_head, HISTORY_LIMIT)
        if head not in on_push and not push_complete:
            workspace.fetch(
                repo, remote, names, depth=HISTORY_LIMIT, deepen=True, secret_name=secret
            )
            on_push, push_complete = workspace.ancestors(repo, push_head, HISTORY_LIMIT)
        if head in on_push:
            return _Attempt(base=push_head, ref=push_ref, expected=push_head)
        on_branch, branch_complete = workspace.ancestors(repo, head, HISTORY_LIMIT)
        only_on_push = on_push - on_branch
        boundary_reached = push_complete or any(
            parent in on_branch for sha in only_on_push for parent in _commit(repo, sha).parents
        )
        others = [
            sha for sha in only_on_push if _commit(repo, sha).committer != self.committer.encode()
        ]
        if others or not boundary_reached:
            who = "commits by others" if others else "history that could not be checked"
            raise errors.PushRejected(
                f"pushBranch {push_branch} at {remote.display} has diverged from {branch} and "
                f"holds {who}; merge {push_branch} into {branch} or delete it, and the next "
                "promotion recreates it"
            )
        del branch_complete
        return _Attempt(base=head, ref=push_ref, expected=push_head)

    def _commit(
        self,
        repo: Repo,
        parent: objects.Commit,
        changeset: changes.Changeset,
        author: spec.Author,
    ) -> tuple[ObjectID, list[objects.ShaFile]]:
        """Write blobs, trees and the commit to the object store; return it and all new objects."""
        tree_id, created = trees.write_changes(repo.object_store, parent.tree, changeset.changes)
        commit = objects.Commit()
        commit.tree = tree_id
        commit.parents = [parent.id]
        commit.author = f"{author.name} <{author.email}>".encode()
        commit.committer = self.committer.encode("utf-8")
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        message = (
            changeset.message if changeset.message.endswith("\n") else changeset.message + "\n"
        )
        commit.message = message.encode("utf-8")
        repo.object_store.add_object(commit)
        return commit.id, [*created, commit]

    def _push(
        self,
        repo: Repo,
        remote: urls.Remote,
        attempt: _Attempt,
        commit: ObjectID,
        created: list[objects.ShaFile],
        target: str,
        *,
        secret_name: str | None,
    ) -> None:
        """Compare-and-swap push of `commit` to `attempt.ref`; raise _LostRace or PushRejected.

        Until the server answers, `commit` is the workspace's pending push to `target`.
        """
        moved: list[ObjectID | None] = []

        def update_refs(remote_refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            current = remote_refs.get(attempt.ref)
            if current != attempt.expected:
                moved.append(current)
                return {}  # send nothing: we built on a head that is no longer there
            return {attempt.ref: commit}

        workspace.set_pending(repo, target, commit)
        with deadlines.phase("push"):
            try:
                result = remote.client.send_pack(
                    remote.path, update_refs, generate_pack_data=_pack_data(repo, commit, created)
                )
            except errors.PromotionError:
                raise
            except Exception as exc:
                raise failures.translate(exc, remote.display, secret_name=secret_name) from None
            failures.raise_if_expired(remote.display)
        workspace.set_pending(repo, target, None)  # answered: success or refusal, not unknown
        if moved:
            raise _LostRace()
        statuses = result.ref_status
        if statuses is None:
            raise errors.GitError(
                f"{remote.display} did not report whether the push of {attempt.ref.decode()} "
                "succeeded; will check again at the next interval"
            )
        problem = statuses.get(attempt.ref, "no status reported for the ref")
        other = {ref: msg for ref, msg in statuses.items() if msg is not None}
        if problem is None and not other:
            return
        reason = problem or "; ".join(f"{r.decode()}: {m}" for r, m in other.items())
        # A refusal is a lost race only if the ref really moved; otherwise (a hook, a protected
        # branch) retrying cannot help.
        now = workspace.ls_remote(remote, secret_name=secret_name).refs.get(attempt.ref)
        if now != attempt.expected:
            raise _LostRace()
        branch = attempt.ref.decode().removeprefix("refs/heads/")
        raise errors.PushRejected(
            f"{remote.display} refused the push to {branch}: "
            f"{urls.redact_text(str(reason))[:300]}; check the branch's protection rules and "
            "hooks, or set spec.git.pushBranch to push to a review branch"
        )


def _pack_data(
    repo: Repo, commit: ObjectID, created: list[objects.ShaFile]
) -> Callable[..., tuple[int, Iterator[UnpackedObject]]]:
    """The pack to send: exactly the objects this promotion created.

    The remote has the parent (the compare-and-swap guarantees it: its ref holds the parent, or,
    when creating pushBranch, `branch` does), so it lacks only the new commit, the changed blobs
    and the trees on their paths. Sending just those avoids walking the parent's whole tree to
    find what to exclude (Dulwich's generic search), which dominated a push in a large repository.
    git's receive-pack still checks connectivity, so a wrong guess is refused, not corrupting.
    """

    def generate(
        have: AbstractSet[ObjectID],
        want: AbstractSet[ObjectID],
        *,
        ofs_delta: bool = True,
        progress: Callable[[bytes], None] | None = None,
    ) -> tuple[int, Iterator[UnpackedObject]]:
        if set(want) == {commit}:
            return len(created), (pack.full_unpacked_object(obj) for obj in created)
        return repo.generate_pack_data(set(have), set(want), ofs_delta=ofs_delta)

    return generate


def _host(url: str) -> str:
    """host[:port] of a git URL (scp-like `user@host:path` too), for the per-host limit."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or url
        return f"{host}:{parts.port}" if parts.port else host
    return url.rpartition("@")[2].partition(":")[0] or url


def _commit(repo: Repo, sha: ObjectID) -> objects.Commit:
    commit = repo.object_store[sha]
    assert isinstance(commit, objects.Commit)
    return commit
