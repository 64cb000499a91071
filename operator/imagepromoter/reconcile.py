"""One reconcile pass: spec -> secrets -> scan -> select -> plan -> write -> status.

This is the only place that sequences the adapters. Every entry point (the operator's create,
update, resume and timer handlers, the manual trigger, webhooks, and `imagepromoter promote`) calls
`reconcile` and gets back the new status; nothing else decides what a pass means.

The adapters are injected as Protocols, so this module imports no HTTP, git or Kubernetes code:
tests and the CLI hand in real adapters, and the fault-injection suite can hand in hostile ones.
Every failure ends as a `PromotionError` turned into an Outcome, never as an exception escaping
to the caller; an unexpected exception is reported under the reason of the phase it broke.

A pass has one total deadline (`deadline` seconds, DEFAULT_DEADLINE unless the caller says):
every network phase (Secret reads, each registry call, the git write, the history read of a
held file) gets what is left of it (budgets.Budget), and running out ends the pass with that
phase's reason (AuthError or GitError for a Secret, RegistryError, GitError) and a message naming
the phase and the host. The git writer runs in a thread, so it also receives the absolute
deadline and ends its own socket waits there (git/deadlines.py); the asyncio timeout around it
is only the backstop. CPU-heavy pure work (the tag selection over the whole tag list) runs in a
small bounded thread pool, never on the event loop that serves every CR and the probes; the
value edits run inside the git writer's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import inspect
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeGuard, TypeVar, cast

from imagepromoter import (
    budgets,
    changes,
    credentials,
    errors,
    gates,
    holds,
    policy,
    reference,
    sanitise,
    spec,
    stages,
    targets,
    templates,
)
from imagepromoter import status as statuses
from imagepromoter.webhooks import model as webhook_model

logger = logging.getLogger(__name__)

DEFAULT_DEADLINE = budgets.DEFAULT_DEADLINE
Budget = budgets.Budget
GIT_BACKSTOP = 5.0  # seconds the git thread may overrun its own deadline before we stop waiting
CPU_WORKERS = 2  # threads for CPU-heavy pure work (tag selection), shared by every pass
GIT_WORKERS = 32  # threads for git writes and history reads (each bounded by its deadline)

_CPU = concurrent.futures.ThreadPoolExecutor(CPU_WORKERS, thread_name_prefix="imagepromoter-cpu")
_GIT = concurrent.futures.ThreadPoolExecutor(GIT_WORKERS, thread_name_prefix="imagepromoter-git")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Resource:
    """The parts of an ImagePromotion a pass reads."""

    name: str
    namespace: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)
    generation: int | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """The new status, the outcome it was computed from, and what was written (if anything)."""

    status: dict[str, Any]
    outcome: statuses.Outcome
    error: errors.PromotionError | None = None
    write: changes.WriteResult | None = None
    promotion: spec.Promotion | None = None


class RegistryReader(Protocol):
    async def list_tags(self, access: reference.RegistryAccess) -> list[str]: ...

    async def digest(self, access: reference.RegistryAccess, tag: str) -> str: ...

    async def created(
        self, access: reference.RegistryAccess, tags: Sequence[str]
    ) -> dict[str, datetime]: ...


class GitWriter(Protocol):
    def write(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plan: changes.Planner,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> changes.WriteResult:
        """Commit and push; `deadline` is a time.monotonic() instant its I/O must end by."""
        ...


class AsyncGitWriter(Protocol):
    async def write(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plan: changes.Planner,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> changes.WriteResult:
        """Commit and push, possibly batched with other passes' writes (pipeline/batches.py)."""
        ...


class SecretReader(Protocol):
    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's decoded values, or None when it does not exist."""
        ...


class GitHistory(Protocol):
    def revisions(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        path: str,
        *,
        since: str | None,
        deadline: float | None = None,
    ) -> list[holds.Revision]:
        """A target file's history, newest first, back to `since` (bounded; see git/history).

        `deadline` is a time.monotonic() instant its I/O must end by.
        """
        ...


@dataclass(frozen=True)
class _Scan:
    tag: str | None  # None: no tag qualified (NoMatchingTag: still a scan, recorded as one)
    digest: str
    selection: policy.Selection
    tags_scanned: int
    access: reference.RegistryAccess | None = None
    gated: gates.Gated | None = None
    no_match: str = ""  # the NoMatchingTag message when tag is None


async def reconcile(
    resource: Resource,
    *,
    registry: RegistryReader,
    git: GitWriter | AsyncGitWriter,
    secrets: SecretReader,
    now: Callable[[], datetime],
    dry_run: bool = False,
    trigger: webhook_model.Trigger | None = None,
    not_before: float | None = None,
    history: GitHistory | None = None,
    upstreams: stages.Reader | None = None,
    deadline: float | None = DEFAULT_DEADLINE,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Run one pass and return the status to write; never raises a PromotionError.

    `trigger` is the last webhook event recorded on the CR: its fields become template variables
    only when this pass chooses the tag it announced (else the ones kept in status.trigger for
    that tag, so a retried pass writes the same values). `deadline` is the pass's total budget in
    seconds for its network phases (None: unlimited). `not_before` is how fresh the registry's
    answers must be (wall-clock epoch seconds; see scans.py): None takes any answer still kept.
    """
    budget = Budget.start(deadline, clock)
    promotion: spec.Promotion | None = None
    scan: _Scan | None = None
    scan_time: datetime | None = None
    git_creds: credentials.GitCredentials | None = None
    guard: holds.Guard | None = None
    announced: webhook_model.Trigger | None = None
    try:
        promotion = spec.parse(resource.spec)
        if promotion.suspend:
            return _finish(
                resource,
                statuses.Outcome(
                    reason="Suspended",
                    message="spec.suspend is true: not scanning; set it to false to resume",
                ),
                now,
                promotion=promotion,
            )
        scan_time = now()
        upstream = promotion.follow.image_promotion if promotion.follow else ""
        what = f"reading ImagePromotion {upstream} (spec.from) from the Kubernetes API"
        async with budget.phase(gates.Waiting, what):  # an unreadable upstream is Waiting too
            followed = await stages.followed(
                resource.name, resource.namespace, promotion.follow, upstreams, scan_time
            )
        scan = await _scan(
            promotion,
            resource,
            registry,
            secrets,
            budget,
            not_before=not_before,
            followed=followed,
            now=scan_time,
        )
        if scan.tag is None:
            raise errors.NoMatchingTag(scan.no_match)
        git_creds = await _git_credentials(promotion, resource.namespace, secrets, budget)
        announced = _announced(scan.tag, trigger, resource.status)
        oci = await _oci(promotion, registry, scan, budget)
        extra = {**(announced.fields if announced else {}), **oci}
        guard = holds.guard(
            promotion.on_manual_change,
            resource.status,
            resource.annotations,
            pinned=promotion.pin is not None,
        )
        plan = _planner(promotion, resource, scan, extra, guard)
        write = await _write(git, promotion.git, git_creds, plan, budget, dry_run=dry_run)
    except holds.Held as exc:
        assert promotion is not None
        return await _held(
            resource, exc, now, promotion, scan, scan_time, history, git_creds, budget
        )
    except gates.Waiting as exc:
        return _waiting(resource, exc, now, promotion, scan_time)
    except errors.PromotionError as exc:
        return _failure(resource, exc, now, promotion, scan, scan_time)
    except Exception as exc:  # an adapter bug must still reach the user as a condition
        logger.exception("unexpected error reconciling %s/%s", resource.namespace, resource.name)
        wrapped_type = errors.RegistryError if scan is None or scan.tag is None else errors.GitError
        wrapped = wrapped_type(
            f"unexpected {type(exc).__name__} (see the operator log); will retry"
        )
        return _failure(resource, wrapped, now, promotion, scan, scan_time)
    outcome = _gated(
        _promoted(promotion, scan, write, scan_time, now, dry_run),
        promotion, resource, scan, guard, now(), dry_run,
    )  # fmt: skip
    return _finish(
        resource,
        dataclasses.replace(outcome, trigger=_kept_trigger(outcome, announced, resource.status)),
        now,
        promotion=promotion,
        write=write,
    )


async def _cpu(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run CPU-heavy pure work in the bounded CPU pool, off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_CPU, functools.partial(function, *args, **kwargs))


async def _oci(
    promotion: spec.Promotion, registry: RegistryReader, scan: _Scan, budget: Budget
) -> dict[str, str]:
    """The oci.* variables, read from the image only when some template uses one."""
    used = templates.oci_variables(
        promotion.git.commit_message, *(t.value for t in promotion.targets)
    )
    read = getattr(registry, "oci_labels", None)
    if not used or read is None or scan.access is None:
        return {}
    where = f"{promotion.image_text}:{scan.tag} at registry {promotion.image.host}"
    async with budget.phase(errors.RegistryError, f"reading the OCI labels of {where}"):
        found: dict[str, str] = await read(scan.access, scan.digest)
    return found


def _announced(
    tag: str, trigger: webhook_model.Trigger | None, status: Mapping[str, Any]
) -> webhook_model.Trigger | None:
    """The webhook event that announced `tag`: the one just recorded, else status.trigger's."""
    for candidate in (trigger, webhook_model.from_mapping(status.get("trigger"))):
        if candidate is not None and candidate.tag == tag:
            return candidate
    return None


def _kept_trigger(
    outcome: statuses.Outcome,
    announced: webhook_model.Trigger | None,
    status: Mapping[str, Any],
) -> Mapping[str, Any] | None:
    """status.trigger after a pass: set for the announced tag, dropped once another is held."""
    if announced is not None:
        return announced.status()
    kept = status.get("trigger")
    held = outcome.promoted_tag
    if isinstance(kept, Mapping) and held is not None and kept.get("tag") != held:
        return {}
    return None


async def _scan(
    promotion: spec.Promotion,
    resource: Resource,
    registry: RegistryReader,
    secrets: SecretReader,
    budget: Budget,
    *,
    not_before: float | None,
    followed: str | None = None,
    now: datetime,
) -> _Scan:
    access = reference.RegistryAccess(
        image=promotion.image,
        credentials=await _registry_credentials(promotion, resource.namespace, secrets, budget),
        secret_name=promotion.image_pull_secret,
        insecure=promotion.insecure,
        not_before=not_before,
    )
    where = f"{promotion.image_text} at registry {promotion.image.host}"
    async with budget.phase(errors.RegistryError, f"listing the tags of {where}"):
        tags = await registry.list_tags(access)
    # spec.pin and spec.from narrow the pool to one tag, which tagRegex/excludeTags still judge
    pool, chosen_by = list(tags), promotion.policy
    if promotion.pin is not None:
        pool, chosen_by = gates.pin_pool(promotion.pin, tags, promotion.image_text), "alphabetical"
    elif followed is not None and promotion.follow is not None:
        upstream = promotion.follow.image_promotion
        pool = stages.candidate(followed, tags, upstream, promotion.image_text)
        chosen_by = "alphabetical"
    created: dict[str, datetime] | None = None
    if chosen_by == "newest":
        wanted = await _cpu(
            policy.candidates, pool, tag_regex=promotion.tag_regex, exclude=promotion.exclude_tags
        )
        async with budget.phase(errors.RegistryError, f"reading image creation times of {where}"):
            created = await registry.created(access, wanted)

    def evaluate(candidates: Sequence[str]) -> policy.Selection:
        return policy.evaluate(
            candidates,
            tag_regex=promotion.tag_regex,
            policy=chosen_by,
            semver_range=promotion.semver_range if chosen_by == promotion.policy else None,
            exclude=promotion.exclude_tags,
            created=created,
        )

    async def created_of(wanted: Sequence[str]) -> Mapping[str, datetime]:
        if created is not None:
            return created
        async with budget.phase(errors.RegistryError, f"reading image creation times of {where}"):
            return await registry.created(access, wanted)

    # the first evaluation (over the whole pool, usually the only one) runs in the CPU pool;
    # gates.choose evaluates again on the loop only when minAge sets young tags aside
    whole = list(pool)
    first = await _cpu(evaluate, whole)

    def evaluate_once(candidates: Sequence[str]) -> policy.Selection:
        return first if list(candidates) == whole else evaluate(candidates)

    gated = await gates.choose(
        pool,
        evaluate=evaluate_once,
        created=created_of,
        min_age=promotion.min_age,
        first_seen=gates.first_seen_of(resource.status),
        now=now,
    )
    selection = gated.selection
    if selection.tag is None and gated.young:
        raise gates.Waiting(
            f"{promotion.image_text}: nothing is old enough yet: {gated.note(promotion.min_age)}",
            until=gated.until,
            first_seen=gated.first_seen,
        )
    if selection.tag is None:
        if followed is not None and promotion.pin is None:
            no_match = (
                f"{promotion.image_text}: {followed}, promoted by "
                f"{promotion.follow.image_promotion if promotion.follow else 'upstream'}, "
                "does not match tagRegex or is excluded by excludeTags here"
            )
        else:
            no_match = f"{promotion.image_text}: {selection.explain()}"
        return _Scan(
            tag=None,
            digest="",
            selection=selection,
            tags_scanned=len(tags),
            gated=gated,
            no_match=no_match,
        )
    tagged = f"{promotion.image_text}:{selection.tag} at registry {promotion.image.host}"
    async with budget.phase(errors.RegistryError, f"reading the digest of {tagged}"):
        digest = await registry.digest(access, selection.tag)
    return _Scan(
        tag=selection.tag,
        digest=digest,
        selection=selection,
        tags_scanned=len(tags),
        access=access,
        gated=gated,
    )


async def _write(
    git: GitWriter | AsyncGitWriter,
    git_spec: spec.GitSpec,
    creds: credentials.GitCredentials | None,
    plan: changes.Planner,
    budget: Budget,
    *,
    dry_run: bool,
) -> changes.WriteResult:
    """The write, awaited (async writer) or in the git pool (sync); the phase is the backstop."""
    what = f"writing to git at {_display_url(git_spec.url)} (fetch, commit, push)"
    async with budget.phase(errors.GitError, what, slack=GIT_BACKSTOP):
        if _is_async(git):
            return await git.write(git_spec, creds, plan, dry_run=dry_run, deadline=budget.at)
        sync = cast(GitWriter, git)
        call = functools.partial(
            sync.write, git_spec, creds, plan, dry_run=dry_run, deadline=budget.at
        )
        return await asyncio.get_running_loop().run_in_executor(_GIT, call)


def _is_async(git: GitWriter | AsyncGitWriter) -> TypeGuard[AsyncGitWriter]:
    """An AsyncGitWriter (its `write` is a coroutine function), else a sync GitWriter."""
    return inspect.iscoroutinefunction(git.write)


def _display_url(url: str) -> str:
    """The URL without any userinfo, for messages (the git adapter redacts its own)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "the git server"
    if "@" in parts.netloc and parts.scheme in {"http", "https"}:
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return url


async def _registry_credentials(
    promotion: spec.Promotion, namespace: str, secrets: SecretReader, budget: Budget
) -> credentials.BasicCredentials | None:
    name = promotion.image_pull_secret
    if not name:
        return None
    data = await _secret(
        secrets,
        namespace,
        name,
        budget,
        errors.AuthError,
        f"imagePullSecret {name} does not exist in namespace {namespace}; create it with "
        f"`kubectl create secret docker-registry {name} -n {namespace} ...` or remove "
        "spec.imagePullSecret for a public image",
    )
    with _secret_problems_as(errors.AuthError):
        return credentials.registry_credentials(name, data, promotion.image.host)


async def _git_credentials(
    promotion: spec.Promotion, namespace: str, secrets: SecretReader, budget: Budget
) -> credentials.GitCredentials | None:
    name = promotion.git.secret_ref
    if not name:
        return None
    data = await _secret(
        secrets,
        namespace,
        name,
        budget,
        errors.GitError,
        f"git.secretRef {name} does not exist in namespace {namespace}; create it with "
        f"`kubectl create secret generic {name} -n {namespace} --from-literal=username=... "
        "--from-literal=password=<token>`",
    )
    with _secret_problems_as(errors.GitError):
        return credentials.git_credentials(name, data)


async def _secret(
    secrets: SecretReader,
    namespace: str,
    name: str,
    budget: Budget,
    error: type[errors.PromotionError],
    missing: str,
) -> dict[str, str]:
    """The Secret's values, or `error(missing)`: temporary, so creating it later is picked up.

    A Secret the API would not give (403, 5xx, unreachable, too slow) is `error` too, with the
    reader's own message (the 403 one says which RBAC grant is missing).
    """
    what = f"reading Secret {name} in namespace {namespace} from the Kubernetes API"
    try:
        async with budget.phase(error, what):
            data = await secrets.read(namespace, name)
    except errors.SecretReadError as exc:
        raise error(exc.message) from None
    if data is None:
        raise error(missing)
    return data


@contextlib.contextmanager
def _secret_problems_as(error: type[errors.PromotionError]) -> Iterator[None]:
    """A malformed Secret is retried (a fixed Secret must be picked up), not a spec error."""
    try:
        yield
    except errors.InvalidSpec as exc:
        raise error(exc.message) from None


def _planner(
    promotion: spec.Promotion,
    resource: Resource,
    scan: _Scan,
    trigger: Mapping[str, str],
    guard: holds.Guard | None = None,
) -> changes.Planner:
    """Build the pure edit function the git adapter runs on each head it tries to push onto."""
    assert scan.tag is not None
    base_vars: dict[str, str] = {
        **dict(trigger),
        **dict(scan.selection.groups),
        "tag": scan.tag,
        "digest": scan.digest,
        "image": promotion.image_text,
        "version": scan.selection.version or scan.tag,
        "name": resource.name,
        "namespace": resource.namespace,
    }

    def plan(read: changes.FileReader) -> changes.Changeset:
        if guard is not None:
            guard.begin()
        edits = targets.apply(promotion.targets, read, base_vars, guard=guard)
        changed = edits.changes()
        previous_values = edits.previous
        message_vars = {  # outside text: no control characters; `previous` on one line
            **{k: sanitise.terminal(v) for k, v in base_vars.items()},
            "path": ", ".join(c.path for c in changed),
            "previous": sanitise.one_line(previous_values[0], 1024) if previous_values else "",
        }
        message = templates.render(
            promotion.git.commit_message, message_vars, field="spec.git.commitMessage"
        )
        return changes.Changeset(changes=changed, message=message)

    return plan


def _promoted(
    promotion: spec.Promotion,
    scan: _Scan,
    write: changes.WriteResult,
    scan_time: datetime | None,
    now: Callable[[], datetime],
    dry_run: bool,
) -> statuses.Outcome:
    assert scan.tag is not None
    unique_paths = list(dict.fromkeys(t.path for t in promotion.targets))
    paths = ", ".join(unique_paths)
    verb = "holds" if len(unique_paths) == 1 else "hold"
    scanned = statuses.Outcome(
        reason="UpToDate",
        message=f"{paths} already {verb} {scan.tag}{scan.selection.ignored()}",
        latest_tag=scan.tag,
        latest_digest=scan.digest,
        promoted_tag=scan.tag,
        tags_scanned=scan.tags_scanned,
        scan_time=scan_time,
    )
    if not write.changeset.changes and write.commit is not None:
        # our earlier push whose answer never came: the remote holds the commit we built
        return dataclasses.replace(
            scanned,
            reason="Promoted",
            message=f"Promoted {scan.tag} in {write.commit[:7]} on {write.branch} (found on the "
            "remote: the answer to that push was lost)",
            commit=write.commit,
            promotion_time=now(),
        )
    if not write.changeset.changes:
        return scanned
    changed = ", ".join(c.path for c in write.changeset.changes)
    if dry_run or write.commit is None:
        return dataclasses.replace(
            scanned,
            reason="Promoted",
            message=f"Dry run: would promote {scan.tag} to {changed} on {write.branch} "
            f"(nothing pushed){scan.selection.ignored()}",
            promoted_tag=None,
        )
    return dataclasses.replace(
        scanned,
        reason="Promoted",
        message=f"Promoted {scan.tag} to {changed} in {write.commit[:7]} on {write.branch}"
        f"{scan.selection.ignored()}",
        commit=write.commit,
        promotion_time=now(),
    )


def _failure(
    resource: Resource,
    exc: errors.PromotionError,
    now: Callable[[], datetime],
    promotion: spec.Promotion | None,
    scan: _Scan | None,
    scan_time: datetime | None,
) -> Result:
    outcome = statuses.Outcome(
        reason=exc.reason,
        message=exc.message,
        latest_tag=scan.tag if scan else None,
        latest_digest=scan.digest if scan else None,
        tags_scanned=scan.tags_scanned if scan else None,
        scan_time=scan_time if scan else None,
    )
    return _finish(resource, outcome, now, promotion=promotion, error=exc)


def _finish(
    resource: Resource,
    outcome: statuses.Outcome,
    now: Callable[[], datetime],
    *,
    promotion: spec.Promotion | None = None,
    error: errors.PromotionError | None = None,
    write: changes.WriteResult | None = None,
) -> Result:
    new_status = statuses.compute(
        resource.status, outcome, generation=resource.generation, now=now()
    )
    return Result(status=new_status, outcome=outcome, error=error, write=write, promotion=promotion)


# Holds, pins and gates (holds.py, gates.py, stages.py) -----------------------------------------


def _gated(
    outcome: statuses.Outcome,
    promotion: spec.Promotion,
    resource: Resource,
    scan: _Scan,
    guard: holds.Guard | None,
    now: datetime,
    dry_run: bool,
) -> statuses.Outcome:
    """A successful pass under pins and minAge: reason, message, and the gate status fields."""
    gated = scan.gated
    young = gated.young if gated is not None else ()
    fields: dict[str, Any] = {
        "hold": None,
        "waitingUntil": gates.timestamp(gated.until) if gated and gated.until else None,
        "firstSeen": gates.first_seen_status(gated.first_seen) if gated else None,
    }
    if not dry_run and guard is not None:
        fields["written"] = holds.written_status(resource.status, guard.written)
    if outcome.promoted_tag is not None:
        fields["promotedSince"] = stages.promoted_since(resource.status, outcome.promoted_tag, now)
    reason, message = outcome.reason, outcome.message
    if promotion.pin is not None:
        reason = "Pinned"
        message = f"spec.pin {promotion.pin}: {message}; remove spec.pin to resume the policy"
    elif young:
        note = gated.note(promotion.min_age) if gated else ""
        reason = "Waiting" if outcome.reason == "UpToDate" else outcome.reason
        message = f"{message}; {note}"
    return dataclasses.replace(outcome, reason=reason, message=message, gates=fields)


async def _held(
    resource: Resource,
    exc: holds.Held,
    now: Callable[[], datetime],
    promotion: spec.Promotion,
    scan: _Scan | None,
    scan_time: datetime | None,
    history: GitHistory | None,
    git_creds: credentials.GitCredentials | None,
    budget: Budget,
) -> Result:
    """Held: name the commit and author that changed the value, and the three ways out."""
    previous = resource.status.get("hold")
    if (
        isinstance(previous, Mapping)
        and previous.get("commit")
        and (
            previous.get("path"),
            previous.get("value"),
        )
        == (exc.path, exc.found)
    ):
        exc.commit = holds.Change(
            sha=str(previous["commit"]), author=str(previous.get("author", "")), summary=""
        )
    elif history is not None:
        path, kind, name = exc.ident.split("\x00", 2)
        key, regex = (name, None) if kind == "key" else (None, name)
        since = resource.status.get("lastCommit") or None
        loop = asyncio.get_running_loop()
        read = functools.partial(
            history.revisions, promotion.git, git_creds, path, since=since, deadline=budget.at
        )
        what = f"reading the history of {path} at {_display_url(promotion.git.url)}"
        try:
            async with budget.phase(errors.GitError, what):
                revisions = await loop.run_in_executor(_GIT, read)
        except errors.PromotionError as problem:  # the Held message stands without the commit
            logger.info("%s/%s: %s", resource.namespace, resource.name, problem.message)
        else:
            exc.commit = holds.introduced(
                revisions,
                exc.found,
                lambda data: holds.current_value(data.decode("utf-8", "replace"), key, regex),
            )
    outcome = statuses.Outcome(
        reason=exc.reason,
        message=holds.message(exc, resource.name, resource.namespace),
        latest_tag=scan.tag if scan else None,
        latest_digest=scan.digest if scan else None,
        tags_scanned=scan.tags_scanned if scan else None,
        scan_time=scan_time if scan else None,
        gates={"hold": holds.hold_status(exc, resource.annotations), "waitingUntil": None},
    )
    return _finish(resource, outcome, now, promotion=promotion)


def _waiting(
    resource: Resource,
    exc: gates.Waiting,
    now: Callable[[], datetime],
    promotion: spec.Promotion | None,
    scan_time: datetime | None,
) -> Result:
    """Waiting: nothing may be promoted until `exc.until` (minAge, from.after) or an upstream."""
    fields: dict[str, Any] = {
        "waitingUntil": gates.timestamp(exc.until) if exc.until else None,
    }
    if exc.first_seen is not None:
        fields["firstSeen"] = gates.first_seen_status(exc.first_seen)
    outcome = statuses.Outcome(
        reason=exc.reason, message=exc.message, scan_time=scan_time, gates=fields
    )
    return _finish(resource, outcome, now, promotion=promotion)
