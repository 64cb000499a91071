"""Which ImagePromotions an event reaches (API.md, the ImageWebhook table). Pure.

An ImageWebhook reaches only ImagePromotions of its own namespace that its `selector` selects.
Of those, an event reaches the ones it names:
- `github-dispatch`: `git.url` names the `{owner}/{repo}` of the request path (host ignored,
  `.git` and letter case too), `eventTypes` (when set) holds the event_type, `image` (when the
  payload gives one) names `spec.image`;
- every other type: `spec.image` names the event's image (both read as `docker pull` reads them,
  so `nginx`, `docker.io/library/nginx` and `index.docker.io/library/nginx` are one);
- and, for every type, when the event names a tag: `tagRegex` and `excludeTags` admit it. A tag
  the CR would never choose does not wake it; the pass it starts still reads the registry.
A spec that does not parse reaches nothing (its own pass reports InvalidSpec).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagepromoter import errors, policy, reference
from imagepromoter.webhooks import model


@dataclass(frozen=True)
class Hook:
    """The routing part of an ImageWebhook."""

    name: str
    namespace: str
    type: str
    event_types: tuple[str, ...] = ()
    selector: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """An ImagePromotion as the receiver sees it."""

    name: str
    namespace: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)


def reached(event: model.Event, hook: Hook, candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates `event` reaches through `hook`, in input order."""
    if (
        hook.type == "github-dispatch"
        and hook.event_types
        and (event.event_type not in hook.event_types)
    ):
        return []
    return [
        c
        for c in candidates
        if c.namespace == hook.namespace
        and selects(hook.selector, c.labels)
        and _names(event, hook, c.spec)
        and _admits(event.tag, c.spec)
    ]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions); {} selects all."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values: Sequence[str] = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an operator we do not know selects nothing, never everything
    return True


def same_image(a: str, b: str) -> bool:
    """Whether two image names are one repository (as docker pull reads them)."""
    left, right = _image(a), _image(b)
    return left is not None and left == right


def repository_of(url: str) -> str | None:
    """`owner/repo` of a git URL (https, ssh, scp-like), lowercase, without `.git`."""
    text = url.strip()
    match = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://[^/]*/(.*)\Z", text)
    if match:
        path = match.group(1)
    elif re.match(r"[^@/:\s]+@[^@/:\s]+:", text):
        path = text.split(":", 1)[1]
    else:
        return None
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        return None
    repo = parts[-1][:-4] if parts[-1].lower().endswith(".git") else parts[-1]
    return f"{parts[-2]}/{repo}".lower()


def _names(event: model.Event, hook: Hook, spec: Mapping[str, Any]) -> bool:
    image = spec.get("image")
    if not isinstance(image, str):
        return False
    if hook.type == "github-dispatch":
        git = spec.get("git")
        url = git.get("url") if isinstance(git, Mapping) else None
        if not isinstance(url, str) or event.repository is None:
            return False
        if repository_of(url) != event.repository.lower():
            return False
        return event.image is None or same_image(event.image, image)
    return event.image is not None and same_image(event.image, image)


def _admits(tag: str | None, spec: Mapping[str, Any]) -> bool:
    regex, exclude = spec.get("tagRegex"), spec.get("excludeTags") or []
    if not isinstance(regex, str) or not isinstance(exclude, list):
        return False
    try:
        chosen = policy.candidates([tag or "0"], tag_regex=regex, exclude=[str(e) for e in exclude])
    except errors.InvalidSpec:
        return False  # its own pass reports the InvalidSpec
    return tag is None or bool(chosen)


def _image(text: str) -> tuple[str, str] | None:
    try:
        ref = reference.parse(text.lower())
    except errors.InvalidSpec:
        return None
    return ref.host, ref.repository
