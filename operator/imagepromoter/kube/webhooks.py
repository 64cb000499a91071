"""The Kopf side of webhooks: ImageWebhook status and the receiver's Directory.

- `KopfDirectory` is the receiver's view of the cluster, read through Kopf's own API session
  (as kube/secrets.py does) on every request rather than from a watch: a paused standby replica
  (Kopf peering) serves webhooks too and records events for the active one, and what a request
  is checked against (ImageWebhooks, their Secrets, the ImagePromotions) is never stale.
  Recording is a merge patch of the annotation `imagepromoter.dev/trigger` on the
  ImagePromotion; that write is the durable record the receiver waits for before its 2xx.
- The pass a recorded trigger asks for is started from the watch, like the manual trigger
  `imagepromoter.dev/requested-at` (kube/passes.py, pipeline/manual.py): a new value of the
  annotation is a request; one recorded while the operator was down (received after the CR's
  last recorded scan) is handled when it starts; the ones arriving while a pass runs fold into
  one more pass, on the latest. It posts a Normal `Webhook` event naming the ImageWebhook and
  delivery, then runs a forced pass (the trigger itself is read by the pass from the
  annotation, see passes.Operator._reconcile).
- ImageWebhooks are reconciled on create, spec change, resume and every minute (a Secret created
  later is noticed): Ready says whether the Secret has a `token`, `status.path` where to POST.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kopf
from kopf._cogs.clients import api as kopf_api

from imagepromoter.kube import secrets
from imagepromoter.webhooks import auth, model, receiver, routing

if TYPE_CHECKING:
    from imagepromoter.kube import handlers

logger = logging.getLogger(__name__)

GROUP, VERSION = "imagepromoter.dev", "v1alpha1"
WEBHOOKS, PROMOTIONS = "imagewebhooks", "imagepromotions"
RESYNC = 60.0  # seconds between ImageWebhook status checks (a Secret created later)
_ROUTE = {
    "github-dispatch": "/repos/{owner}/{repo}/dispatches",
    "github": "/hook/github",
    "distribution": "/hook/distribution",
    "generic-hmac": "/hook/generic",
}


def _collection(plural: str, namespace: str | None) -> str:
    base = f"/apis/{GROUP}/{VERSION}"
    if namespace is None:
        return f"{base}/{plural}"
    return f"{base}/namespaces/{urllib.parse.quote(namespace, safe='')}/{plural}"


class KopfDirectory:
    """`receiver.Directory` over Kopf's authenticated API session."""

    def __init__(
        self,
        settings: kopf.OperatorSettings,
        namespaces: Sequence[str] = (),
        *,
        max_age: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._namespaces = list(namespaces)
        self._secrets = secrets.KopfSecrets(settings)
        self._max_age = max_age
        self._clock = clock
        self._cached: tuple[float, list[receiver.Webhook]] | None = None

    async def webhooks(self, types: Sequence[str]) -> list[receiver.Webhook]:
        """ImageWebhooks with their tokens, re-read at most every `max_age` seconds (a flood of
        unauthenticated requests costs one list and a Secret read per ImageWebhook per period)."""
        now = self._clock()
        if self._cached is None or now - self._cached[0] >= self._max_age:
            self._cached = (now, await self._read_webhooks())
        return [w for w in self._cached[1] if w.hook.type in types]

    async def _read_webhooks(self) -> list[receiver.Webhook]:
        found = []
        for item in await self._list(WEBHOOKS):
            spec = item.get("spec") or {}
            if spec.get("type") not in model.TYPES:
                continue
            meta = item.get("metadata") or {}
            name, namespace = str(meta.get("name")), str(meta.get("namespace"))
            token = await self._token(namespace, spec.get("secretRef"))
            if token is None:
                continue
            found.append(
                receiver.Webhook(
                    hook=routing.Hook(
                        name=name,
                        namespace=namespace,
                        type=str(spec["type"]),
                        event_types=tuple(str(t) for t in spec.get("eventTypes") or ()),
                        selector=spec.get("selector") or {},
                    ),
                    token=token,
                    path=path_of(str(spec["type"]), token, name, namespace),
                )
            )
        return found

    async def promotions(self, namespace: str) -> list[routing.Candidate]:
        body = await kopf_api.get(
            _collection(PROMOTIONS, namespace), settings=self._settings, logger=logger
        )
        return [
            routing.Candidate(
                name=str(item["metadata"]["name"]),
                namespace=namespace,
                spec=item.get("spec") or {},
                labels=item["metadata"].get("labels") or {},
            )
            for item in body.get("items") or []
        ]

    async def record(self, candidate: routing.Candidate, trigger: model.Trigger) -> None:
        url = (
            f"{_collection(PROMOTIONS, candidate.namespace)}/"
            f"{urllib.parse.quote(candidate.name, safe='')}"
        )
        payload = {"metadata": {"annotations": {model.TRIGGER_ANNOTATION: trigger.encode()}}}
        await kopf_api.patch(
            url,
            payload=payload,
            headers={"Content-Type": "application/merge-patch+json"},
            settings=self._settings,
            logger=logger,
        )

    async def noted(
        self, webhook: receiver.Webhook, delivery: str, promotions: int, at: str
    ) -> None:
        url = (
            f"{_collection(WEBHOOKS, webhook.hook.namespace)}/"
            f"{urllib.parse.quote(webhook.hook.name, safe='')}/status"
        )
        last = {"time": at, "delivery": delivery, "promotions": promotions}
        await kopf_api.patch(
            url,
            payload={"status": {"lastEvent": last}},
            headers={"Content-Type": "application/merge-patch+json"},
            settings=self._settings,
            logger=logger,
        )

    async def _list(self, plural: str) -> list[Mapping[str, Any]]:
        scopes: list[str | None] = list(self._namespaces) or [None]
        items: list[Mapping[str, Any]] = []
        for namespace in scopes:
            body = await kopf_api.get(
                _collection(plural, namespace), settings=self._settings, logger=logger
            )
            items.extend(body.get("items") or [])
        return items

    async def _token(self, namespace: str, secret_ref: object) -> str | None:
        if not isinstance(secret_ref, str) or not secret_ref:
            return None
        try:
            data = await self._secrets.read(namespace, secret_ref)
        except secrets.SecretReadError as exc:
            logger.warning("ImageWebhook in %s: %s", namespace, exc)
            return None
        token = (data or {}).get("token", "").strip()
        return token or None


def path_of(type_: str, token: str, name: str, namespace: str) -> str:
    """Where this ImageWebhook's sender POSTs (`status.path`)."""
    if type_ in model.PATH_TYPES:
        return auth.secret_path(token, name, namespace)
    return _ROUTE.get(type_, "")


async def webhook_status(
    body: Mapping[str, Any], reader: secrets.KopfSecrets, now: datetime
) -> dict[str, Any]:
    """The status block of one ImageWebhook: path and a Ready condition naming any fix."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    ref, type_ = spec.get("secretRef"), spec.get("type")
    status: dict[str, Any] = {"observedGeneration": meta.get("generation")}
    reason, message, token = "Ready", "", None
    if type_ not in model.TYPES:
        reason, message = (
            "InvalidSpec",
            f"spec.type {type_!r} is not one of {', '.join(model.TYPES)}",
        )
    else:
        try:
            data = await reader.read(namespace, str(ref))
        except secrets.SecretReadError as exc:
            data, reason, message = None, "SecretError", str(exc)
        if data is None and reason == "Ready":
            reason = "SecretMissing"
            message = (
                f"Secret {ref} does not exist in namespace {namespace}; create it with "
                f"`kubectl create secret generic {ref} -n {namespace} --from-literal=token=...`"
            )
        elif data is not None:
            token = (data.get("token") or "").strip() or None
            if token is None:
                reason = "SecretMissing"
                message = f"Secret {ref} has no key `token`; add one (the sender's shared secret)"
    if token is not None:
        status["path"] = path_of(str(type_), token, name, namespace)
        message = f"serving {type_} webhooks at {status['path']}"
    previous = ((body.get("status") or {}).get("conditions") or [{}])[0]
    value = "True" if reason == "Ready" else "False"
    since = previous.get("lastTransitionTime") if previous.get("status") == value else None
    status["conditions"] = [
        {
            "type": "Ready",
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since or now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ]
    return status


def register(registry: kopf.OperatorRegistry, state: handlers.Operator) -> None:
    """Add the webhook handlers and the receiver's lifetime to a Kopf registry."""
    iwh = (GROUP, VERSION, WEBHOOKS)
    server: dict[str, receiver.Receiver] = {}
    gone: set[str] = set()
    readers: dict[str, secrets.KopfSecrets] = {}

    @kopf.on.startup(registry=registry)
    async def start_receiver(settings: kopf.OperatorSettings, **_: Any) -> None:
        readers["secrets"] = secrets.KopfSecrets(settings)
        port = state.options.webhook_port
        if port is None:
            return
        recv = receiver.Receiver(
            KopfDirectory(settings, state.options.webhook_namespaces),
            metrics=receiver.Metrics.of(state.metrics.registry),
        )
        bound = await recv.start(
            port, host=state.options.webhook_host, ssl_context=state.options.webhook_ssl
        )
        server["receiver"] = recv
        logger.info("serving webhooks on port %s", bound)

    @kopf.on.cleanup(registry=registry)
    async def stop_receiver(**_: Any) -> None:
        recv = server.pop("receiver", None)
        if recv is not None:
            await recv.stop()

    async def reconcile_webhook(body: kopf.Body, patch: kopf.Patch) -> None:
        reader = readers.get("secrets")
        if reader is None:
            return
        new = await webhook_status(body, reader, state.clock())
        for key, value in new.items():
            patch.status[key] = value
        if "path" not in new and (body.get("status") or {}).get("path"):
            patch.status["path"] = None

    @kopf.on.create(*iwh, registry=registry)
    async def webhook_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await reconcile_webhook(body, patch)

    @kopf.on.update(*iwh, field="spec", registry=registry)
    async def webhook_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await reconcile_webhook(body, patch)

    @kopf.on.resume(*iwh, registry=registry)
    async def webhook_resumed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await reconcile_webhook(body, patch)

    def alive(meta: kopf.Meta, **_: Any) -> bool:
        return meta.get("uid") not in gone

    @kopf.timer(*iwh, interval=RESYNC, initial_delay=RESYNC, when=alive, registry=registry)
    async def webhook_resync(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await reconcile_webhook(body, patch)

    @kopf.on.event(*iwh, registry=registry)
    def webhook_watched(type: str | None, meta: kopf.Meta, **_: Any) -> None:
        if type == "DELETED":
            gone.add(str(meta.get("uid", "")))
