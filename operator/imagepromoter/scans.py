"""One registry scan per image, however many ImagePromotions name it, and for every kind of pass.

A common layout has one ImagePromotion per environment, all naming the same image; with thousands
of CRs on one operator, letting each pass list the tags itself multiplies the requests to the
registry by the number of CRs. `SharedScans` wraps any registry reader (the Protocol
`reconcile.RegistryReader`; here restated as `Reader`, since the pure core may not import
reconcile) and shares the answers:

- Freshness is a time, not a flag: `RegistryAccess.not_before` (epoch seconds). An answer whose
  request STARTED at or after it is good enough; so is a request still in flight that started at
  or after it (the caller joins it); otherwise a new request is made. The caller says what it
  needs (a created CR: its creationTimestamp; a timer pass: now minus the image's shortest
  interval; see pipeline/freshness.py), so 1,000 CRs created at once share one scan while a CR
  created after a scan started gets a new one. None accepts any answer still kept.
- The newest answer per key is kept (tag lists and digests alike) with its start time, bounded by
  `max_entries` (least recently used first out) and `max_age` (generous: one tag list per image
  and credential identity is little memory), on an injectable wall clock. A failure is never
  kept, so the next pass asks again.
- Keys: (host, repository, insecure, who). `who` is an HMAC of the username and password under a
  key drawn once per instance, so the cache never holds a password in clear and its keys cannot be
  compared across processes or attacked with a dictionary offline. Two CRs with different
  credentials never share an answer: one must not read through the other's access.
- A flight is also keyed by the Secret name, since error messages name it ("the credentials in
  Secret X cannot read it") and a waiter must not be told about another CR's Secret. Successes
  are not: a listing fetched through Secret `a` is served to a CR whose Secret `b` holds the same
  credentials.
- `on_change(host, repository, started)` is called when a tag listing differs from the one kept
  before it for the same key, or a kept digest moved (not on a first answer: there is nothing to
  compare), so the operator can make every other CR of that image act on it now instead of at
  its own interval. `started` is when the request that found it started; within `recording()`,
  each listing served records the start of the request it came from, so a pass can tell whether
  it saw that answer or an older one (kube/schedule.py keeps the poke of a pass that did not).
- `created` (policy newest) is shared the same way, keyed by the image and the set of candidate
  tags (CRs of one image with one tagRegex ask for the same set): the client caches the times by
  digest, but still reads each candidate's digest on every call.

A flight runs as its own task, shielded from its waiters: a waiter that is cancelled (its pass
timed out, its CR was deleted) does not cancel the others; the task is cancelled only when its
last waiter is gone. `aclose()` cancels what is still in flight and closes the inner reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from imagepromoter.reference import RegistryAccess

DEFAULT_MAX_AGE = 3600.0  # seconds: longer than any sensible interval, short enough to forget
DEFAULT_MAX_ENTRIES = 100_000

T = TypeVar("T")
OnChange = Callable[[str, str, float], None]  # (host, repository, the finding request's start)
ImageKey = tuple[str, str]  # (host, repository)
_SERVED: contextvars.ContextVar[dict[ImageKey, float] | None] = contextvars.ContextVar(
    "imagepromoter_scans_served", default=None
)


@contextlib.contextmanager
def recording() -> Iterator[dict[ImageKey, float]]:
    """Within it, each tag listing served to this task records its request's start, by image."""
    served: dict[ImageKey, float] = {}
    token = _SERVED.set(served)
    try:
        yield served
    finally:
        _SERVED.reset(token)


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
    started: float  # on the wall clock: what a waiter's not_before is compared with
    waiters: int = 0


@dataclass
class _Shared(Generic[T]):
    """One kind of answer (tag lists or digests): its cache, its flights and its counters."""

    max_age: float
    max_entries: int
    counters: Counters = field(default_factory=Counters)
    cache: OrderedDict[Hashable, tuple[float, T]] = field(default_factory=OrderedDict)
    flights: dict[Hashable, _Flight[T]] = field(default_factory=dict)  # the newest per key
    live: set[asyncio.Future[T]] = field(default_factory=set)  # every request still running

    def kept(self, key: Hashable, not_before: float | None, now: float) -> tuple[float, T] | None:
        """The kept answer for `key` if its request started at or after `not_before`."""
        entry = self.cache.get(key)
        if entry is None:
            return None
        if now - entry[0] >= self.max_age:
            del self.cache[key]
            return None
        if not_before is not None and entry[0] < not_before:
            return None
        self.cache.move_to_end(key)  # least recently used leaves first
        return entry

    def joinable(self, flight_key: Hashable, not_before: float | None) -> _Flight[T] | None:
        """The flight in progress for `flight_key` if it started at or after `not_before`."""
        flight = self.flights.get(flight_key)
        if flight is None or (not_before is not None and flight.started < not_before):
            return None
        return flight

    def cancel(self) -> None:
        """Cancel every flight still running."""
        for task in list(self.live):
            task.cancel()

    def store(self, key: Hashable, value: T, started: float, now: float) -> tuple[bool, T | None]:
        """Keep `value` unless a newer answer is kept; (kept it, the value it replaced)."""
        previous = self.cache.get(key)
        if previous is not None and previous[0] > started:
            return False, None  # a request that started later landed first: it is the newer
        self.cache[key] = (started, value)
        self.cache.move_to_end(key)
        while self.cache:
            oldest_key, (stored, _) = next(iter(self.cache.items()))
            if now - stored < self.max_age and len(self.cache) <= self.max_entries:
                break
            del self.cache[oldest_key]
        return True, previous[1] if previous is not None else None


class SharedScans:
    """A registry reader that asks its inner reader once per image, however many CRs ask it."""

    def __init__(
        self,
        inner: Reader,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
        on_change: OnChange | None = None,
    ) -> None:
        self.inner = inner
        self.clock = clock  # the wall clock, in epoch seconds like RegistryAccess.not_before
        self.on_change = on_change  # set by the operator (kube/passes.py) once it runs
        self._tags: _Shared[list[str]] = _Shared(max_age, max_entries)
        self._digests: _Shared[str] = _Shared(max_age, max_entries)
        self._created: _Shared[dict[str, datetime]] = _Shared(max_age, max_entries)
        self._who_key = secrets.token_bytes(32)

    # the RegistryReader Protocol -----------------------------------------------------------------

    async def list_tags(self, access: RegistryAccess) -> list[str]:
        """Every tag of the repository, from a request started at or after access.not_before."""
        key = self._key(access)
        started, tags = await self._answer(
            self._tags,
            key,
            (key, access.secret_name),
            lambda: self.inner.list_tags(access),
            access,
            changed=lambda old, new: set(old) != set(new),
        )
        served = _SERVED.get()
        if served is not None:
            served[(access.image.host, access.image.repository)] = started
        return list(tags)  # a copy each: one caller's edits must not reach another

    async def digest(self, access: RegistryAccess, tag: str) -> str:
        """The digest `tag` points to, from a request started at or after access.not_before."""
        key = (self._key(access), tag)
        _, digest = await self._answer(
            self._digests,
            key,
            (key, access.secret_name),
            lambda: self.inner.digest(access, tag),
            access,
            changed=lambda old, new: old != new,  # the tag moved
        )
        return digest

    async def created(self, access: RegistryAccess, tags: Sequence[str]) -> dict[str, datetime]:
        """Creation times of `tags`, from a request started at or after access.not_before."""
        wanted = tuple(sorted(set(tags)))
        key = (self._key(access), wanted)
        _, times = await self._answer(
            self._created,
            key,
            (key, access.secret_name),
            lambda: self.inner.created(access, wanted),
            access,
            changed=lambda old, new: False,  # the listing and the digests tell changes
        )
        return dict(times)  # a copy each

    async def oci_labels(self, access: RegistryAccess, digest: str) -> dict[str, str]:
        """The image's oci.* variables, straight from the inner reader ({} if it cannot)."""
        read: Callable[..., Awaitable[dict[str, str]]] | None = getattr(
            self.inner, "oci_labels", None
        )
        return await read(access, digest) if read is not None else {}

    async def aclose(self) -> None:
        """Cancel the flights still running and close the inner reader if it can be closed."""
        for shared in (self._tags, self._digests, self._created):
            shared.cancel()
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
    def creation_times(self) -> Counters:
        """How created calls were answered."""
        return self._created.counters

    @property
    def hits(self) -> int:
        """Calls answered from the cache."""
        return sum(c.hits for c in self._all())

    @property
    def misses(self) -> int:
        """Calls that made a request to the inner reader."""
        return sum(c.misses for c in self._all())

    @property
    def coalesced(self) -> int:
        """Calls that joined a request already in flight."""
        return sum(c.coalesced for c in self._all())

    def _all(self) -> tuple[Counters, ...]:
        return (self._tags.counters, self._digests.counters, self._created.counters)

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
        access: RegistryAccess,
        *,
        changed: Callable[[T, T], bool],
    ) -> tuple[float, T]:
        """(when the request that answers started, its answer)."""
        cached = shared.kept(key, access.not_before, self.clock())
        if cached is not None:
            shared.counters.hits += 1
            return cached
        flight = shared.joinable(flight_key, access.not_before)
        if flight is None:
            shared.counters.misses += 1
            flight = _Flight(asyncio.ensure_future(fetch()), started=self.clock())
            shared.flights[flight_key] = flight  # an older flight still runs for its own waiters
            shared.live.add(flight.task)
            landed = self._landed(shared, key, flight_key, flight, access, changed)
            flight.task.add_done_callback(landed)
        else:
            shared.counters.coalesced += 1
        flight.waiters += 1
        try:
            return flight.started, await asyncio.shield(flight.task)
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
        access: RegistryAccess,
        changed: Callable[[T, T], bool],
    ) -> Callable[[asyncio.Future[T]], None]:
        """The done-callback of `flight`: forget it, keep its answer, tell on_change."""

        def done(task: asyncio.Future[T]) -> None:
            shared.live.discard(task)
            if shared.flights.get(flight_key) is flight:
                del shared.flights[flight_key]
            if task.cancelled() or task.exception() is not None:
                return
            value = task.result()
            stored, previous = shared.store(key, value, flight.started, self.clock())
            if stored and previous is not None and changed(previous, value) and self.on_change:
                self.on_change(access.image.host, access.image.repository, flight.started)

        return done
