"""Digests and creation times: what a tag points to, and when that image was built.

- Digest: `HEAD /v2/<name>/manifests/<tag>` with all four manifest media types in `Accept`
  (ghcr.io answers 404 to a HEAD without the OCI index type), reading `Docker-Content-Digest`;
  a registry that omits it gets a GET, and the digest is computed over the manifest bytes.
  HEAD is what Docker Hub does not count as a pull.
- Creation time, only for the tags the caller names: a HEAD per tag, then, only for digests not
  seen before, the manifest by digest (verified against it), then the
  `org.opencontainers.image.created` annotation if present, else the config blob's `created`.
  For an index the child is the one for `platform`; without one, the first that is not an
  attestation (`unknown/unknown`). Digests are immutable, so the answer is cached by (host,
  repository, digest) and a later scan costs one HEAD per tag plus the new digests' fetches.
Manifests and blobs are asked for with `Accept-Encoding: identity`: their digests are over the
exact bytes the registry stores (the transport decodes any compression sent anyway).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from imagepromoter import bounded
from imagepromoter.registry import messages
from imagepromoter.registry.messages import Call
from imagepromoter.registry.session import Session
from imagepromoter.registry.transport import IDENTITY, Reply

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
CREATED_ANNOTATION = "org.opencontainers.image.created"

DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_FRACTION = re.compile(r"(\.\d{6})\d+")

T = TypeVar("T")
R = TypeVar("R")


class Lookups:
    """Digests and creation times through a Session, with the by-digest time cache."""

    def __init__(
        self,
        session: Session,
        *,
        max_in_flight: int,
        platform: str = "linux/amd64",
        cache_size: int = 100_000,
    ) -> None:
        self.session = session
        self.max_in_flight = max_in_flight
        self.platform = platform
        self._created: OrderedDict[tuple[str, str, str], datetime | None] = OrderedDict()
        self._created_max = cache_size

    async def digest(self, call: Call, tag: str) -> str | None:
        """The digest `tag` points to now, or None if there is no such tag."""
        path = f"/v2/{call.repository}/manifests/{urllib.parse.quote(tag, safe='')}"
        reply = await self.session.get(
            call, "HEAD", path, accept=ACCEPT_MANIFESTS, encoding=IDENTITY
        )
        if reply.status == 404:
            return None
        self.session.expect(call, reply, f"tag {tag!r}")
        digest = str(reply.headers.get("docker-content-digest", "")).strip()
        if not digest:  # some registries omit it on HEAD: hash the manifest itself
            reply = await self.session.get(
                call, "GET", path, accept=ACCEPT_MANIFESTS, encoding=IDENTITY
            )
            if reply.status == 404:
                return None
            self.session.expect(call, reply, f"tag {tag!r}")
            digest = "sha256:" + hashlib.sha256(reply.body).hexdigest()
        if not DIGEST.match(digest):
            raise messages.sent(call, f"a malformed digest for {call.repository}:{tag}")
        return digest

    async def created(self, call: Call, tags: Sequence[str]) -> dict[str, datetime]:
        """Creation time of each of `tags`; tags that vanished or carry no time are left out."""
        wanted = list(dict.fromkeys(tags))
        digests = await self._each(wanted, lambda tag: self.digest(call, tag))
        by_tag = {tag: d for tag, d in zip(wanted, digests, strict=True) if d is not None}
        missing = [d for d in dict.fromkeys(by_tag.values()) if _key(call, d) not in self._created]
        found = await self._each(missing, lambda d: self._created_of(call, d))
        for digest, when in zip(missing, found, strict=True):
            self._remember(_key(call, digest), when)
        result: dict[str, datetime] = {}
        for tag, digest in by_tag.items():
            when = self._created.get(_key(call, digest))
            if when is not None:
                result[tag] = when
        return result

    # manifests and blobs -----------------------------------------------------------------------

    async def manifest(self, call: Call, digest: str) -> tuple[dict[str, Any], str] | None:
        """The manifest or index `digest` (checked against it) and its media type; None if gone."""
        path = f"/v2/{call.repository}/manifests/{digest}"
        reply = await self.session.get(
            call, "GET", path, accept=ACCEPT_MANIFESTS, encoding=IDENTITY
        )
        if reply.status == 404:
            return None
        self.session.expect(call, reply, f"manifest {digest}")
        _verify(call, reply, digest, "manifest")
        try:
            doc = bounded.loads_json(reply.body)
        except ValueError:
            raise messages.invalid_json(call, f"manifest {digest}") from None
        if not isinstance(doc, dict):
            raise messages.sent(call, "a manifest that is not an object")
        media = doc.get("mediaType") or reply.headers.get("content-type", "").split(";")[0]
        return doc, str(media)

    async def _created_of(self, call: Call, digest: str) -> datetime | None:
        found = await self.manifest(call, digest)
        if found is None:
            return None
        doc, media = found
        when = _annotated(doc)
        if when is not None:
            return when
        if media in INDEX_TYPES or "manifests" in doc:
            child = self.platform_child(doc)
            if child is None:
                return None
            found = await self.manifest(call, child)
            if found is None:
                return None
            doc, _ = found
            when = _annotated(doc)
            if when is not None:
                return when
        config = doc.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str) or not DIGEST.match(config_digest):
            return None
        blob = await self.config_blob(call, config_digest)
        try:
            image_config = bounded.loads_json(blob)
        except ValueError:
            raise messages.sent(
                call, f"an image config for {call.repository} that is not JSON"
            ) from None
        if not isinstance(image_config, dict):
            return None
        return parse_time(image_config.get("created"))

    async def config_blob(self, call: Call, digest: str) -> bytes:
        """The config blob `digest` (through object-storage redirects), checked against it."""
        blob = await self.session.fetch(
            call, f"/v2/{call.repository}/blobs/{digest}", accept="*/*", encoding=IDENTITY
        )
        self.session.expect(call, blob, f"config blob {digest}")
        _verify(call, blob, digest, "config blob")
        return blob.body

    def platform_child(self, index: dict[str, Any]) -> str | None:
        """The digest of the index child for `platform` (else the first non-attestation)."""
        entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
        wanted = self.platform.split("/")

        def platform(entry: dict[str, Any]) -> list[str]:
            found = entry.get("platform")
            p: dict[str, Any] = found if isinstance(found, dict) else {}
            parts = [str(p.get("os", "")), str(p.get("architecture", ""))]
            return [*parts, str(p["variant"])] if p.get("variant") else parts

        chosen = next((e for e in entries if platform(e)[: len(wanted)] == wanted), None)
        if chosen is None:
            chosen = next((e for e in entries if platform(e)[:2] != ["unknown", "unknown"]), None)
        digest = chosen.get("digest") if chosen is not None else None
        return digest if isinstance(digest, str) and DIGEST.match(digest) else None

    def _remember(self, key: tuple[str, str, str], when: datetime | None) -> None:
        self._created[key] = when
        self._created.move_to_end(key)
        while len(self._created) > self._created_max:
            self._created.popitem(last=False)

    async def _each(self, items: Sequence[T], work: Callable[[T], Awaitable[R]]) -> list[R]:
        """`work` on every item with at most `max_in_flight` running; the first error wins."""
        results: list[Any] = [None] * len(items)
        queue = iter(enumerate(items))
        failure: list[BaseException] = []

        async def worker() -> None:
            for index, item in queue:
                if failure:
                    return
                try:
                    results[index] = await work(item)
                except Exception as exc:
                    failure.append(exc)
                    return

        await asyncio.gather(*(worker() for _ in range(min(self.max_in_flight, len(items)))))
        if failure:
            raise failure[0]
        return results


def _key(call: Call, digest: str) -> tuple[str, str, str]:
    return (call.host, call.repository, digest)


def _verify(call: Call, reply: Reply, digest: str, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if hashlib.new(algorithm, reply.body).hexdigest() != expected:
        raise messages.digest_mismatch(call, what, digest)


def _annotated(doc: dict[str, Any]) -> datetime | None:
    annotations = doc.get("annotations")
    if isinstance(annotations, dict):
        return parse_time(annotations.get(CREATED_ANNOTATION))
    return None


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time (nanoseconds and `Z` accepted) as an aware UTC datetime, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
