"""An OCI Distribution client for scanning: tags, digests and creation times, nothing else.

`RegistryClient` is the facade the rest of the operator sees (reconcile's RegistryReader); one
instance serves every ImagePromotion in the process. Behind it, one module per concern:
- `transport`: httpx pools per host (HTTP/2 over TLS), the scheme for `insecure` (Docker's
  order: HTTPS unverified, plain HTTP only for a host that speaks no TLS), exact body bytes
  (identity for manifests, decoding what arrives compressed anyway), retries and the deadline;
- `session`: the auth flow (challenge, token, one 401 retry) and redirects, with credentials
  only for the same scheme, host and port, never a downgrade;
- `paging`: the tag list and its bounds (pages, tags, loops); `lookups`: digests and creation
  times with their by-digest cache; `messages`: every error's wording, secrets scrubbed;
- `auth` (challenges, tokens) and `limits` (per-host concurrency and rate, backoff, deadlines).

Each public call gets a fresh `messages.Call`: the access, the secrets to scrub from any
message, and the scan's deadline (`scan_deadline` seconds on the client's `clock`).
docs/registry.md states the rules for users.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import httpx

from imagepromoter.reference import RegistryAccess
from imagepromoter.registry import auth, limits, lookups, messages, paging, session, transport

DEFAULT_PAGE_SIZE = paging.DEFAULT_PAGE_SIZE
DEFAULT_MAX_TAGS = paging.DEFAULT_MAX_TAGS
DEFAULT_MAX_PAGES = paging.DEFAULT_MAX_PAGES
DEFAULT_MAX_BODY = 16 * 2**20
DEFAULT_RETRIES = 4
DEFAULT_SCAN_DEADLINE = 300.0

OnRequest = transport.OnRequest
Sleep = transport.Sleep
parse_time = lookups.parse_time


class RegistryClient:
    """Reads tags, digests and creation times; share one instance across every CR."""

    def __init__(
        self,
        *,
        max_in_flight: int = limits.DEFAULT_IN_FLIGHT,
        requests_per_second: float = limits.DEFAULT_RATE,
        burst: float | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_tags: int = DEFAULT_MAX_TAGS,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        request_timeout: float = 120.0,
        scan_deadline: float = DEFAULT_SCAN_DEADLINE,
        retries: int = DEFAULT_RETRIES,
        platform: str = "linux/amd64",
        on_request: OnRequest | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        metadata_cache_size: int = 100_000,
    ) -> None:
        self.scan_deadline = scan_deadline
        self._clock = clock  # deadlines, token lifetimes, the rate limit (tests fake it)
        self._tokens = auth.TokenCache(clock=clock)
        self._transport = transport.Transport(
            max_in_flight=max_in_flight,
            requests_per_second=requests_per_second,
            max_body_bytes=max_body_bytes,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            request_timeout=request_timeout,
            retries=retries,
            on_request=on_request,
            sleep=sleep,  # retries and the rate limit wait through it (tests record it)
            clock=clock,
            burst=burst,  # None: two seconds' worth of requests_per_second
        )
        self._session = session.Session(self._transport, self._tokens)
        self._pager = paging.Pager(
            self._session, page_size=page_size, max_tags=max_tags, max_pages=max_pages
        )
        self._lookups = lookups.Lookups(
            self._session,
            max_in_flight=max_in_flight,
            platform=platform,
            cache_size=metadata_cache_size,
        )

    async def list_tags(self, access: RegistryAccess) -> list[str]:
        """Every tag of the repository, de-duplicated, in the order the registry gave them."""
        return await self._pager.list_tags(self._call(access))

    async def digest(self, access: RegistryAccess, tag: str) -> str:
        """The manifest (or index) digest that `tag` points to now."""
        call = self._call(access)
        found = await self._lookups.digest(call, tag)
        if found is None:
            raise messages.no_tag(call, tag)
        return found

    async def created(self, access: RegistryAccess, tags: Sequence[str]) -> dict[str, datetime]:
        """Creation time of each of `tags`; tags that vanished or carry no time are left out."""
        return await self._lookups.created(self._call(access), tags)

    async def oci_labels(self, access: RegistryAccess, digest: str) -> dict[str, str]:
        """The image's `oci.*` template variables (see registry/labels.py)."""
        from imagepromoter.registry import labels  # labels imports this module

        return await labels.oci_labels(self, access, digest)

    async def aclose(self) -> None:
        """Close every connection pool."""
        await self._transport.aclose()

    def _call(self, access: RegistryAccess) -> messages.Call:
        secrets = []
        if access.credentials:
            username, password = access.credentials.username, access.credentials.password
            raw = f"{username}:{password}".encode()
            secrets = [password, base64.b64encode(raw).decode()]
        return messages.Call(
            access,
            [s for s in secrets if s],
            limits.Deadline(self.scan_deadline, self._clock),
            scrub_also=self._tokens.values,
        )
