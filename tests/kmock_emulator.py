"""A kmock.KubernetesEmulator that can carry Kopf: the gaps of stock kmock 0.8, each fixed.

The stock emulator stores objects and streams watch events, but a Kopf operator started against it
never runs a handler. Each fix below is one gap found that way (tests/test_operator_e2e.py has a row
for each):

1. It never sets `metadata.resourceVersion`, `uid`, `creationTimestamp` or `generation`. Kopf's
   progress and finalizer patches are JSON patches that start with a `test` of resourceVersion,
   so they fail (500) and no handler completes. We stamp a strictly increasing resourceVersion on
   every create and update (a constant one defeats Kopf's consistency tracking: handlers run
   twice), a uid and a creation time on create, generation 1 on create and +1 when an update
   changes `spec`, as the API server does. A failed JSON-patch `test` answers 422, not 500; a
   merge patch naming a stale resourceVersion answers 409.
2. `GET /api/v1/namespaces` is mis-parsed (500): the tests run Kopf cluster-wide, which never
   lists namespaces.
3. Objects created with only `generateName` (Kopf's events) are all stored under one name: we
   generate the name (prefix + 5 random characters).
4. A resource must be declared with its verbs and `subresources={'status'}` or Kopf ignores it as
   non-watchable: `register_crd` declares one from a CRD manifest, and the built-in kinds
   (events, secrets, namespaces) come from `resources.load_bundled()`.
5. It keeps every request it ever served and matches each new one by scanning them all (kmock's
   filters iterate the full history per reaction), so a PATCH costs O(requests served): 79 ms at
   1,000 CRs. kmock's own list now holds only the requests in flight; finished ones go to
   `history` (the last `keep_requests`, for assertions) and `counts` ((method, plural,
   subresource) -> n, over the whole run, for the benchmarks); each object keeps only its last
   `keep_versions` versions.
6. Every read, create, patch and delete finds its object by scanning every stored object
   (kmock's `__get_objs`), so each costs O(objects), and objects only grow (events are never
   expired): the triggered cycle of the scale benchmark cost 11.8 s of emulator CPU on a fresh
   emulator and 31.8 s after six cycles. Requests naming one object look it up by its key.
Also emulated: the status subresource. A PATCH of `.../status` changes only `status`; a PATCH of
the object itself ignores `status` when the resource has that subresource.

Still not emulated (and not relied on): label/field selectors, schema validation (tests/test_crd.py
validates against the schema separately), and re-watches replay every object as ADDED.
"""

from __future__ import annotations

import collections
import datetime
import itertools
import secrets
import string
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import dicts as kmock_dicts
from kmock._internal import rendering

VERBS = {"list", "watch", "get", "patch", "create", "delete", "update"}


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """The stock emulator plus what Kopf needs (see the module docstring)."""

    keep_requests: int = 20_000
    keep_versions: int = 2
    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    history: collections.deque[rendering.Request] = attrs.field(init=False)
    counts: collections.Counter[tuple[str, str, str]] = attrs.field(
        factory=collections.Counter, init=False
    )

    @history.default
    def _history(self) -> collections.deque[rendering.Request]:
        return collections.deque(maxlen=self.keep_requests)

    def register_crd(self, crd: Mapping[str, Any]) -> list[kmock.resource]:
        """Declare the resource(s) of a CustomResourceDefinition manifest."""
        spec = crd["spec"]
        names = spec["names"]
        declared = []
        for version in spec["versions"]:
            resource = kmock.resource(spec["group"], version["name"], names["plural"])
            self.resources[resource] = kmock.ResourceInfo(
                kind=names["kind"],
                singular=names.get("singular"),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                verbs=VERBS,
                shortnames=set(names.get("shortNames", [])),
                categories=set(names.get("categories", [])),
                subresources={"status"} if "status" in (version.get("subresources") or {}) else (),
            )
            declared.append(resource)
        return declared

    def read_object(
        self, resource: kmock.resource, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The stored object, or None when absent or deleted."""
        key = (resource, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return dict(self.objects[key].raw)

    def list_objects(
        self, resource: kmock.resource, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Every live object of a resource (in a namespace, if given)."""
        return [
            dict(obj.raw)
            for (res, ns, _), obj in self.objects.items()
            if res == resource and (namespace is None or ns == namespace) and not obj.deleted
        ]

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        try:
            if request.resource is not None:
                if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                    self._stamp_create(request)
                elif request.action == kmock.action.UPDATE and request.name is not None:
                    self._stamp_update(request)
            return await super()._handle(request)
        finally:
            self._retire(request)

    def _retire(self, request: rendering.Request) -> None:
        """Move a served request out of kmock's matching lists into `history` and `counts`."""
        for held in (self._requests, *(payload._requests for payload in self._payloads)):
            for index in range(len(held) - 1, -1, -1):
                if held[index] is request:
                    del held[index]
                    break
        self.history.append(request)
        method = str(getattr(request.method, "value", request.method)).upper()
        plural = request.resource.plural if request.resource is not None else ""
        self.counts[method, plural or "", request.subresource or ""] += 1
        if request.resource is not None and request.name is not None:
            key = (request.resource, request.namespace, request.name)
            if key in self.objects and len(self.objects[key].history) > self.keep_versions:
                del self.objects[key].history[: -self.keep_versions]

    def _stored(
        self, resource: kmock.resource | None, namespace: str | None, name: str | None
    ) -> Any:
        """The stored object of exactly this key (as kmock's strict match), or None."""
        key = (resource, namespace, name)
        return self.objects[key] if key in self.objects else None

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        async with self._lock:
            obj = self._stored(request.resource, request.namespace, request.name)
        if obj is None or obj.deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return obj.raw

    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        meta = request.data.get("metadata", {}) if isinstance(request.data, dict) else {}
        async with self._lock:
            obj = self._stored(
                request.resource,
                request.namespace or meta.get("namespace"),
                request.name or meta.get("name"),
            )
        assert obj is not None  # stored by kmock's _handle before this answers
        return obj.raw

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        async with self._lock:
            obj = self._stored(request.resource, request.namespace, request.name)
        assert obj is not None  # kmock's _handle answered 404 otherwise
        return obj.last.raw

    _serve_delete = _serve_update  # kmock answers a delete with the last state, as an update

    def _next_version(self) -> str:
        return str(next(self._versions))

    def _stamp_create(self, request: rendering.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            alphabet = string.ascii_lowercase + string.digits
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(alphabet) for _ in range(5)
            )
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["resourceVersion"] = self._next_version()
        meta["generation"] = 1

    def _stamp_update(self, request: rendering.Request) -> None:
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # the stock emulator answers 404
        current = dict(self.objects[key].raw)
        has_status = "status" in self.resources[request.resource].subresources
        data = request.data
        if isinstance(data, list):  # JSON patch (RFC 6902)
            try:
                patched = jsonpatch.apply_patch(current, data, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                # JsonPatchTestFailed is one of these: Kopf expects 422 and re-reads the object
                raise kmock.KubernetesError(
                    status=422, reason="Invalid", message=str(exc)
                ) from None
            data.append(
                {"op": "add", "path": "/metadata/resourceVersion", "value": self._next_version()}
            )
            if request.subresource is None and patched.get("spec") != current.get("spec"):
                data.append(
                    {
                        "op": "add",
                        "path": "/metadata/generation",
                        "value": int(current["metadata"].get("generation", 1)) + 1,
                    }
                )
        elif isinstance(data, dict):  # merge patch
            wanted = (data.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current["metadata"].get("resourceVersion"):
                raise kmock.KubernetesError(
                    status=409, reason="Conflict", message="the object has been modified"
                )
            if request.subresource == "status":
                for field in [k for k in data if k != "status"]:
                    del data[field]
            elif has_status:
                data.pop("status", None)
            meta = data.setdefault("metadata", {})
            meta["resourceVersion"] = self._next_version()
            if request.subresource is None and "spec" in data:
                spec = kmock_dicts.patch_dict(current.get("spec") or {}, data["spec"] or {})
                if spec != current.get("spec"):
                    meta["generation"] = int(current["metadata"].get("generation", 1)) + 1


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
