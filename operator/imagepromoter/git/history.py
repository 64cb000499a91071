"""A target file's recent history, for the Held message: who changed the value, in which commit.

A new seam beside the writer rather than inside it: it reads the writer's own workspace (same
directory, same lock), so no second clone exists, and the writer's push path is untouched. The
workspace is shallow (depth 1), so the branch is fetched again at depth `limit` first; the walk
follows first parents from the head and stops at our last commit, the shallow boundary or `limit`
commits, whichever comes first. It is only run when a pass is held, and only best-effort: a hold
stands whatever this finds, so any failure reads as "no history" (the message says so). Like a
write, it runs under the pass deadline (git/deadlines.py): sockets, ssh and the lock wait end then.
"""

from __future__ import annotations

import logging

from dulwich import objects
from dulwich.object_store import BaseObjectStore
from dulwich.objects import ObjectID

from imagepromoter import credentials, errors, holds, spec
from imagepromoter.git import deadlines, trees, urls, workspace, writer

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 50


class History:
    """`reconcile.GitHistory` over a GitWriter's workspaces."""

    def __init__(self, git_writer: writer.GitWriter, *, limit: int = DEFAULT_LIMIT) -> None:
        self._writer = git_writer
        self.limit = limit

    def revisions(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        path: str,
        *,
        since: str | None,
        deadline: float | None = None,
    ) -> list[holds.Revision]:
        """The file at each commit from the branch head back (newest first; see module doc).

        `deadline` is a time.monotonic() instant by which every network wait ends.
        """
        try:
            with deadlines.Watchdog(deadline):
                return self._revisions(git, creds, path, since=since)
        except errors.PromotionError as exc:
            logger.info("history of %s not read: %s", path, exc.message)
        except Exception as exc:  # best effort: the hold stands without it
            logger.warning("history of %s not read: %s", path, type(exc).__name__)
        return []

    def _revisions(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        path: str,
        *,
        since: str | None,
    ) -> list[holds.Revision]:
        with urls.connect(
            git.url, creds, timeout=self._writer.timeout, secret_name=git.secret_ref
        ) as remote:
            deadlines.instrument(
                remote.client,
                alive_interval=self._writer.ssh_alive_interval,
                alive_count=self._writer.ssh_alive_count,
            )
            branch = git.branch or workspace.default_branch(
                workspace.ls_remote(remote, secret_name=git.secret_ref), remote.display
            )
            where = self._writer.workspaces.path(git.url, branch)
            busy = f"another promotion into {remote.display} {branch} to finish"
            with (
                deadlines.bounded(self._writer.workspaces.lock(where), busy),
                workspace.open_repo(where) as repo,
            ):
                seen = workspace.fetch(
                    repo,
                    remote,
                    [branch],
                    depth=self.limit,
                    deepen=True,
                    secret_name=git.secret_ref,
                )
                head = seen.head(branch)
                if head is None:
                    return []
                shallow = repo.get_shallow()
                found: list[holds.Revision] = []
                sha: ObjectID | None = head
                while sha is not None and sha in repo.object_store and len(found) < self.limit:
                    commit = repo.object_store[sha]
                    assert isinstance(commit, objects.Commit)
                    found.append(self._revision(repo.object_store, commit, path))
                    if (since and sha.decode() == since) or sha in shallow or not commit.parents:
                        break
                    sha = commit.parents[0]
                return found

    def _revision(
        self, store: BaseObjectStore, commit: objects.Commit, path: str
    ) -> holds.Revision:
        read = trees.reader(
            store,
            commit.tree,
            max_file_bytes=self._writer.max_file_bytes,
        )
        try:
            content: bytes | None = read(path)
        except errors.TargetError:
            content = None
        message = commit.message.decode("utf-8", "replace")
        return holds.Revision(
            sha=commit.id.decode(),
            author=commit.author.decode("utf-8", "replace"),
            summary=message.splitlines()[0] if message else "",
            content=content,
        )
