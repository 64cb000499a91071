"""One operator process per shard: every ImagePromotion handler sees only this shard's CRs.

`imagepromoter run --selector imagepromoter.dev/shard=0` (shards.parse) reaches here as a
`shards.Selector`. `register`, called last by handlers.build_registry, sets Kopf's `labels=`
filter on every ImagePromotion handler already registered (create, update, resume, timer, event,
the trigger, stage and release-hold handlers): one edit of the handler lists covers handlers that
other modules add. Kopf stops a timer whose filter stops matching, so a relabelled CR's timer
ends in the old shard and starts in the new one, which schedules it from the persisted status
(docs/operator.md, "Sharding"). A CR that comes back to a shard it left starts from the
cluster's status, not from what that shard cached before (kube/patching.py, `base`).
What makes this safe is a Kopf behaviour (checked in tests/test_operator_shards.py): it is blind
to an object that none of its change handlers match, and stores no last-handled configuration
or progress on it. Every shard shares those annotations, so a shard writing them on another's
CR could swallow that shard's spec change. Kopf filters client-side: each shard still receives
the watch events of every CR (cheap), and does the work (scans, writes, status patches) for its
own only. One event handler, registered after this filter, sees every CR and writes nothing: a
CR that left the shard is dropped from what the shard keeps for it (its image index entry, its
schedule), so it no longer sets how often its image is scanned here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kopf

from imagepromoter import shards

GROUP, VERSION, PLURAL = "imagepromoter.dev", "v1alpha1", "imagepromotions"


def kopf_labels(selector: shards.Selector) -> dict[str, Any]:
    """The selector as Kopf's `labels=` filter (a present-only requirement is kopf.PRESENT)."""
    return {k: kopf.PRESENT if v is None else v for k, v in selector.labels.items()}


def register(registry: kopf.OperatorRegistry, selector: shards.Selector) -> None:
    """Make `registry`'s ImagePromotion handlers serve only `selector`'s CRs (see docstring)."""
    if not selector:
        return
    labels = kopf_labels(selector)
    parts: list[Any] = [registry._changing, registry._spawning, registry._watching]
    for part in [*parts, registry._indexing]:
        kept: list[Any] = part._handlers
        kept[:] = [_filtered(h, labels) if _promotions(h) else h for h in kept]


_RESOURCE = kopf.Resource(
    group=GROUP,
    version=VERSION,
    plural=PLURAL,
    kind="ImagePromotion",
    singular="imagepromotion",
    shortcuts=frozenset({"ipr"}),
    namespaced=True,
)


def _promotions(handler: Any) -> bool:
    """Whether a Kopf handler is one for ImagePromotions."""
    found = getattr(handler, "selector", None)
    return found is not None and bool(found.check(_RESOURCE))


def _filtered(handler: Any, labels: dict[str, Any]) -> Any:
    merged = {**(handler.labels or {}), **labels}
    return dataclasses.replace(handler, labels=merged)
