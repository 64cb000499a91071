"""What a webhook announced, and how it travels to the pass that acts on it.

A parser turns one request body into `Event`s (one per image and tag it names; a multi-arch push
to a registry is several manifests, some without a tag) or `Ignored` (a ping, a pull, a
non-container package). An Event is a hint: it names an image, maybe a tag, and payload fields
(strings, the template variables of API.md); it never decides what is promoted.

The durable record is the `Trigger`, written as JSON into the annotation `TRIGGER_ANNOTATION` of
each ImagePromotion an event reaches before the receiver answers 2xx, so a restart between the
answer and the pass loses nothing. Its size is bounded (at most `MAX_FIELDS` fields of at most
`MAX_VALUE` characters), so it always fits the API server's annotation limit (256 KiB in all).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imagepromoter import bounded

TRIGGER_ANNOTATION = "imagepromoter.dev/trigger"
TYPES = ("github-dispatch", "github", "distribution", "dockerhub", "harbor", "quay", "generic-hmac")
PATH_TYPES = frozenset({"dockerhub", "harbor", "quay"})  # senders that cannot sign: the path is it
MAX_FIELDS = 10  # GitHub's limit on client_payload's top-level keys
MAX_VALUE = 4096  # characters per field value
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")


class Malformed(ValueError):
    """The body is not what this sender sends (answered 400); the message says what is wrong."""


@dataclass(frozen=True)
class Event:
    """One image (and maybe tag) a webhook announced."""

    image: str | None  # host/repository as the sender names it; None: the sender names none
    tag: str | None = None  # None when the sender gave no usable tag (empty, a digest)
    fields: Mapping[str, str] = field(default_factory=dict)
    repository: str | None = None  # github-dispatch: the `{owner}/{repo}` of the URL
    event_type: str | None = None  # github-dispatch: event_type


@dataclass(frozen=True)
class Ignored:
    """An authenticated request that asks for nothing (ping, pull, another package type)."""

    why: str


@dataclass(frozen=True)
class Trigger:
    """The event as recorded on an ImagePromotion; `fields` become template variables."""

    tag: str | None
    source: str  # the ImageWebhook's name (same namespace as the ImagePromotion)
    type: str
    delivery: str
    received_at: str  # RFC 3339
    fields: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> str:
        """The annotation value (JSON, keys sorted)."""
        return json.dumps(
            {
                "tag": self.tag,
                "source": self.source,
                "type": self.type,
                "delivery": self.delivery,
                "receivedAt": self.received_at,
                "fields": dict(self.fields),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def status(self) -> dict[str, Any]:
        """The `status.trigger` block (API.md: tag, source, receivedAt, fields)."""
        return {
            "tag": self.tag or "",
            "source": self.source,
            "receivedAt": self.received_at,
            "fields": dict(self.fields),
        }


def announcement(trigger: Trigger) -> str:
    """The message of the Normal `Webhook` event a recorded trigger posts when its pass starts."""
    announced = trigger.tag or "no tag"
    return (
        f"ImageWebhook {trigger.source} ({trigger.type}) delivery {trigger.delivery} "
        f"announced {announced}"
    )


def decode(text: object) -> Trigger | None:
    """An annotation value back into a Trigger; None when absent or not ours (never raises)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        data = bounded.loads_json(text)
    except ValueError:
        return None
    return from_mapping(data)


def from_mapping(data: object) -> Trigger | None:
    """A Trigger from an annotation's or a status' mapping; None when it does not read as one."""
    if not isinstance(data, Mapping):
        return None
    tag = data.get("tag")
    try:
        fields = checked_fields(data.get("fields") or {})
    except Malformed:
        return None
    return Trigger(
        tag=tag if isinstance(tag, str) and _TAG.match(tag) else None,
        source=str(data.get("source") or ""),
        type=str(data.get("type") or ""),
        delivery=str(data.get("delivery") or ""),
        received_at=str(data.get("receivedAt") or ""),
        fields=fields,
    )


def checked_fields(payload: object) -> dict[str, str]:
    """A payload's top-level fields as strings; raise Malformed past GitHub's limits.

    Strings are kept as they are, numbers and booleans as their JSON text; null, objects and
    lists are not variables and are left out. Names that cannot be template variables
    (not letters, digits and _) are left out too.
    """
    if not isinstance(payload, Mapping):
        raise Malformed("the payload must be a JSON object")
    if len(payload) > MAX_FIELDS:
        raise Malformed(
            f"the payload has {len(payload)} top-level keys; at most {MAX_FIELDS} are allowed "
            "(as GitHub allows for client_payload)"
        )
    fields: dict[str, str] = {}
    for key, value in payload.items():
        if not isinstance(key, str) or not _FIELD_NAME.match(key):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = json.dumps(value)
        elif isinstance(value, str):
            text = value
        else:
            continue
        if len(text) > MAX_VALUE:
            raise Malformed(f"payload field {key} is longer than {MAX_VALUE} characters")
        fields[key] = text
    return fields


def tag_or_none(value: object) -> str | None:
    """A tag when `value` is one (OCI grammar); None for '', a digest, or anything else."""
    if isinstance(value, str) and _TAG.match(value):
        return value
    return None


def load_json(body: bytes) -> Any:
    """The body as JSON; raise Malformed naming the problem."""
    try:
        return bounded.loads_json(body.decode("utf-8"))  # depth-limited: never a RecursionError
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8") from None
    except ValueError as exc:
        raise Malformed(f"the body is not JSON ({exc})") from None


def mapping(value: object, what: str) -> Mapping[str, Any]:
    """`value` as a JSON object, or Malformed naming `what`."""
    if not isinstance(value, Mapping):
        raise Malformed(f"{what} must be a JSON object")
    return value
