"""GitWriter: a batch of promotions, one commit each, pushed in one compare-and-swap push.

One `write_batch` call (`write` is a batch of one):
1. Resolves the branch (spec.git.branch, or the remote HEAD's branch) and takes the in-process
   lock of the (URL, branch) workspace, so writers on one repository never push over each other.
2. Fetches the branch head (and pushBranch's, if set) into the shallow bare workspace, once for
   the batch; nothing is transferred when the heads have not moved.
3. Runs the Planners in order (git/chain.py): plan i reads the tree of commit i-1, and a
   non-empty changeset becomes its own commit (author from its changeset or the spec, committer
   = the operator, its own message). An empty changeset commits nothing (idempotent); a plan
   that raises fails only its own entry. A dry run builds the chain in memory and stops here.
   One batch plans at a time (`_planning`): planning is CPU work that a process's threads run
   one at a time anyway, and interleaved, four batches finished planning together and then
   pushed together, leaving the CPU idle during the pushes; one at a time, each batch's push and
   the next fetch overlap the next batch's planning.
4. Pushes the chain's tip with compare-and-swap, sending exactly the objects the chain created.
   Dulwich's `send_pack` does not raise when the server refuses a ref, and a server that allows
   non-fast-forward pushes would accept a commit built on a stale parent and drop someone else's
   work. So `update_refs` sends nothing unless the remote ref still equals the base we built on,
   the command we send carries that base as the old value (git's receive-pack then refuses to
   update if the ref moved in between), and every `ref_status` entry is inspected. On a lost
   race the head is fetched again and every Planner re-runs on the new content from scratch
   (never a merge), up to `retries` times with jittered backoff; then PushRejected. A refusal
   that is not a race (the ref did not move: a hook, a protected branch) is PushRejected at once
   with the server's words. A failed push fails every entry that had a commit (and those whose
   changeset was empty only thanks to one); the others stay UpToDate.

The pushBranch rule (which head to build on, which ref to move) and the recognition of a push
whose answer was lost are in git/heads.py.

Deadlines and limits: `write(..., deadline=)` takes the pass's deadline (a time.monotonic()
instant) and runs under a `deadlines.Watchdog`, which ends every socket and ssh process of the
write at that instant; the GitError then names the phase (fetch, push, ls-remote) and the remote.
Waiting for the workspace lock (another CR on the same repository and branch) and for one of the
`max_per_host` connection slots of the git host is bounded by the same deadline.

A push whose answer never came (the deadline ended it, the connection dropped) may still have
landed. Its tip is kept as the workspace's pending ref; the next batch that finds that commit at
the remote tip, or in the tip's ancestry, reports it (the tip, not the CR's own commit of that
chain) as WriteResult.commit of every entry whose targets already hold our values, so the status
shows it instead of ''.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

from dulwich.object_store import BaseObjectStore, MemoryObjectStore, OverlayObjectStore
from dulwich.objects import ObjectID
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref
from dulwich.repo import Repo

from imagepromoter import changes, credentials, errors, spec
from imagepromoter.git import chain, deadlines, failures, heads, packs, urls, workspace

logger = logging.getLogger(__name__)

DEFAULT_COMMITTER = "imagepromoter <imagepromoter@localhost>"
DEFAULT_MAX_FILE_BYTES = 5 * 2**20
DEFAULT_MAX_PER_HOST = 4  # git operations at once against one host


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
        self._planning = threading.Lock()  # one batch's chain.build at a time (module doc, 3.)
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
        """One plan: `write_batch([plan])`'s entry, raised when it is an exception."""
        (answer,) = self.write_batch(git, creds, [plan], dry_run=dry_run, deadline=deadline)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def write_batch(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plans: Sequence[changes.Planner],
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> list[changes.WriteResult | BaseException]:
        """Plan each on the tree the previous left, one commit each, one CAS push of the tip.

        One entry per plan, in order: its WriteResult, or the exception that failed it (its own
        planner's, or the fetch's or push's for every entry that needed a commit). `deadline`
        is a time.monotonic() instant by which every network wait ends. See the module doc.
        """
        plans = list(plans)
        if not plans:
            return []
        try:
            return self._batch(git, creds, plans, dry_run=dry_run, deadline=deadline)
        except Exception as exc:  # every entry shares a failure before any planning
            return [exc for _ in plans]

    def _batch(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plans: list[changes.Planner],
        *,
        dry_run: bool,
        deadline: float | None,
    ) -> list[changes.WriteResult | BaseException]:
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
                    return self._batch_locked(remote, path, git, branch, plans, dry_run=dry_run)
                except errors.PromotionError:
                    raise
                except (KeyError, ValueError, AssertionError, OSError) as exc:
                    # Missing objects or unreadable files: the workspace is damaged. Start over
                    # from a fresh clone once; a second failure is reported.
                    logger.warning(
                        "workspace %s damaged (%s); re-cloning", path, type(exc).__name__
                    )
                    workspace.discard(path)
                    return self._batch_locked(remote, path, git, branch, plans, dry_run=dry_run)

    def _host_slot(self, host: str) -> threading.BoundedSemaphore:
        with self._hosts_lock:
            slot = self._hosts.get(host)
            if slot is None:
                slot = self._hosts[host] = threading.BoundedSemaphore(self.max_per_host)
            return slot

    def _batch_locked(
        self,
        remote: urls.Remote,
        path: Path,
        git: spec.GitSpec,
        branch: str,
        plans: list[changes.Planner],
        *,
        dry_run: bool,
    ) -> list[changes.WriteResult | BaseException]:
        target = git.push_branch or branch
        built: chain.Chain | None = None
        for attempt in range(self.retries + 1):
            with workspace.open_repo(path) as repo:
                chosen = heads.prepare(repo, remote, git, branch, committer=self.committer)
                store: BaseObjectStore = repo.object_store
                if dry_run:  # the chain is built in memory: the workspace is left as it was
                    scratch = MemoryObjectStore()
                    store = OverlayObjectStore([scratch, repo.object_store], add_store=scratch)
                with deadlines.bounded(self._planning, "another batch's planning to finish"):
                    built = chain.build(
                        store,
                        chosen.base,
                        plans,
                        branch=target,
                        author=f"{git.author.name} <{git.author.email}>",
                        committer=self.committer,
                        max_file_bytes=self.max_file_bytes,
                    )
                if dry_run:
                    return built.outcome(dry_run=True)
                landed = heads.pending_landed(repo, remote, git, chosen, target)
                if landed is not None:
                    logger.info(
                        "push of %s to %s %s had no answer but landed; reporting it",
                        landed.decode()[:7],
                        remote.display,
                        target,
                    )
                if built.tip == built.base:
                    return built.outcome(landed=landed)
                try:
                    self._push(
                        repo,
                        remote,
                        chosen,
                        built,
                        target,
                        secret_name=git.secret_ref,
                    )
                except _LostRace:
                    logger.info(
                        "push of %d commits to %s %s lost a race (attempt %d); re-planning the "
                        "batch on the new head",
                        sum(1 for link in built.links if link.commit is not None),
                        remote.display,
                        target,
                        attempt + 1,
                    )
                except errors.PromotionError as exc:
                    return built.outcome(failed=exc, landed=landed)
                else:
                    workspace.record_head(repo, target, built.tip)
                    return built.outcome(pushed=True, landed=landed)
            if attempt < self.retries:
                pause = random.uniform(0, self.backoff * 2**attempt)  # noqa: S311
                watchdog = deadlines.current()
                left = watchdog.remaining() if watchdog is not None else None
                self._sleep(pause if left is None else min(pause, left))
                try:
                    failures.raise_if_expired(remote.display)
                except errors.PromotionError as exc:
                    return built.outcome(failed=exc)
        assert built is not None
        return built.outcome(
            failed=errors.PushRejected(
                f"pushing to {target} at {remote.display} lost to other writers "
                f"{self.retries + 1} times in a row; will retry at the next interval"
            )
        )

    def _push(
        self,
        repo: Repo,
        remote: urls.Remote,
        attempt: heads.Attempt,
        built: chain.Chain,
        target: str,
        *,
        secret_name: str | None,
    ) -> None:
        """Compare-and-swap push of the chain's tip to `attempt.ref`; raise _LostRace or
        PushRejected.

        Until the server answers, the tip is the workspace's pending push to `target`.
        """
        commit = built.tip
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
                    remote.path, update_refs, generate_pack_data=_pack_data(repo, built)
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
    repo: Repo, built: chain.Chain
) -> Callable[..., tuple[int, Iterator[UnpackedObject]]]:
    """The pack to send: exactly the objects the batch's chain of commits created.

    The remote has the chain's base (the compare-and-swap guarantees it: its ref holds the base,
    or, when creating pushBranch, `branch` does), so it lacks only the new commits, the changed
    blobs and the trees on their paths. Sending just those avoids walking the parent's whole tree to
    find what to exclude (Dulwich's generic search), which dominated a push in a large repository.
    git's receive-pack still checks connectivity, so a wrong guess is refused, not corrupting.
    They go as the chain wrote them to the workspace (git/packs.py), compressed once.
    """

    def generate(
        have: AbstractSet[ObjectID],
        want: AbstractSet[ObjectID],
        *,
        ofs_delta: bool = True,
        progress: Callable[[bytes], None] | None = None,
    ) -> tuple[int, Iterator[UnpackedObject]]:
        if set(want) == {built.tip}:
            if built.pack is not None:
                return len(built.pack.records), iter(built.pack.records)
            return len(built.created), (packs.unpacked(packs.whole(obj)) for obj in built.created)
        return repo.generate_pack_data(set(have), set(want), ofs_delta=ofs_delta)

    return generate


def _host(url: str) -> str:
    """host[:port] of a git URL (scp-like `user@host:path` too), for the per-host limit."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or url
        return f"{host}:{parts.port}" if parts.port else host
    return url.rpartition("@")[2].partition(":")[0] or url
