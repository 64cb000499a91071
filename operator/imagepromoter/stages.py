"""Stages: `spec.from` makes one ImagePromotion follow another's `promotedTag` (dev -> prod).

The upstream's status is the only source: its `promotedTag` is the one candidate, once the
upstream has held it with Ready=True for `from.after`. "Held since" is the later of the time the
tag became its promotedTag (`promotedSince`, written by every pass; `lastPromotionTime` for a
status written before that field existed) and the Ready condition's last transition to True, so
an upstream that was Held or failing in between restarts the clock. tagRegex, excludeTags, minAge
and holds still apply downstream: following is a narrower candidate list, not a bypass.

A loop (`a` from `b` from `a`) can never promote anything, so it is InvalidSpec naming every
member; the chain is followed for at most `MAX_CHAIN` links. Pure: the caller reads the upstream
bodies (the API in the operator, the other manifests in `imagepromoter promote`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from imagepromoter import errors, gates
from imagepromoter import status as statuses

MAX_CHAIN = 10
_FIELDS = ("imagePromotion", "after")


@dataclass(frozen=True)
class From:
    """`spec.from`: follow ImagePromotion `image_promotion` (same namespace) after `after`."""

    image_promotion: str
    after: timedelta = timedelta(0)


def parse_from(value: Any) -> From:
    """`spec.from` -> From; SpecErrors-compatible InvalidSpec naming the field."""
    if not isinstance(value, Mapping):
        raise errors.InvalidSpec("spec.from", "must be a mapping {imagePromotion, after}")
    for key in value:
        if key not in _FIELDS:
            raise errors.InvalidSpec(
                f"spec.from.{key}", "unknown field; known: imagePromotion, after"
            )
    name = value.get("imagePromotion")
    if not isinstance(name, str) or not name.strip():
        raise errors.InvalidSpec(
            "spec.from.imagePromotion", "is required: the name of the ImagePromotion to follow"
        )
    after = value.get("after")
    duration = timedelta(0) if after is None else gates.parse_duration("spec.from.after", after)
    return From(image_promotion=name.strip(), after=duration)


def upstream_of(body: Mapping[str, Any] | None) -> str | None:
    """The name in a CR body's `spec.from.imagePromotion`, if it follows one."""
    spec = (body or {}).get("spec")
    follow = spec.get("from") if isinstance(spec, Mapping) else None
    name = follow.get("imagePromotion") if isinstance(follow, Mapping) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def check_loop(own: str, chain: Sequence[str]) -> None:
    """InvalidSpec when following `chain` (upstream first) leads back to `own`."""
    if own not in chain:
        return
    members = [own, *chain[: chain.index(own) + 1]]
    links = ", ".join(f"{a} follows {b}" for a, b in itertools.pairwise(members))
    raise errors.InvalidSpec(
        "spec.from.imagePromotion",
        f"a loop: {links}; none of them can ever promote: remove spec.from from one of them",
    )


def follow(
    own: str,
    namespace: str,
    wanted: From,
    upstream: Mapping[str, Any] | None,
    now: datetime,
) -> str:
    """The upstream's promotedTag once it qualifies; Waiting (with when) or InvalidSpec if not."""
    name = wanted.image_promotion
    if upstream is None:
        raise errors.InvalidSpec(
            "spec.from.imagePromotion",
            f"ImagePromotion {name} does not exist in namespace {namespace}; create it or "
            "correct the name",
        )
    status: Mapping[str, Any] = upstream.get("status") or {}
    ready = statuses.ready_condition(status)
    if ready is None or ready.get("status") != "True":
        state = f"{ready.get('reason')}: {ready.get('message')}" if ready else "no status yet"
        raise gates.Waiting(
            f"following {name}, which is not Ready ({_clip(state)}); nothing is promoted "
            "until it is"
        )
    tag = status.get("promotedTag")
    if not isinstance(tag, str) or not tag:
        raise gates.Waiting(f"following {name}, which has promoted nothing yet")
    since = held_since(status)
    if since is None:
        since = now
    qualifies = since + wanted.after
    if now < qualifies:
        raise gates.Waiting(
            f"following {name}: {tag} has been promoted there since {gates.timestamp(since)} "
            f"and qualifies at {gates.timestamp(qualifies)} (from.after "
            f"{gates.format_duration(wanted.after)})",
            until=qualifies,
        )
    return tag


def held_since(status: Mapping[str, Any]) -> datetime | None:
    """Since when the status has shown its promotedTag with Ready=True (see module docstring)."""
    ready = statuses.ready_condition(status) or {}
    times = [
        gates.parse_time(status.get("promotedSince") or status.get("lastPromotionTime")),
        gates.parse_time(ready.get("lastTransitionTime")),
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def promoted_since(
    previous: Mapping[str, Any], promoted_tag: str | None, now: datetime
) -> str | None:
    """The new `promotedSince`: now when promotedTag changes (or was never timed), else kept."""
    kept = previous.get("promotedSince")
    if promoted_tag is None:
        return None
    if promoted_tag != previous.get("promotedTag") or not isinstance(kept, str):
        return gates.timestamp(now)
    return kept


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Reader(Protocol):
    """Reads another ImagePromotion's body (spec and status) in a namespace; None if absent."""

    async def read(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


async def followed(
    name: str, namespace: str, wanted: From | None, reader: Reader | None, now: datetime
) -> str | None:
    """The one candidate tag under `spec.from` (None without it); Waiting or InvalidSpec."""
    if wanted is None:
        return None
    if reader is None:
        raise errors.InvalidSpec(
            "spec.from",
            f"following {wanted.image_promotion} needs its ImagePromotion: run the operator, or "
            "give its manifest (with its status) to imagepromoter promote too",
        )
    upstream = await reader.read(namespace, wanted.image_promotion)
    chain, body = [wanted.image_promotion], upstream
    while body is not None and len(chain) < MAX_CHAIN:
        link = upstream_of(body)
        if link is None:
            break
        chain.append(link)
        if link == name:
            break
        body = await reader.read(namespace, link)
    check_loop(name, chain)
    return follow(name, namespace, wanted, upstream, now)


def candidate(tag: str, tags: Sequence[str], upstream: str, image: str) -> list[str]:
    """The upstream's tag as the one-tag pool; NoMatchingTag when the registry lacks it."""
    if tag in tags:
        return [tag]
    raise errors.NoMatchingTag(
        f"{image}: {tag}, promoted by {upstream}, is not in the registry here "
        f"({len(set(tags))} tags listed); check that both name the same image"
    )


class Known:
    """A `Reader` over bodies in memory (the CLI: the manifests given, updated as passes end)."""

    def __init__(self, bodies: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self.bodies: dict[tuple[str, str], Mapping[str, Any]] = dict(bodies)

    async def read(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.bodies.get((namespace, name))

    def update_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """After a pass: its followers read the new status."""
        body = self.bodies.get((namespace, name))
        if body is not None:
            self.bodies[(namespace, name)] = {**body, "status": dict(status)}


def waves(members: Sequence[tuple[str, str, str | None]]) -> list[list[int]]:
    """Indexes of (namespace, name, upstream) in run order: each upstream before its followers.

    Members whose upstream is not among them start at once; members of a loop run last, together
    (their pass reports the loop).
    """
    names = {(ns, name): i for i, (ns, name, _) in enumerate(members)}
    done: set[int] = set()
    order: list[list[int]] = []
    while len(done) < len(members):
        wave = [
            i
            for i, (ns, _, upstream) in enumerate(members)
            if i not in done and (upstream is None or names.get((ns, upstream)) in done | {None})
        ]
        if not wave:
            wave = [i for i in range(len(members)) if i not in done]
        order.append(wave)
        done.update(wave)
    return order
