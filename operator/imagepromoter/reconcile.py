"""One reconcile pass: spec -> secrets -> scan -> select -> plan -> write -> status.

This is the only place that sequences the adapters. Every entry point (the operator's create,
update, resume and timer handlers, the manual trigger, webhooks, and `imagepromoter promote`) calls
`reconcile` and gets back the new status; nothing else decides what a pass means.

The adapters are injected as Protocols, so this module imports no HTTP, git or Kubernetes code:
tests and the CLI hand in real adapters, and the fault-injection suite can hand in hostile ones.
Every failure ends as a `PromotionError` turned into an Outcome, never as an exception escaping
to the caller; an unexpected exception is reported under the reason of the phase it broke.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from imagepromoter import (
    changes,
    credentials,
    errors,
    policy,
    reference,
    spec,
    targets,
    templates,
)
from imagepromoter import status as statuses

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """The parts of an ImagePromotion a pass reads."""

    name: str
    namespace: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)
    generation: int | None = None


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
    ) -> changes.WriteResult: ...


class SecretReader(Protocol):
    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's decoded values, or None when it does not exist."""
        ...


@dataclass(frozen=True)
class _Scan:
    tag: str
    digest: str
    selection: policy.Selection
    tags_scanned: int


async def reconcile(
    resource: Resource,
    *,
    registry: RegistryReader,
    git: GitWriter,
    secrets: SecretReader,
    now: Callable[[], datetime],
    dry_run: bool = False,
    trigger: Mapping[str, str] | None = None,
    fresh: bool = False,
) -> Result:
    """Run one pass and return the status to write; never raises a PromotionError."""
    promotion: spec.Promotion | None = None
    scan: _Scan | None = None
    scan_time: datetime | None = None
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
        scan = await _scan(promotion, resource.namespace, registry, secrets, fresh=fresh)
        git_creds = await _git_credentials(promotion, resource.namespace, secrets)
        plan = _planner(promotion, resource, scan, trigger or {})
        write = await asyncio.to_thread(git.write, promotion.git, git_creds, plan, dry_run=dry_run)
    except errors.PromotionError as exc:
        return _failure(resource, exc, now, promotion, scan, scan_time)
    except Exception as exc:  # an adapter bug must still reach the user as a condition
        logger.exception("unexpected error reconciling %s/%s", resource.namespace, resource.name)
        wrapped_type = errors.RegistryError if scan is None else errors.GitError
        wrapped = wrapped_type(
            f"unexpected {type(exc).__name__} (see the operator log); will retry"
        )
        return _failure(resource, wrapped, now, promotion, scan, scan_time)
    return _finish(
        resource,
        _promoted(promotion, scan, write, scan_time, now, dry_run),
        now,
        promotion=promotion,
        write=write,
    )


async def _scan(
    promotion: spec.Promotion,
    namespace: str,
    registry: RegistryReader,
    secrets: SecretReader,
    *,
    fresh: bool,
) -> _Scan:
    access = reference.RegistryAccess(
        image=promotion.image,
        credentials=await _registry_credentials(promotion, namespace, secrets),
        secret_name=promotion.image_pull_secret,
        insecure=promotion.insecure,
        fresh=fresh,
    )
    tags = await registry.list_tags(access)
    created: dict[str, datetime] | None = None
    if promotion.policy == "newest":
        wanted = policy.candidates(
            tags, tag_regex=promotion.tag_regex, exclude=promotion.exclude_tags
        )
        created = await registry.created(access, wanted)
    selection = policy.evaluate(
        tags,
        tag_regex=promotion.tag_regex,
        policy=promotion.policy,
        semver_range=promotion.semver_range,
        exclude=promotion.exclude_tags,
        created=created,
    )
    if selection.tag is None:
        raise errors.NoMatchingTag(f"{promotion.image_text}: {selection.explain()}")
    digest = await registry.digest(access, selection.tag)
    return _Scan(tag=selection.tag, digest=digest, selection=selection, tags_scanned=len(tags))


async def _registry_credentials(
    promotion: spec.Promotion, namespace: str, secrets: SecretReader
) -> credentials.BasicCredentials | None:
    name = promotion.image_pull_secret
    if not name:
        return None
    data = await _secret(
        secrets,
        namespace,
        name,
        errors.AuthError,
        f"imagePullSecret {name} does not exist in namespace {namespace}; create it with "
        f"`kubectl create secret docker-registry {name} -n {namespace} ...` or remove "
        "spec.imagePullSecret for a public image",
    )
    with _secret_problems_as(errors.AuthError):
        return credentials.registry_credentials(name, data, promotion.image.host)


async def _git_credentials(
    promotion: spec.Promotion, namespace: str, secrets: SecretReader
) -> credentials.GitCredentials | None:
    name = promotion.git.secret_ref
    if not name:
        return None
    data = await _secret(
        secrets,
        namespace,
        name,
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
    error: type[errors.PromotionError],
    missing: str,
) -> dict[str, str]:
    """The Secret's values, or `error(missing)`: temporary, so creating it later is picked up."""
    data = await secrets.read(namespace, name)
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
    promotion: spec.Promotion, resource: Resource, scan: _Scan, trigger: Mapping[str, str]
) -> changes.Planner:
    """Build the pure edit function the git adapter runs on each head it tries to push onto."""
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
        edits = targets.apply(promotion.targets, read, base_vars)
        changed = edits.changes()
        previous_values = edits.previous
        message_vars = {
            **base_vars,
            "path": ", ".join(c.path for c in changed),
            "previous": previous_values[0] if previous_values else "",
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
    unique_paths = list(dict.fromkeys(t.path for t in promotion.targets))
    paths = ", ".join(unique_paths)
    verb = "holds" if len(unique_paths) == 1 else "hold"
    scanned = statuses.Outcome(
        reason="UpToDate",
        message=f"{paths} already {verb} {scan.tag}",
        latest_tag=scan.tag,
        latest_digest=scan.digest,
        promoted_tag=scan.tag,
        tags_scanned=scan.tags_scanned,
        scan_time=scan_time,
    )
    if not write.changeset.changes:
        return scanned
    changed = ", ".join(c.path for c in write.changeset.changes)
    if dry_run or write.commit is None:
        return dataclasses.replace(
            scanned,
            reason="Promoted",
            message=f"Dry run: would promote {scan.tag} to {changed} on {write.branch} "
            "(nothing pushed)",
            promoted_tag=None,
        )
    return dataclasses.replace(
        scanned,
        reason="Promoted",
        message=f"Promoted {scan.tag} to {changed} in {write.commit[:7]} on {write.branch}",
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
