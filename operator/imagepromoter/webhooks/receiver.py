"""The webhook HTTP server (aiohttp): authenticate, parse, route, record, then answer.

The order of one request is the security and durability argument:
1. rate limit per source address (429), method and route (405, 404), body cap (413): nothing is
   read from the Kubernetes API for a request that cannot be ours;
2. authentication against each ImageWebhook of the route's type (a token, an HMAC-SHA256
   signature, or the secret path; constant-time), else 401 and nothing changes;
3. parsing (400 naming the problem), then a delivery already acted on is answered 2xx and
   dropped (GitHub redelivers with the same X-GitHub-Delivery);
4. routing to the ImagePromotions each ImageWebhook may reach, and the event recorded on every
   one of them (`Directory.record`: the trigger annotation) BEFORE the 2xx; if a write fails
   the answer is 503 and the sender retries, so an acknowledged event is never lost;
5. 204 for github-dispatch (as GitHub answers), 202 otherwise, also when nothing matched (a
   registry would retry anything else forever): the outcome is counted instead.
Logs carry the type, outcome, delivery and the CRs reached; never a header, token or body.
The Kubernetes side (listing ImageWebhooks and their Secrets, writing annotations) is the
`Directory` Protocol, implemented in kube/webhooks.py, so this module imports no Kopf.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import ssl
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import prometheus_client
from aiohttp import web

from imagepromoter.webhooks import (
    auth,
    distribution,
    generic,
    github,
    github_dispatch,
    guards,
    hosted,
    model,
    routing,
)

logger = logging.getLogger(__name__)

OUTCOMES = (
    "accepted", "unmatched", "unauthenticated", "malformed", "replayed", "limited", "failed"
)  # fmt: skip
_DISPATCH = re.compile(r"/repos/([A-Za-z0-9_.-]{1,100})/([A-Za-z0-9_.-]{1,100})/dispatches\Z")
_ROUTES = {"/hook/github": "github", "/hook/distribution": "distribution",
           "/hook/generic": "generic-hmac"}  # fmt: skip
_SECRET_PATH = re.compile(r"/hook/[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Webhook:
    """An ImageWebhook with its Secret's token (never shown by repr)."""

    hook: routing.Hook
    token: str = field(repr=False)
    path: str | None = None  # status.path, for the secret-path types


class Directory(Protocol):
    async def webhooks(self, types: Sequence[str]) -> list[Webhook]:
        """The ImageWebhooks of these types whose Secret could be read."""
        ...

    async def promotions(self, namespace: str) -> list[routing.Candidate]:
        """The ImagePromotions of a namespace."""
        ...

    async def record(self, candidate: routing.Candidate, trigger: model.Trigger) -> None:
        """Write the trigger onto the ImagePromotion; raise if it could not be written."""
        ...

    async def noted(self, webhook: Webhook, delivery: str, promotions: int, at: str) -> None:
        """Best effort: ImageWebhook status.lastEvent."""
        ...


class Metrics:
    """imagepromoter_webhook_requests_total{type, outcome}."""

    def __init__(self, registry: prometheus_client.CollectorRegistry | None = None) -> None:
        self.requests = prometheus_client.Counter(
            "imagepromoter_webhook_requests",
            "Webhook requests by ImageWebhook type and outcome",
            ["type", "outcome"],
            registry=registry if registry is not None else prometheus_client.REGISTRY,
        )

    @classmethod
    def of(cls, registry: prometheus_client.CollectorRegistry) -> Metrics:
        """The one instance per registry (an operator restarted in one process reuses it)."""
        found = _METRICS.get(registry)
        if found is None:
            found = _METRICS[registry] = cls(registry)
        return found

    def count(self, type_: str, outcome: str) -> None:
        self.requests.labels(type=type_, outcome=outcome).inc()

    def value(self, type_: str, outcome: str) -> float:
        """The count so far (for tests and the bench)."""
        got = self.requests.labels(type=type_, outcome=outcome)._value.get()
        return float(got)


_METRICS: weakref.WeakKeyDictionary[prometheus_client.CollectorRegistry, Metrics] = (
    weakref.WeakKeyDictionary()
)


class _Answer(Exception):
    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message = status, outcome, message


@dataclass
class Receiver:
    """The aiohttp application and its guards."""

    directory: Directory
    metrics: Metrics = field(default_factory=Metrics)
    deliveries: guards.Deliveries = field(default_factory=guards.Deliveries)
    limit: guards.RateLimit = field(default_factory=guards.RateLimit)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        """The aiohttp application (one catch-all route; the routing is ours)."""
        app = web.Application(client_max_size=auth.MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def start(
        self,
        port: int,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - a pod's port
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """Serve on `port` (0: any free one); return the port bound."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One request, answered as the module docstring says."""
        type_ = _type_of(request.path)
        # counted by the authenticated ImageWebhook's type; before that, by route ("path" for a
        # secret path that matched no ImageWebhook, "unknown" for any other URL)
        labels = [type_ or "unknown"]
        try:
            return await self._handle(request, type_, labels)
        except _Answer as answer:
            label = labels[-1]
            self.metrics.count(label, answer.outcome)
            logger.info("webhook %s %s: %s (%s)", label, answer.outcome, answer.status,
                        answer.message)  # fmt: skip
            if answer.status in (202, 204):
                return _ok(type_, answer.message)
            return web.json_response({"message": answer.message}, status=answer.status)

    async def _handle(
        self, request: web.Request, type_: str | None, labels: list[str]
    ) -> web.StreamResponse:
        if not self.limit.allow(request.remote or "unknown"):
            raise _Answer(429, "limited", "too many requests from this address; slow down")
        if type_ is None:
            raise _Answer(404, "malformed", "no webhook is served at this path")
        if request.method != "POST":
            raise _Answer(405, "malformed", "webhooks are POST requests")
        body = await _body(request)
        hooks = await self._authenticated(request, type_, body)
        labels.append(hooks[0].hook.type)
        parsed = _parse(hooks[0].hook.type, request, body)
        delivery = request.headers.get("X-GitHub-Delivery", "").strip()[:128]
        fresh = [w for w in hooks if not self.deliveries.seen(_key(w), delivery)]
        if not fresh:
            raise _Answer(_success(type_), "replayed", f"delivery {delivery} was already handled")
        if isinstance(parsed, model.Ignored):
            raise _Answer(_success(type_), "unmatched", f"nothing to do: {parsed.why}")
        reached = await self._record(fresh, parsed, type_, delivery or str(uuid.uuid4()))
        for webhook in fresh:
            self.deliveries.remember(_key(webhook), delivery)
        outcome = "accepted" if reached else "unmatched"
        raise _Answer(_success(type_), outcome, f"{reached} ImagePromotion(s) will do a pass")

    async def _authenticated(self, request: web.Request, type_: str, body: bytes) -> list[Webhook]:
        types = sorted(model.PATH_TYPES) if type_ == "path" else [type_]
        found = []
        for webhook in await self.directory.webhooks(types):
            if _authenticates(webhook, request, type_, body):
                found.append(webhook)
        if not found:
            raise _Answer(401, "unauthenticated", "authentication failed")
        return found

    async def _record(
        self,
        hooks: Sequence[Webhook],
        events: Sequence[model.Event],
        type_: str,
        delivery: str,
    ) -> int:
        # milliseconds: a pass for this event takes only a scan started after it (scans.py)
        received = self.now().astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
        total = 0
        for webhook in hooks:
            candidates = await self.directory.promotions(webhook.hook.namespace)
            chosen: dict[str, tuple[routing.Candidate, model.Event]] = {}
            for event in events:
                for candidate in routing.reached(event, webhook.hook, candidates):
                    if candidate.name not in chosen or event.tag is not None:
                        chosen[candidate.name] = (candidate, event)
            writes = [
                self.directory.record(
                    candidate,
                    model.Trigger(
                        tag=event.tag,
                        source=webhook.hook.name,
                        type=webhook.hook.type,
                        delivery=delivery,
                        received_at=received,
                        fields=dict(event.fields) if event.tag else {},
                    ),
                )
                for candidate, event in chosen.values()
            ]
            results = await asyncio.gather(*writes, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                logger.warning("webhook %s: recording failed: %r", type_, failed[0])
                raise _Answer(503, "failed", "the event could not be recorded; retry later")
            names = sorted(chosen)
            logger.info("webhook %s/%s delivery %s reached %s", webhook.hook.namespace,
                        webhook.hook.name, delivery, names or "nothing")  # fmt: skip
            total += len(names)
            try:
                await self.directory.noted(webhook, delivery, len(names), received)
            except Exception as exc:  # status is informative only
                logger.debug("could not note the delivery on the ImageWebhook: %r", exc)
        return total


def _type_of(path: str) -> str | None:
    if _DISPATCH.match(path):
        return "github-dispatch"
    if path in _ROUTES:
        return _ROUTES[path]
    if _SECRET_PATH.match(path):
        return "path"
    return None


def _key(webhook: Webhook) -> str:
    return f"{webhook.hook.namespace}/{webhook.hook.name}"


def _success(type_: str) -> int:
    return 204 if type_ == "github-dispatch" else 202


def _ok(type_: str | None, message: str) -> web.Response:
    if type_ == "github-dispatch":
        return web.Response(status=204)
    return web.json_response({"message": message}, status=202)


async def _body(request: web.Request) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed MAX_BODY (never read further)."""
    too_large = _Answer(413, "malformed", f"the body is larger than {auth.MAX_BODY} bytes")
    if request.content_length is not None and request.content_length > auth.MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)  # at most this much: what has arrived
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > auth.MAX_BODY:
            raise too_large
        chunks.append(chunk)


def _authenticates(webhook: Webhook, request: web.Request, type_: str, body: bytes) -> bool:
    if type_ == "path":
        path = webhook.path or ""
        return hmac.compare_digest(path.encode(), request.path.encode())
    if type_ in ("github-dispatch", "distribution"):
        return auth.same(auth.bearer(request.headers), webhook.token)
    if type_ == "github":
        return auth.signed(body, webhook.token, request.headers.get("X-Hub-Signature-256"))
    if type_ == "generic-hmac":
        return auth.signed(body, webhook.token, request.headers.get("X-Signature"))
    return False


def _parse(type_: str, request: web.Request, body: bytes) -> list[model.Event] | model.Ignored:
    """The events of a request to an ImageWebhook of `type_`; an _Answer(400) if malformed."""
    try:
        if type_ == "github-dispatch":
            match = _DISPATCH.match(request.path)
            assert match is not None
            return [github_dispatch.parse(body, owner=match.group(1), repo=match.group(2))]
        if type_ == "github":
            return github.parse(body, request.headers)
        if type_ == "distribution":
            return distribution.parse(body, request.headers)
        if type_ == "generic-hmac":
            return generic.parse(body)
        return hosted.parse(type_, body)  # the type of the ImageWebhook whose path it is
    except model.Malformed as exc:
        raise _Answer(400, "malformed", str(exc)) from None
