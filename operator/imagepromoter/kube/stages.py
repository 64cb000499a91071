"""Upstream stages: what a downstream ImagePromotion's pass reads, and who is told of a change.

`spec.from`: a downstream ImagePromotion reads its upstream's status (`KopfUpstreams`, one GET
per link through Kopf's API session, never a stale cache). When an upstream's status changes
(its promotedTag, its Ready condition), every ImagePromotion in that namespace that follows it
gets the annotation `imagepromoter.dev/upstream-changed` set, and a new value of that annotation
runs a pass at once (kube/passes.py reads it from the watch, as it reads requested-at and
release-hold: pipeline/manual.py): the downstream does not wait for its interval. An annotation
rather than an in-process call, so that it also works when the downstream is served by another
replica or shard, and `kubectl get -o yaml` shows why a pass ran.

Which CR follows which is learnt from the watch stream (`on.event`), which Kopf feeds with every
CR at start and on each change; the initial listing pokes nobody (each CR's own resume and timer
handle a restart). `register` adds these handlers to the operator's registry (one call in
handlers.build_registry).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors

from imagepromoter import gates, stages
from imagepromoter import status as statuses

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "imagepromoter.dev", "v1alpha1", "imagepromotions"
UPSTREAM_CHANGED = "imagepromoter.dev/upstream-changed"


def _url(namespace: str, name: str) -> str:
    quote = urllib.parse.quote
    return (
        f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/{PLURAL}/"
        f"{quote(name, safe='')}"
    )


class KopfUpstreams:
    """`stages.Reader` over Kopf's authenticated API session."""

    def __init__(self) -> None:
        self.settings: kopf.OperatorSettings | None = None

    async def read(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The ImagePromotion's body, or None when it does not exist."""
        if self.settings is None:
            raise RuntimeError("the operator has not started")
        try:
            # no retries inside the read (Kopf's default retries a 403 for about a minute):
            # the pass says Waiting now and the timer looks again (as kube/secrets.py does)
            response = await kopf_api.request(
                "get", _url(namespace, name), settings=self.settings, backoffs=(), logger=logger
            )
            async with response:
                body = await response.json()
        except kopf_errors.APINotFoundError:
            return None
        except kopf_errors.APIError as exc:  # RBAC or the API server: look again later
            raise gates.Waiting(
                f"could not read ImagePromotion {name} in namespace {namespace} (HTTP "
                f"{exc.status}) to follow it; check the operator's RBAC (get on imagepromotions)"
            ) from None
        return dict(body)


class Followers:
    """Who follows whom (from the watch stream), and the last status seen of each upstream."""

    def __init__(self) -> None:
        self.follows: dict[tuple[str, str], str] = {}
        self.seen: dict[tuple[str, str], tuple[Any, ...]] = {}

    def observe(self, type_: str | None, body: Mapping[str, Any]) -> list[str]:
        """Record one watch event; the names of the followers to poke (its status changed)."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if type_ == "DELETED":
            self.follows.pop(key, None)
            self.seen.pop(key, None)
            return self._followers(key)
        upstream = stages.upstream_of(body)
        if upstream is None:
            self.follows.pop(key, None)
        else:
            self.follows[key] = upstream
        status = body.get("status") or {}
        ready = statuses.ready_condition(status) or {}
        mark = (
            status.get("promotedTag"),
            ready.get("status"),
            ready.get("reason"),
            ready.get("lastTransitionTime"),
            status.get("promotedSince"),
        )
        before = self.seen.get(key)
        self.seen[key] = mark
        if type_ is None or not status or before == mark:
            return []
        return self._followers(key)

    def _followers(self, key: tuple[str, str]) -> list[str]:
        namespace, name = key
        return sorted(n for (ns, n), up in self.follows.items() if ns == namespace and up == name)


def register(registry: kopf.OperatorRegistry, upstreams: KopfUpstreams) -> None:
    """Add the upstream handlers to `registry` (see the module docstring)."""
    res = (GROUP, VERSION, PLURAL)
    followers = Followers()

    @kopf.on.startup(registry=registry)
    async def remember_settings(settings: kopf.OperatorSettings, **_: Any) -> None:
        upstreams.settings = settings

    @kopf.on.event(*res, registry=registry)
    async def upstream_watch(type: str | None, body: kopf.Body, **_: Any) -> None:
        namespace = str(body.meta.get("namespace"))
        for name in followers.observe(type, body):
            await _poke(upstreams, namespace, name, str(body.meta.get("name")))


async def _poke(upstreams: KopfUpstreams, namespace: str, name: str, upstream: str) -> None:
    """Set the upstream-changed annotation on a follower (a new value runs its pass)."""
    if upstreams.settings is None:
        return
    value = f"{upstream} {time.time():.3f}"
    try:
        await kopf_api.patch(
            _url(namespace, name),
            settings=upstreams.settings,
            payload={"metadata": {"annotations": {UPSTREAM_CHANGED: value}}},
            headers={"Content-Type": "application/merge-patch+json"},
            logger=logger,
        )
    except kopf_errors.APIError as exc:
        logger.warning("could not tell %s/%s that %s changed: %s", namespace, name, upstream, exc)
