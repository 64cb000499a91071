"""One registry scan per image, however many ImagePromotions name it.

A common layout has one ImagePromotion per environment, all naming the same image; with thousands
of CRs on one operator, letting each pass list the tags itself multiplies the requests to the
registry by the number of environments. `SharedScans` wraps any registry reader (the Protocol
`reconcile.RegistryReader`; here restated as `Reader`, since the pure core may not import
reconcile) and shares the answers:

- Single flight: concurrent identical calls make one call to the inner reader; every waiter gets
  its result, or its exception. A failure is never cached, so the next pass asks again.
- A short cache: a successful answer is kept for `max_age` seconds (tag lists) or
  `digest_max_age` (tag -> digest; shorter, since tags move), measured on an injectable clock.
- Keys: (host, repository, insecure, who). `who` is an HMAC of the username and password under a
  key drawn once per instance, so the cache never holds a password in clear and its keys cannot be
  compared across processes or attacked with a dictionary offline. Two CRs with different
  credentials never share an answer: one must not read through the other's access.
- A flight is also keyed by the Secret name, since error messages name it ("the credentials in
  Secret X cannot read it") and a waiter must not be told about another CR's Secret. Successes
  are not: a listing fetched through Secret `a` is served from the cache to a CR whose Secret `b`
  holds the same credentials.
- `created` passes straight through: the client already caches creation times by digest.

A flight runs as its own task, shielded from its waiters: a waiter that is cancelled (its pass
timed out, its CR was deleted) does not cancel the others; the task is cancelled only when its
last waiter is gone. `aclose()` cancels what is still in flight and closes the inner reader.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from imagepromoter.reference import RegistryAccess

DEFAULT_MAX_AGE = 10.0
DEFAULT_DIGEST_MAX_AGE = 2.0
DEFAULT_MAX_ENTRIES = 100_000

T = TypeVar("T")


class Reader(Protocol):
    """What `reconcile.RegistryReader` asks of a registry adapter."""

    async def list_tags(self, access: RegistryAccess) -> list[str]: ...

    async def digest(self, access: RegistryAccess, tag: str) -> str: ...

    async def created(self, access: RegistryAccess, tags: Sequence[str]) -> dict[str, datetime]: ...


@dataclass
class Counters:
    """How calls were answered: from the cache, by a new request, or by joining one in flight."""

    hits: int = 0
    misses: int = 0
    coalesced: int = 0


@dataclass
class _Flight(Generic[T]):
    task: asyncio.Future[T]
    waiters: int = 0


@dataclass
class _Shared(Generic[T]):
    """One kind of answer (tag lists or digests): its cache, its flights and its counters."""

    max_age: float
    max_entries: int
    counters: Counters = field(default_factory=Counters)
    cache: OrderedDict[Hashable, tuple[float, T]] = field(default_factory=OrderedDict)
    flights: dict[Hashable, _Flight[T]] = field(default_factory=dict)

    def fresh(self, key: Hashable, now: float) -> tuple[float, T] | None:
        """The cached answer for `key` if it is younger than max_age (dropping it if not)."""
        entry = self.cache.get(key)
        if entry is None:
            return None
        if now - entry[0] < self.max_age:
            return entry
        del self.cache[key]
        return None

    def cancel(self) -> None:
        """Cancel every flight still running."""
        for flight in list(self.flights.values()):
            flight.task.cancel()

    def store(self, key: Hashable, value: T, now: float) -> None:
        """Remember `value`; entries are kept in age order, so the expired ones are in front."""
        self.cache[key] = (now, value)
        self.cache.move_to_end(key)
        while self.cache:
            oldest_key, (stored, _) = next(iter(self.cache.items()))
            if now - stored < self.max_age and len(self.cache) <= self.max_entries:
                break
            del self.cache[oldest_key]


class SharedScans:
    """A registry reader that asks its inner reader once per image, however many CRs ask it."""

    def __init__(
        self,
        inner: Reader,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        digest_max_age: float = DEFAULT_DIGEST_MAX_AGE,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.clock = clock
        self._tags: _Shared[list[str]] = _Shared(max_age, max_entries)
        self._digests: _Shared[str] = _Shared(digest_max_age, max_entries)
        self._who_key = secrets.token_bytes(32)

    # the RegistryReader Protocol -----------------------------------------------------------------

    async def list_tags(self, access: RegistryAccess) -> list[str]:
        """Every tag of the repository, as the inner reader lists it, at most max_age old."""
        key = self._key(access)
        tags = await self._answer(
            self._tags,
            key,
            (key, access.secret_name),
            lambda: self.inner.list_tags(access),
            bypass_cache=access.fresh,
        )
        return list(tags)  # a copy each: one caller's edits must not reach another

    async def digest(self, access: RegistryAccess, tag: str) -> str:
        """The digest `tag` points to, at most digest_max_age old."""
        key = (self._key(access), tag)
        return await self._answer(
            self._digests,
            key,
            (key, access.secret_name),
            lambda: self.inner.digest(access, tag),
            bypass_cache=access.fresh,
        )

    async def created(self, access: RegistryAccess, tags: Sequence[str]) -> dict[str, datetime]:
        """Creation times, straight from the inner reader (it caches them by digest)."""
        return await self.inner.created(access, tags)

    async def oci_labels(self, access: RegistryAccess, digest: str) -> dict[str, str]:
        """The image's oci.* variables, straight from the inner reader ({} if it cannot)."""
        read: Callable[..., Awaitable[dict[str, str]]] | None = getattr(
            self.inner, "oci_labels", None
        )
        return await read(access, digest) if read is not None else {}

    async def aclose(self) -> None:
        """Cancel the flights still running and close the inner reader if it can be closed."""
        self._tags.cancel()
        self._digests.cancel()
        close: Callable[[], Awaitable[Any]] | None = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()

    # counters ------------------------------------------------------------------------------------

    @property
    def tag_lists(self) -> Counters:
        """How list_tags calls were answered."""
        return self._tags.counters

    @property
    def digests(self) -> Counters:
        """How digest calls were answered."""
        return self._digests.counters

    @property
    def hits(self) -> int:
        """Calls answered from the cache."""
        return self._tags.counters.hits + self._digests.counters.hits

    @property
    def misses(self) -> int:
        """Calls that made a request to the inner reader."""
        return self._tags.counters.misses + self._digests.counters.misses

    @property
    def coalesced(self) -> int:
        """Calls that joined a request already in flight."""
        return self._tags.counters.coalesced + self._digests.counters.coalesced

    # internals -----------------------------------------------------------------------------------

    def _key(self, access: RegistryAccess) -> tuple[str, str, bool, str | None]:
        return (
            access.image.host,
            access.image.repository,
            access.insecure,
            self._who(access),
        )

    def _who(self, access: RegistryAccess) -> str | None:
        """An identity of the credentials that cannot be turned back into the password."""
        creds = access.credentials
        if creds is None:
            return None
        user, password = creds.username.encode(), creds.password.encode()
        message = len(user).to_bytes(4, "big") + user + password
        return hmac.new(self._who_key, message, hashlib.sha256).hexdigest()

    async def _answer(
        self,
        shared: _Shared[T],
        key: Hashable,
        flight_key: Hashable,
        fetch: Callable[[], Awaitable[T]],
        *,
        bypass_cache: bool = False,
    ) -> T:
        cached = None if bypass_cache else shared.fresh(key, self.clock())
        if cached is not None:
            shared.counters.hits += 1
            return cached[1]
        flight = shared.flights.get(flight_key)
        if flight is None:
            shared.counters.misses += 1
            flight = _Flight(asyncio.ensure_future(fetch()))
            shared.flights[flight_key] = flight
            flight.task.add_done_callback(
                lambda task: self._landed(shared, key, flight_key, flight, task)
            )
        else:
            shared.counters.coalesced += 1
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.task.cancel()  # every waiter gave up: nobody wants the answer

    def _landed(
        self,
        shared: _Shared[T],
        key: Hashable,
        flight_key: Hashable,
        flight: _Flight[T],
        task: asyncio.Future[T],
    ) -> None:
        if shared.flights.get(flight_key) is flight:
            del shared.flights[flight_key]
        if not task.cancelled() and task.exception() is None:
            shared.store(key, task.result(), self.clock())
