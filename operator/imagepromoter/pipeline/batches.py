"""Batches: promotions into one repository and branch gathered into one write, one push.

reconcile hands its write to `Batches.write` (reconcile.AsyncGitWriter). Submissions with the
same key are gathered into a group that the injected writer's `write_batch` writes in a thread:
one fetch, one commit per CR, one compare-and-swap push. Each submitter gets its own entry back,
its WriteResult or its exception (TargetError, Held, ...), exactly what a write of its own gives.

The key: URL, branch, pushBranch, insecure, dry run, the Secret's name (messages name it) and an
HMAC of the credentials' values under a per-process key, because a Secret's name says nothing
about its token: two namespaces' `git-push` Secrets may hold different tokens and must not share
a push, and the identity cannot be turned back into a token.

When a group is written:
- window (the operator, `--batch-window`): the first submission opens a window of `window`
  seconds, and the group stays open while members keep coming: it is written once a whole
  window passed since the last new member and the key's previous batch is done (a burst that
  arrives within one window waits that window and the burst's own spread), so submissions arriving
  while a batch is written join the next one. Passes still on their way hold it a little longer:
  a pass that may write into a repository and branch says so when it starts (`expect`, settled
  when it submits or ends), and the group waits until no expected pass of its repositories is
  still scanning or planning. All this at most `hold` seconds (DEFAULT_HOLD), and never so long
  that a member's pass deadline cannot cover the write. So a thousand passes that start together
  but reach their write over several seconds (one event loop, two cores) make one push, not one
  per window. `window=0`: one turn of the loop, nothing held.
- barrier (`window=None`, `imagepromoter promote`): the caller counts the passes in flight
  (`participants(n)`, `leave()`); the open groups are written as soon as every pass in flight is
  waiting on a write or has finished: no added latency, and the same groups on every run.

A batch's deadline is the latest of its members'. A member whose own deadline passes while its
group is still gathering leaves it with a GitError; once the group is being written, its wait is
bounded by its pass budget (reconcile's budget.phase, whose backstop lets the writer's own
deadline error, naming the phase, arrive first). A cancelled member is left out of its group.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import hashlib
import hmac
import logging
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from imagepromoter import changes, credentials, errors, reconcile, spec

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 2.0  # seconds (API.md: --batch-window)
DEFAULT_HOLD = 20.0  # seconds a group may stay open, from when it opened
WRITE_RESERVE = 15.0  # seconds of a member's pass deadline left for the write itself
WORKERS = 16  # threads writing batches at once (one per repository and branch at most)

_POOL = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="imagepromoter-batch")

Answer = changes.WriteResult | BaseException


@runtime_checkable
class BatchWriter(Protocol):
    def write_batch(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plans: Sequence[changes.Planner],
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> list[Answer]:
        """One entry per plan, in order (git/writer.py); `deadline` a time.monotonic() instant."""
        ...


class OneByOne:
    """A writer without write_batch (the tests' in-memory ones) as a BatchWriter: plan by plan."""

    def __init__(self, inner: reconcile.GitWriter) -> None:
        self.inner = inner

    def write_batch(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plans: Sequence[changes.Planner],
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> list[Answer]:
        """Each plan written on its own, in order; a failure is its entry."""
        answers: list[Answer] = []
        for plan in plans:
            try:
                answers.append(
                    self.inner.write(git, creds, plan, dry_run=dry_run, deadline=deadline)
                )
            except Exception as exc:
                answers.append(exc)
        return answers


class Expected:
    """A pass that may write into `repository` (its URL and branch, as its spec says)."""

    def __init__(self, owner: Batches, repository: Hashable) -> None:
        self.repository = repository
        self._owner: Batches | None = owner

    def settle(self) -> None:
        """The pass submitted its write, or ended without one (idempotent)."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._settle(self.repository)


@dataclass
class _Member:
    git: spec.GitSpec
    creds: credentials.GitCredentials | None
    plan: changes.Planner
    deadline: float | None
    future: asyncio.Future[changes.WriteResult]
    repository: Hashable | None = None  # of the member's Expected, if it had one


@dataclass
class _Group:
    key: Hashable
    dry_run: bool
    members: list[_Member] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None
    gathering: bool = True  # False once dispatched: no member joins or leaves any more
    arrivals: int = 0  # members that joined (some may have left since)
    last_arrival: float = 0.0  # the clock when the last one joined


class Batches:
    """The async git writer of the pipeline; see the module docstring."""

    def __init__(
        self,
        inner: BatchWriter | reconcile.GitWriter,
        *,
        window: float | None = DEFAULT_WINDOW,
        hold: float = DEFAULT_HOLD,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        executor: concurrent.futures.Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window is not None and window < 0:
            raise ValueError(f"the batch window must not be negative (got {window:g}s)")
        self.inner: BatchWriter = inner if isinstance(inner, BatchWriter) else OneByOne(inner)
        self.window = window
        self.hold = hold
        self._sleep = sleep
        self._clock = clock
        self._executor = executor or _POOL
        self._open: dict[Hashable, _Group] = {}
        self._writing: dict[Hashable, asyncio.Task[None]] = {}
        self._in_flight = 0  # barrier mode: passes that have not finished
        self._waiting = 0  # submitters not answered yet
        self._expected: collections.Counter[Hashable] = collections.Counter()  # by repository
        self._settled = asyncio.Event()  # replaced (after being set) whenever one settles
        self._who_key = secrets.token_bytes(32)
        self.batches = 0  # write_batch calls made (for tests and the benchmark)
        self.written = 0  # plans handed to them

    @property
    def waiting(self) -> int:
        """Submitters not answered yet (gathering or being written)."""
        return self._waiting

    def participants(self, count: int) -> None:
        """Barrier mode: `count` more passes are in flight; each calls `leave()` when it ends."""
        self._in_flight += count

    def leave(self) -> None:
        """Barrier mode: a pass in flight has finished (whether or not it wrote)."""
        self._in_flight -= 1
        self._flush_if_all_waiting()

    def expect(self, repository: Hashable) -> Expected:
        """Window mode: a pass that may write into `repository` has started; settle it after."""
        self._expected[repository] += 1
        return Expected(self, repository)

    def _settle(self, repository: Hashable) -> None:
        self._expected[repository] -= 1
        if self._expected[repository] <= 0:
            del self._expected[repository]
        settled, self._settled = self._settled, asyncio.Event()
        settled.set()

    async def write(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plan: changes.Planner,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
        expected: Expected | None = None,
    ) -> changes.WriteResult:
        """This plan's entry of the batch it joins: its WriteResult, or its exception raised.

        `expected`: the pass's own `expect(...)`, settled here (it has arrived).
        """
        key = self._key(git, creds, dry_run)
        future: asyncio.Future[changes.WriteResult] = asyncio.get_running_loop().create_future()
        author = f"{git.author.name} <{git.author.email}>"
        repository = expected.repository if expected is not None else None
        member = _Member(git, creds, changes.authored(plan, author), deadline, future, repository)
        if expected is not None:
            expected.settle()
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = _Group(key, dry_run)
            if self.window is not None:
                group.timer = asyncio.create_task(self._after_window(group, self.window))
        group.members.append(member)
        group.arrivals += 1
        group.last_arrival = self._clock()
        self._waiting += 1
        expiry = None
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            expiry = asyncio.get_running_loop().call_later(delay, self._expire, group, member)
        try:
            self._flush_if_all_waiting()
            return await future
        finally:
            self._waiting -= 1
            if expiry is not None:
                expiry.cancel()

    def _expire(self, group: _Group, member: _Member) -> None:
        """The member's pass deadline came while its group was still gathering: it leaves."""
        if not group.gathering or member.future.done():
            return
        group.members.remove(member)
        member.future.set_exception(
            errors.GitError(
                f"the pass deadline ran out while this promotion waited to be gathered with "
                f"others into one push to {_display(member.git.url)}; will retry "
                "(imagepromoter run --batch-window sets how long promotions are gathered)"
            )
        )

    def _flush_if_all_waiting(self) -> None:
        if self.window is None and self._open and self._waiting >= self._in_flight:
            for group in list(self._open.values()):
                self._dispatch(group)

    async def _after_window(self, group: _Group, window: float) -> None:
        slept, wait = 0.0, window
        while True:
            arrived = group.arrivals
            await self._sleep(wait)
            slept += wait
            if window <= 0 or group.arrivals == arrived:
                break  # nobody joined while it waited: a whole window was quiet
            wait = group.last_arrival + window - self._clock()  # the rest of a quiet window
            if wait <= 0 or wait > self._room(group, slept):
                break
        if window > 0:
            await self._until_settled(group, slept)
        previous = self._writing.get(group.key)
        if previous is not None:  # the group stays open: late arrivals still join it
            await asyncio.wait([previous])
        self._dispatch(group)

    async def _until_settled(self, group: _Group, slept: float) -> None:
        """Hold the group while expected passes of its repositories are still on their way."""
        budget = self._room(group, slept)
        if budget <= 0 or not self._pending(group):
            return
        cap = asyncio.ensure_future(self._sleep(budget))
        try:
            while self._pending(group) and not cap.done():
                settled = asyncio.ensure_future(self._settled.wait())
                try:
                    await asyncio.wait([cap, settled], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    settled.cancel()
        finally:
            cap.cancel()

    def _room(self, group: _Group, slept: float) -> float:
        """How much longer the group may be held: the rest of `hold`, and no more than leaves
        every member's pass deadline WRITE_RESERVE for the write."""
        room = self.hold - slept
        deadlines = [m.deadline for m in group.members if m.deadline is not None]
        if deadlines:
            room = min(room, min(deadlines) - WRITE_RESERVE - self._clock())
        return room

    def _pending(self, group: _Group) -> bool:
        """Whether a pass expected to write into one of the group's repositories is not in yet."""
        repositories = {m.repository for m in group.members if m.repository is not None}
        return any(self._expected.get(repository, 0) > 0 for repository in repositories)

    def _dispatch(self, group: _Group) -> None:
        """Close the group to new members and start writing it after the key's previous batch."""
        if self._open.get(group.key) is group:
            del self._open[group.key]
        group.gathering = False
        previous = self._writing.get(group.key)
        task = asyncio.create_task(self._run(group, previous))
        self._writing[group.key] = task
        task.add_done_callback(functools.partial(self._written, group.key))

    def _written(self, key: Hashable, task: asyncio.Task[None]) -> None:
        if self._writing.get(key) is task:
            del self._writing[key]

    async def _run(self, group: _Group, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        members = [m for m in group.members if not m.future.done()]
        if not members:
            return
        first = members[0]
        deadlines = [m.deadline for m in members]
        deadline = None if None in deadlines else max(d for d in deadlines if d is not None)
        call = functools.partial(
            self.inner.write_batch,
            first.git,
            first.creds,
            [m.plan for m in members],
            dry_run=group.dry_run,
            deadline=deadline,
        )
        self.batches += 1
        self.written += len(members)
        logger.debug("writing %d promotions into %s in one push", len(members),
                     _display(first.git.url))  # fmt: skip
        answers: list[Answer]
        try:
            answers = list(await asyncio.get_running_loop().run_in_executor(self._executor, call))
        except asyncio.CancelledError:
            for member in members:
                member.future.cancel()
            raise
        except Exception as exc:  # the writer itself broke: every member hears of it
            answers = [exc for _ in members]
        if len(answers) != len(members):
            broken = RuntimeError(f"write_batch answered {len(answers)} of {len(members)} plans")
            answers = [broken for _ in members]
        for member, answer in zip(members, answers, strict=True):
            if member.future.done():
                continue
            if isinstance(answer, BaseException):
                member.future.set_exception(answer)
            else:
                member.future.set_result(answer)

    def _key(
        self, git: spec.GitSpec, creds: credentials.GitCredentials | None, dry_run: bool
    ) -> Hashable:
        return (
            git.url,
            git.branch,
            git.push_branch,
            git.insecure,
            git.secret_ref,
            dry_run,
            self._who(creds),
        )

    def _who(self, creds: credentials.GitCredentials | None) -> str | None:
        """An identity of the credentials' values that cannot be turned back into them."""
        if creds is None:
            return None
        if isinstance(creds, credentials.BasicCredentials):
            parts = (b"basic", creds.username.encode(), creds.password.encode())
        else:
            parts = (b"ssh", creds.identity.encode(), creds.known_hosts.encode())
        message = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        return hmac.new(self._who_key, message, hashlib.sha256).hexdigest()


def _display(url: str) -> str:
    """The URL without userinfo, for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "the git server"
    if "@" in parts.netloc:
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return url
