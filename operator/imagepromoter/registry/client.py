"""An OCI Distribution client for scanning: tags, digests and creation times, nothing else.

One `RegistryClient` serves every ImagePromotion in the process. It keeps, per registry host, one
httpx connection pool (HTTP/2 over TLS), one `limits.HostLimits` (requests in flight and per
second), what the host asked for at the last 401 (`auth.Challenge`) and whether it refuses our
page size; across hosts it keeps the token cache and a metadata cache keyed by manifest digest
(digests are immutable, so a later scan costs one HEAD per tag plus fetches for new digests).
Every failure is an `errors.RegistryError` or `errors.AuthError` naming the host, the repository
and the fix; credentials are scrubbed and httpx's exceptions (which hold the request headers) are
never chained. The protocol rules (pagination, HEAD for digests, which child of an index, blob
redirects, `insecure`, limits) are stated once, in docs/registry.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import ssl
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from imagepromoter import errors
from imagepromoter.reference import RegistryAccess
from imagepromoter.registry import auth, limits

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
CREATED_ANNOTATION = "org.opencontainers.image.created"

DEFAULT_PAGE_SIZE = 1000
DEFAULT_MAX_TAGS = 100_000
DEFAULT_MAX_BODY = 16 * 2**20
DEFAULT_RETRIES = 4
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is reported instead of waited for
MAX_REDIRECTS = 5

_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_FRACTION = re.compile(r"(\.\d{6})\d+")

OnRequest = Callable[[str, int | None], None]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL


class _Transient(Exception):
    """One attempt failed in a way worth retrying (timeout, reset, truncated body)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class _Host:
    """What we know about one registry host."""

    limits: limits.HostLimits
    scheme: str | None = None  # settled scheme for insecure hosts
    challenge: auth.Challenge | None = None
    rejects_page_size: bool = False
    token_locks: dict[auth.TokenKey, asyncio.Lock] = field(default_factory=dict)


@dataclass
class _Call:
    """One logical request's context: which repository, and the secrets to scrub from errors."""

    access: RegistryAccess
    secrets: list[str]

    @property
    def host(self) -> str:
        return self.access.image.host

    @property
    def repository(self) -> str:
        return self.access.image.repository


class RegistryClient:
    """Reads tags, digests and creation times; share one instance across every CR."""

    def __init__(
        self,
        *,
        max_in_flight: int = limits.DEFAULT_IN_FLIGHT,
        requests_per_second: float = limits.DEFAULT_RATE,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_tags: int = DEFAULT_MAX_TAGS,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        request_timeout: float = 120.0,
        retries: int = DEFAULT_RETRIES,
        platform: str = "linux/amd64",
        on_request: OnRequest | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        metadata_cache_size: int = 100_000,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.requests_per_second = requests_per_second
        self.page_size = page_size
        self.max_tags = max_tags
        self.max_body_bytes = max_body_bytes
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self.request_timeout = request_timeout
        self.retries = retries
        self.platform = platform
        self.on_request = on_request
        self._sleep = sleep  # retries and the rate limit wait through it (tests record it)
        self._clock = clock  # token lifetimes and the rate limit (tests advance it in `sleep`)
        self._hosts: dict[str, _Host] = {}
        self._clients: dict[tuple[str, bool], httpx.AsyncClient] = {}
        self._tokens = auth.TokenCache(clock=clock)
        self._created: OrderedDict[tuple[str, str, str], datetime | None] = OrderedDict()
        self._created_max = metadata_cache_size

    # public API --------------------------------------------------------------------------------

    async def list_tags(self, access: RegistryAccess) -> list[str]:
        """Every tag of the repository, de-duplicated, in the order the registry gave them."""
        call = self._call(access)
        host = self._host(call.host)
        path = f"/v2/{call.repository}/tags/list"
        url: str = path if host.rejects_page_size else f"{path}?n={self.page_size}"
        seen: set[str] = set()
        tags: list[str] = []
        visited: set[str] = set()
        first = True
        while True:
            visited.add(url)
            reply = await self._registry(call, "GET", url, accept="application/json")
            if first and reply.status == 400 and "n=" in url:
                host.rejects_page_size = True
                url = path
                first = False
                continue
            first = False
            self._expect(call, reply, "the tag list")
            page = self._tag_page(call, reply)
            new = 0
            for tag in page:
                if tag not in seen:
                    seen.add(tag)
                    tags.append(tag)
                    new += 1
            if len(tags) > self.max_tags:
                raise self._error(
                    call,
                    errors.RegistryError,
                    f"{call.host} lists more than {self.max_tags} tags for {call.repository}; "
                    "delete old tags or raise the operator's tag limit",
                )
            following = self._next_link(call, reply)
            if following is None:
                return tags
            if following in visited or (page and not new):
                raise self._error(
                    call,
                    errors.RegistryError,
                    f"{call.host} paginates the tags of {call.repository} in a loop "
                    f"(the Link after {len(tags)} tags repeats); the registry is misbehaving",
                )
            url = following

    async def digest(self, access: RegistryAccess, tag: str) -> str:
        """The manifest (or index) digest that `tag` points to now."""
        call = self._call(access)
        found = await self._head_digest(call, tag)
        if found is None:
            raise self._error(
                call,
                errors.RegistryError,
                f"{call.host} has no tag {tag!r} in {call.repository} (deleted since the scan?); "
                "the next scan will choose again",
            )
        return found

    async def created(self, access: RegistryAccess, tags: Sequence[str]) -> dict[str, datetime]:
        """Creation time of each of `tags`; tags that vanished or carry no time are left out."""
        call = self._call(access)
        wanted = list(dict.fromkeys(tags))
        digests = await self._each(wanted, lambda tag: self._head_digest(call, tag))
        by_tag = {tag: d for tag, d in zip(wanted, digests, strict=True) if d is not None}
        missing = [
            d
            for d in dict.fromkeys(by_tag.values())
            if self._cache_key(call, d) not in self._created
        ]
        found = await self._each(missing, lambda d: self._created_of(call, d))
        for digest, when in zip(missing, found, strict=True):
            self._remember(self._cache_key(call, digest), when)
        result: dict[str, datetime] = {}
        for tag, digest in by_tag.items():
            when = self._created.get(self._cache_key(call, digest))
            if when is not None:
                result[tag] = when
        return result

    async def aclose(self) -> None:
        """Close every connection pool."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # tags --------------------------------------------------------------------------------------

    def _tag_page(self, call: _Call, reply: _Reply) -> list[str]:
        doc = self._json(call, reply, "the tag list")
        tags = doc.get("tags", ()) if isinstance(doc, dict) else ()
        if tags is None:  # distribution says null for a repository with no tags left
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise self._error(
                call,
                errors.RegistryError,
                f"{call.host} sent a tag list for {call.repository} without a `tags` list of "
                "strings; the registry (or a proxy in front of it) is not an OCI registry",
            )
        return tags

    def _next_link(self, call: _Call, reply: _Reply) -> str | None:
        for header in reply.headers.get_list("link"):
            for match in _LINK.finditer(header):
                params = match.group(2).lower().replace(" ", "")
                if 'rel="next"' not in params and "rel=next" not in params:
                    continue
                target = reply.url.join(match.group(1))
                if target.netloc != reply.url.netloc:
                    raise self._error(
                        call,
                        errors.RegistryError,
                        f"{call.host} sent a tag-list Link to another host "
                        f"({target.host}); refusing to follow it",
                    )
                return target.raw_path.decode("ascii")
        return None

    # digests and metadata ----------------------------------------------------------------------

    async def _head_digest(self, call: _Call, tag: str) -> str | None:
        path = f"/v2/{call.repository}/manifests/{urllib.parse.quote(tag, safe='')}"
        reply = await self._registry(call, "HEAD", path, accept=ACCEPT_MANIFESTS)
        if reply.status == 404:
            return None
        self._expect(call, reply, f"tag {tag!r}")
        digest = str(reply.headers.get("docker-content-digest", "")).strip()
        if not digest:  # some registries omit it on HEAD: hash the manifest itself
            reply = await self._registry(call, "GET", path, accept=ACCEPT_MANIFESTS)
            if reply.status == 404:
                return None
            self._expect(call, reply, f"tag {tag!r}")
            digest = "sha256:" + hashlib.sha256(reply.body).hexdigest()
        if not _DIGEST.match(digest):
            raise self._error(
                call,
                errors.RegistryError,
                f"{call.host} sent a malformed digest for {call.repository}:{tag}",
            )
        return digest

    async def _manifest(self, call: _Call, digest: str) -> tuple[dict[str, Any], str] | None:
        path = f"/v2/{call.repository}/manifests/{digest}"
        reply = await self._registry(call, "GET", path, accept=ACCEPT_MANIFESTS)
        if reply.status == 404:
            return None
        self._expect(call, reply, f"manifest {digest}")
        self._verify(call, reply.body, digest, "manifest")
        doc = self._json(call, reply, f"manifest {digest}")
        if not isinstance(doc, dict):
            raise self._error(
                call, errors.RegistryError, f"{call.host} sent a manifest that is not an object"
            )
        media = doc.get("mediaType") or reply.headers.get("content-type", "").split(";")[0]
        return doc, str(media)

    async def _created_of(self, call: _Call, digest: str) -> datetime | None:
        found = await self._manifest(call, digest)
        if found is None:
            return None
        doc, media = found
        when = _annotated(doc)
        if when is not None:
            return when
        if media in INDEX_TYPES or "manifests" in doc:
            child = self._platform_child(doc)
            if child is None:
                return None
            found = await self._manifest(call, child)
            if found is None:
                return None
            doc, _ = found
            when = _annotated(doc)
            if when is not None:
                return when
        config = doc.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str) or not _DIGEST.match(config_digest):
            return None
        blob = await self._blob(call, config_digest)
        try:
            image_config = json.loads(blob)
        except ValueError:
            raise self._error(
                call,
                errors.RegistryError,
                f"{call.host} sent an image config for {call.repository} that is not JSON",
            ) from None
        if not isinstance(image_config, dict):
            return None
        return _parse_time(image_config.get("created"))

    def _platform_child(self, index: dict[str, Any]) -> str | None:
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
        return digest if isinstance(digest, str) and _DIGEST.match(digest) else None

    async def _blob(self, call: _Call, digest: str) -> bytes:
        url = f"/v2/{call.repository}/blobs/{digest}"
        reply = await self._registry(call, "GET", url, accept="*/*")
        for _ in range(MAX_REDIRECTS):
            if reply.status not in (301, 302, 303, 307, 308):
                break
            target = reply.url.join(reply.headers.get("location", ""))
            if target.netloc == reply.url.netloc:
                reply = await self._registry(call, "GET", str(target), accept="*/*")
            else:  # object storage: the URL carries its own signature, our credentials stay home
                try:
                    reply = await self._exchange(
                        call, "GET", target, {}, verify=not call.access.insecure
                    )
                except _Transient as exc:
                    raise self._unreachable(call, target, exc) from None
        self._expect(call, reply, f"config blob {digest}")
        self._verify(call, reply.body, digest, "config blob")
        return reply.body

    def _cache_key(self, call: _Call, digest: str) -> tuple[str, str, str]:
        return (call.host, call.repository, digest)

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

    # the request pipeline ----------------------------------------------------------------------

    def _call(self, access: RegistryAccess) -> _Call:
        secrets = [access.credentials.password] if access.credentials else []
        if access.credentials:
            raw = f"{access.credentials.username}:{access.credentials.password}".encode()
            secrets.append(base64.b64encode(raw).decode())
        return _Call(access, [s for s in secrets if s])

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = _Host(
                limits.HostLimits(
                    self.max_in_flight,
                    self.requests_per_second,
                    clock=self._clock,
                    sleep=self._sleep,
                )
            )
            self._hosts[host] = state
        return state

    def _client(self, netloc: str, verify: bool) -> httpx.AsyncClient:
        client = self._clients.get((netloc, verify))
        if client is None:
            client = httpx.AsyncClient(
                http2=True,
                verify=verify,
                timeout=self.timeout,
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=self.max_in_flight * 2,
                    max_keepalive_connections=self.max_in_flight,
                ),
                headers={"User-Agent": "imagepromoter"},
            )
            self._clients[(netloc, verify)] = client
        return client

    async def _registry(self, call: _Call, method: str, target: str, *, accept: str) -> _Reply:
        """A request to the registry itself: scheme, auth and its single 401 retry."""
        host = self._host(call.host)
        insecure = call.access.insecure
        tentative = insecure and host.scheme is None
        auth_retried = False
        while True:
            scheme = "https" if not insecure else (host.scheme or "http")
            url = (
                httpx.URL(target)
                if "://" in target
                else httpx.URL(f"{scheme}://{call.host}{target}")
            )
            headers = {"Accept": accept}
            used = await self._authorization(call, host, headers)
            try:
                reply = await self._exchange(call, method, url, headers, verify=not insecure)
            except _Transient as exc:
                raise self._unreachable(call, url, exc) from None
            if tentative:
                if reply.status == 400 and b"HTTPS" in reply.body.upper():
                    host.scheme = "https"
                    tentative = False
                    continue
                host.scheme = "http"
                tentative = False
            if reply.status != 401:
                return reply
            challenge = auth.pick(
                auth.parse_challenges(", ".join(reply.headers.get_list("www-authenticate")))
            )
            if challenge is None:
                raise self._error(
                    call,
                    errors.AuthError,
                    f"{call.host} answered 401 for {call.repository} without a usable "
                    "WWW-Authenticate challenge; the registry does not speak the OCI auth flow",
                )
            host.challenge = challenge
            fresh = used is not None and used[2]
            if used is not None:
                self._tokens.discard(used[0], used[1])
            credentials = call.access.credentials
            if auth_retried or fresh or (challenge.scheme == "basic" and credentials is None):
                raise self._refused(call, 401, reply)
            auth_retried = True

    async def _authorization(
        self, call: _Call, host: _Host, headers: dict[str, str]
    ) -> tuple[auth.TokenKey, auth.Token, bool] | None:
        """Add the Authorization the host's last challenge asks for.

        Returns the token used and whether it was fetched just now (a 401 then is final).
        """
        challenge = host.challenge
        credentials = call.access.credentials
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if credentials is not None:
                raw = f"{credentials.username}:{credentials.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            return None
        key = auth.TokenKey(
            realm=challenge.realm,
            service=challenge.service,
            scope=auth.pull_scope(call.repository),
            identity=auth.Identity.of(credentials),
        )
        token = self._tokens.get(key)
        fetched = False
        if token is None:
            lock = host.token_locks.setdefault(key, asyncio.Lock())
            async with lock:
                token = self._tokens.get(key)
                if token is None:
                    token = await self._fetch_token(call, challenge, key)
                    fetched = True
                    self._tokens.put(key, token)
        headers["Authorization"] = f"Bearer {token.value}"
        call.secrets.append(token.value)
        return key, token, fetched

    async def _fetch_token(
        self, call: _Call, challenge: auth.Challenge, key: auth.TokenKey
    ) -> auth.Token:
        realm = httpx.URL(challenge.realm) if challenge.realm else None
        if realm is None or realm.scheme not in ("http", "https") or not realm.host:
            raise self._error(
                call,
                errors.AuthError,
                f"{call.host} asked for a Bearer token without a usable realm URL; "
                "the registry's auth configuration is broken",
            )
        credentials = call.access.credentials
        if realm.scheme == "http" and credentials is not None and not call.access.insecure:
            raise self._error(
                call,
                errors.AuthError,
                f"{call.host} sends us to a plain-HTTP token service ({realm.host}); refusing to "
                "send the credentials unencrypted (set spec.insecure: true only if you trust "
                "the network)",
            )
        params = {"scope": key.scope}
        if challenge.service:
            params["service"] = challenge.service
        url = realm.copy_merge_params(params)
        headers = {"Accept": "application/json"}
        if credentials is not None:
            raw = f"{credentials.username}:{credentials.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        try:
            reply = await self._exchange(call, "GET", url, headers, verify=not call.access.insecure)
        except _Transient as exc:
            raise self._unreachable(call, url, exc, token=True) from None
        if reply.status in (401, 403):
            if credentials is None:
                message = (
                    f"{realm.netloc.decode()} answered {reply.status} to an anonymous token "
                    f"request for {call.repository}: the image is private and no "
                    "imagePullSecret is set"
                )
            else:
                message = (
                    f"{realm.netloc.decode()} answered {reply.status} to the token request for "
                    f"{call.repository}: {self._whose(call)} were refused; check the username "
                    "and password (or token)"
                )
            raise self._error(call, errors.AuthError, message)
        if reply.status != 200:
            raise self._error(
                call,
                errors.RegistryError,
                f"{realm.netloc.decode()} answered {reply.status} to the token request for "
                f"{call.repository}{_registry_says(reply.body)}",
            )
        try:
            doc = json.loads(reply.body)
        except ValueError:
            doc = None
        token = auth.token_from_response(doc, self._tokens.clock())
        if token is None:
            raise self._error(
                call,
                errors.AuthError,
                f"{realm.netloc.decode()} answered the token request for {call.repository} "
                "without a token",
            )
        return token

    async def _exchange(
        self,
        call: _Call,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        *,
        verify: bool,
    ) -> _Reply:
        """One request with limits, timeouts and retries on resets, 429 and 5xx."""
        netloc = url.netloc.decode()
        host = self._host(netloc)
        client = self._client(netloc, verify)
        attempt = 0
        while True:
            try:
                async with host.limits.slot():
                    reply = await self._attempt(client, method, url, headers, call)
            except _Transient:
                self._report(netloc, None)
                if attempt >= self.retries:
                    raise
                await self._sleep(limits.backoff(attempt))
                attempt += 1
                continue
            self._report(netloc, reply.status)
            if reply.status not in limits.RETRYABLE_STATUS:
                return reply
            wait = limits.retry_after(reply.headers.get("retry-after"))
            if attempt >= self.retries or (wait is not None and wait > MAX_RETRY_AFTER):
                raise self._busy(call, reply, attempt + 1, wait)
            await self._sleep(wait if wait is not None else limits.backoff(attempt))
            attempt += 1

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        call: _Call,
    ) -> _Reply:
        try:
            async with asyncio.timeout(self.request_timeout):
                request = client.build_request(method, url, headers=headers)
                response = await client.send(request, stream=True)
                try:
                    body = await self._read(call, response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise _Transient(f"no complete answer within {self.request_timeout:g} s") from None
        except httpx.TimeoutException as exc:
            raise _Transient(_timeout_words(exc)) from None
        except httpx.ConnectError as exc:
            if _unverified(exc):  # retrying cannot help: say what to change instead
                self._report(url.netloc.decode(), None)
                raise self._untrusted(call, url, exc) from None
            raise _Transient(_transport_words(exc)) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Transient(_transport_words(exc)) from None
        except httpx.TransportError as exc:
            raise _Transient(_transport_words(exc)) from None
        return _Reply(response.status_code, response.headers, body, url)

    async def _read(self, call: _Call, response: httpx.Response) -> bytes:
        """The body, or a RegistryError as soon as it exceeds `max_body_bytes`."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._oversized(call, response)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._oversized(call, response)
            chunks.append(chunk)
        return b"".join(chunks)

    def _report(self, host: str, status: int | None) -> None:
        if self.on_request is not None:
            self.on_request(host, status)

    # errors ------------------------------------------------------------------------------------

    def _error(
        self, call: _Call, kind: type[errors.RegistryError], message: str
    ) -> errors.RegistryError:
        for secret in [*call.secrets, *self._tokens.values()]:
            if secret:
                message = message.replace(secret, "<redacted>")
        return kind(message)

    def _whose(self, call: _Call) -> str:
        name = call.access.secret_name
        return f"the credentials in Secret {name}" if name else "the given credentials"

    def _expect(self, call: _Call, reply: _Reply, what: str) -> None:
        if 200 <= reply.status < 300:
            return
        if reply.status in (401, 403):
            raise self._refused(call, reply.status, reply)
        if reply.status == 404:
            raise self._error(
                call,
                errors.RegistryError,
                f"{call.host} answered 404 for {call.repository} ({what}): the repository "
                f"does not exist; check spec.image{_registry_says(reply.body)}",
            )
        raise self._error(
            call,
            errors.RegistryError,
            f"{call.host} answered {reply.status} for {call.repository} ({what})"
            f"{_registry_says(reply.body)}",
        )

    def _refused(self, call: _Call, status: int, reply: _Reply) -> errors.RegistryError:
        if call.access.credentials is None:
            advice = (
                "the image is private and no imagePullSecret is set (or it does not exist); "
                "set spec.imagePullSecret to a Secret that can read it, or check spec.image"
            )
        elif (
            status == 401
            and (self._host(call.host).challenge or auth.Challenge("")).scheme == "basic"
        ):
            advice = f"{self._whose(call)} were refused; check the username and password (or token)"
        else:
            advice = (
                f"{self._whose(call)} cannot read it; grant that account pull access "
                "or check spec.image"
            )
        return self._error(
            call,
            errors.AuthError,
            f"{call.host} answered {status} for {call.repository}: {advice}"
            f"{_registry_says(reply.body)}",
        )

    def _busy(
        self, call: _Call, reply: _Reply, attempts: int, wait: float | None
    ) -> errors.RegistryError:
        what = "too many requests" if reply.status == 429 else "unavailable"
        if wait is not None and wait > MAX_RETRY_AFTER:
            tail = f"it asked us to wait {wait:.0f} s; the next scan will try again"
        else:
            tail = f"gave up after {attempts} attempts; the next scan will try again"
        return self._error(
            call,
            errors.RegistryError,
            f"{reply.url.netloc.decode()} answered {reply.status} ({what}) for "
            f"{call.repository}: {tail}",
        )

    def _unreachable(
        self, call: _Call, url: httpx.URL, exc: _Transient, *, token: bool = False
    ) -> errors.RegistryError:
        hint = "check the host name and the network"
        if url.scheme == "https" and not call.access.insecure:
            hint += ", or set spec.insecure: true for a plain-HTTP or self-signed registry"
        what = "the token service " + url.netloc.decode() if token else url.netloc.decode()
        return self._error(
            call,
            errors.RegistryError,
            f"{what} could not be read for {call.repository} after {self.retries + 1} "
            f"attempts ({exc.detail}); {hint}",
        )

    def _untrusted(
        self, call: _Call, url: httpx.URL, exc: httpx.ConnectError
    ) -> errors.RegistryError:
        reason = re.sub(r"\s*\(_ssl\.c:\d+\)", "", _transport_words(exc))
        reason = reason.removeprefix("could not connect: ")
        return self._error(
            call,
            errors.RegistryError,
            f"{url.netloc.decode()} presented a TLS certificate that could not be verified "
            f"({reason}) for {call.repository}; if the registry uses a self-signed certificate "
            "or a private CA, set spec.insecure: true for it, or give the operator that CA "
            "(SSL_CERT_FILE)",
        )

    def _oversized(self, call: _Call, response: httpx.Response) -> errors.RegistryError:
        return self._error(
            call,
            errors.RegistryError,
            f"{response.url.netloc.decode()} sent more than {self.max_body_bytes} bytes for "
            f"{call.repository} ({response.url.path}); refusing to read further",
        )

    def _json(self, call: _Call, reply: _Reply, what: str) -> Any:
        try:
            return json.loads(reply.body)
        except ValueError:
            raise self._error(
                call,
                errors.RegistryError,
                f"{call.host} sent invalid JSON for {what} of {call.repository}; the registry "
                "(or a proxy in front of it) is misbehaving",
            ) from None

    def _verify(self, call: _Call, body: bytes, digest: str, what: str) -> None:
        algorithm, _, expected = digest.partition(":")
        if hashlib.new(algorithm, body).hexdigest() != expected:
            raise self._error(
                call,
                errors.RegistryError,
                f"{call.host} sent a {what} for {call.repository} that does not match its "
                f"digest {digest}; the registry or a proxy altered it",
            )


def _annotated(doc: dict[str, Any]) -> datetime | None:
    annotations = doc.get("annotations")
    if isinstance(annotations, dict):
        return _parse_time(annotations.get(CREATED_ANNOTATION))
    return None


def _parse_time(value: object) -> datetime | None:
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


def _registry_says(body: bytes) -> str:
    """The registry's own error codes and messages, short, for the end of a message."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    found: Iterable[Any] = doc.get("errors") or [] if isinstance(doc, dict) else []
    parts = []
    for item in found if isinstance(found, list) else []:
        if isinstance(item, dict):
            text = ": ".join(str(item[k]) for k in ("code", "message") if item.get(k))
            parts.append("".join(c for c in text if c.isprintable())[:160])
    return f" (registry says: {'; '.join(parts[:3])})" if parts else ""


def _unverified(exc: BaseException) -> bool:
    """Whether a connection failed because the server's certificate could not be verified."""
    seen: BaseException | None = exc
    for _ in range(10):  # httpx -> httpcore -> ssl, each raised `from` the one below
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _timeout_words(exc: httpx.TimeoutException) -> str:
    kind = {
        httpx.ConnectTimeout: "connecting timed out",
        httpx.ReadTimeout: "the answer stalled",
        httpx.WriteTimeout: "sending timed out",
        httpx.PoolTimeout: "no free connection",
    }
    return kind.get(type(exc), "timed out")


def _transport_words(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect: " + (str(exc).split("]")[-1].strip() or "refused")[:120]
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke mid-answer (truncated or malformed response)"
    return f"{type(exc).__name__}: {str(exc)[:120]}"
