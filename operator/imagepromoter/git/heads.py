"""Which head a batch builds on and which ref it moves (the pushBranch rule), and lost answers.

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

`pending_landed`: a push whose answer never came may have landed. Its tip is the workspace's
pending ref; the next batch finds it at the remote tip or in the tip's ancestry (to
HISTORY_LIMIT commits) and reports it. The record is dropped either way: it is answered now.
"""

from __future__ import annotations

from dataclasses import dataclass

from dulwich import objects
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from imagepromoter import errors, spec
from imagepromoter.git import urls, workspace

HISTORY_LIMIT = 50  # commits examined on a pushBranch that diverged from branch


@dataclass(frozen=True)
class Attempt:
    """What one try built on: the base commit, the ref to move, and the value it must still hold."""

    base: ObjectID
    ref: Ref
    expected: ObjectID | None  # None: the ref must not exist yet


def pending_landed(
    repo: Repo, remote: urls.Remote, git: spec.GitSpec, chosen: Attempt, target: str
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


def prepare(
    repo: Repo, remote: urls.Remote, git: spec.GitSpec, branch: str, *, committer: str
) -> Attempt:
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
        return Attempt(base=head, ref=branch_ref, expected=head)
    push_ref = workspace.branch_ref(push_branch)
    push_head = seen.head(push_branch)
    if push_head is None:
        return Attempt(base=head, ref=push_ref, expected=None)
    if push_head == head:
        return Attempt(base=push_head, ref=push_ref, expected=push_head)
    on_push, push_complete = workspace.ancestors(repo, push_head, HISTORY_LIMIT)
    if head not in on_push and not push_complete:
        workspace.fetch(repo, remote, names, depth=HISTORY_LIMIT, deepen=True, secret_name=secret)
        on_push, push_complete = workspace.ancestors(repo, push_head, HISTORY_LIMIT)
    if head in on_push:
        return Attempt(base=push_head, ref=push_ref, expected=push_head)
    on_branch, branch_complete = workspace.ancestors(repo, head, HISTORY_LIMIT)
    only_on_push = on_push - on_branch
    boundary_reached = push_complete or any(
        parent in on_branch for sha in only_on_push for parent in _commit(repo, sha).parents
    )
    others = [sha for sha in only_on_push if _commit(repo, sha).committer != committer.encode()]
    if others or not boundary_reached:
        who = "commits by others" if others else "history that could not be checked"
        raise errors.PushRejected(
            f"pushBranch {push_branch} at {remote.display} has diverged from {branch} and "
            f"holds {who}; merge {push_branch} into {branch} or delete it, and the next "
            "promotion recreates it"
        )
    del branch_complete
    return Attempt(base=head, ref=push_ref, expected=push_head)


def _commit(repo: Repo, sha: ObjectID) -> objects.Commit:
    commit = repo.object_store[sha]
    assert isinstance(commit, objects.Commit)
    return commit
