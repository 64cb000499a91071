"""SharedScans: one request per image however many CRs ask, errors to every waiter, never cached.

The unit tests wrap `MemoryRegistry`, a small but honest registry reader (repositories in a dict,
an account check, a gate that holds requests in flight so concurrency is deterministic). The
last tests put SharedScans in front of the real RegistryClient and a real docker-registry, behind
a counting proxy that sees every request on the wire, directly and through `imagepromoter promote`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import cli, credentials, errors, reference, scans
from tests.fixtures_registry import Scanner
from tests.servers import git_http, registry

HOST = "registry.example"
SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64
ALICE = credentials.BasicCredentials("alice", "alice-password-1")


class MemoryRegistry:
    """A registry reader over a dict: `host/repository` -> {tag: digest}, one optional account."""

    def __init__(
        self,
        repositories: dict[str, dict[str, str]],
        *,
        account: credentials.BasicCredentials | None = None,
    ) -> None:
        self.repositories = repositories
        self.account = account
        self.calls: list[tuple[str, str]] = []  # (method, what), in the order they came in
        self.cancelled: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None  # when set, requests wait for it
        self.parked = 0  # requests waiting for the gate now
        self.closed = False

    async def list_tags(self, access: reference.RegistryAccess) -> list[str]:
        return list(await self._read("list_tags", str(access.image), access))

    async def digest(self, access: reference.RegistryAccess, tag: str) -> str:
        tags = await self._read("digest", f"{access.image}:{tag}", access)
        if tag not in tags:
            raise errors.RegistryError(f"{access.image} has no tag {tag!r}; choose again")
        return tags[tag]

    async def created(self, access: reference.RegistryAccess, tags: Any) -> dict[str, Any]:
        await self._read("created", str(access.image), access)
        return {}

    async def aclose(self) -> None:
        self.closed = True

    async def _read(
        self, method: str, what: str, access: reference.RegistryAccess
    ) -> dict[str, str]:
        self.calls.append((method, what))
        try:
            if self.gate is not None:
                self.parked += 1
                try:
                    await self.gate.wait()
                finally:
                    self.parked -= 1
        except asyncio.CancelledError:
            self.cancelled.append((method, what))
            raise
        if self.account is not None and access.credentials != self.account:
            raise errors.AuthError(
                f"{access.image.host} refused the credentials in Secret {access.secret_name}; "
                "fix the Secret"
            )
        found = self.repositories.get(str(access.image))
        if found is None:
            raise errors.RegistryError(f"{access.image} does not exist; check spec.image")
        return found

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


class Clock:
    """A wall clock (epoch seconds) that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def image(
    repository: str = "org/app",
    *,
    host: str = HOST,
    creds: credentials.BasicCredentials | None = None,
    secret: str | None = None,
    insecure: bool = False,
) -> reference.RegistryAccess:
    return reference.RegistryAccess(
        image=reference.ImageReference(host, repository),
        credentials=creds,
        secret_name=secret,
        insecure=insecure,
    )


def memory(**options: Any) -> MemoryRegistry:
    tags = {"1.0.0": SHA_A, "1.1.0": SHA_B}
    return MemoryRegistry(
        {
            f"{HOST}/org/app": dict(tags),
            f"{HOST}/org/other": dict(tags),
            "mirror.example/org/app": dict(tags),
        },
        **options,
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until `condition` holds (a barrier: nothing here sleeps)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def waiting(shared: scans.SharedScans) -> int:
    """How many callers are waiting for a flight."""
    flights = [*shared._tags.flights.values(), *shared._digests.flights.values()]
    return sum(flight.waiters for flight in flights)


def flights(shared: scans.SharedScans) -> int:
    return len(shared._tags.flights) + len(shared._digests.flights)


async def concurrently(inner: MemoryRegistry, shared: scans.SharedScans, *calls: Any) -> list[Any]:
    """Start every call; once each waits for a flight and each flight is at the gate, open it."""
    inner.gate = asyncio.Event()
    tasks = [asyncio.ensure_future(c) for c in calls]
    await until(
        lambda: waiting(shared) == len(calls) and inner.parked == flights(shared),
        "every call waits for a flight that waits at the gate",
    )
    inner.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


# --- keys ---------------------------------------------------------------------------------------

KEYS = [
    (image(), 1, "the same image is listed once"),
    (image("org/other"), 2, "another repository"),
    (image(host="mirror.example"), 2, "another host"),
    (image(insecure=True), 2, "insecure is another transport"),
    (image(creds=ALICE, secret="pull"), 2, "credentials vs anonymous"),
]
CREDENTIAL_KEYS = [
    (image(creds=ALICE, secret="pull"), 1, "same credentials"),
    (image(creds=ALICE, secret="other-secret"), 1, "same credentials in another Secret"),
    (image(creds=credentials.BasicCredentials("alice", "x"), secret="pull"), 2, "other password"),
    (image(creds=credentials.BasicCredentials("bob", ALICE.password)), 2, "other username"),
    (image(creds=credentials.BasicCredentials("alice-", "password-1")), 2, "split elsewhere"),
]


@pytest.mark.parametrize(
    ("second", "requests"),
    [(s, r) for s, r, _ in KEYS],
    ids=[i for *_, i in KEYS],
)
async def test_a_second_listing_shares_only_with_the_same_key(
    second: reference.RegistryAccess, requests: int
) -> None:
    inner = memory()
    shared = scans.SharedScans(inner, clock=Clock())
    assert await shared.list_tags(image()) == ["1.0.0", "1.1.0"]
    assert await shared.list_tags(second) == ["1.0.0", "1.1.0"]
    assert inner.count("list_tags") == requests
    assert (shared.tag_lists.misses, shared.tag_lists.hits) == (requests, 2 - requests)


@pytest.mark.parametrize(
    ("second", "requests"),
    [(s, r) for s, r, _ in CREDENTIAL_KEYS],
    ids=[i for *_, i in CREDENTIAL_KEYS],
)
async def test_credentials_are_part_of_the_key(
    second: reference.RegistryAccess, requests: int
) -> None:
    inner = memory()
    shared = scans.SharedScans(inner, clock=Clock())
    await shared.list_tags(image(creds=ALICE, secret="pull"))
    await shared.list_tags(second)
    assert inner.count("list_tags") == requests


async def test_no_password_is_kept_in_clear() -> None:
    inner = memory()
    shared = scans.SharedScans(inner, clock=Clock())
    await shared.list_tags(image(creds=ALICE, secret="pull"))
    await shared.digest(image(creds=ALICE, secret="pull"), "1.0.0")
    inner.gate = asyncio.Event()
    held = asyncio.ensure_future(shared.list_tags(image("org/other", creds=ALICE)))
    await until(lambda: waiting(shared) == 1, "the call waits for its flight")
    kept = [
        *shared._tags.cache,
        *shared._digests.cache,
        *shared._tags.flights,
    ]
    assert len(kept) == 3
    atoms = list(_atoms(tuple(kept)))
    assert all(isinstance(a, str | bool) or a is None for a in atoms), atoms
    assert not [a for a in atoms if isinstance(a, str) and ALICE.password in a]
    assert HOST in atoms  # the key is really made of these parts
    inner.gate.set()
    await held


def _atoms(value: object) -> Iterator[object]:
    if isinstance(value, tuple):
        for item in value:
            yield from _atoms(item)
    else:
        yield value


# --- freshness: not_before and the age bound --------------------------------------------------

T0 = 1000.0  # the Clock's start: the first request below starts then

KEPT = [
    # (method, seconds later, not_before of the second call, requests in all)
    ("list_tags", 5.0, None, 1),
    ("list_tags", 5.0, T0 - 1, 1),
    ("list_tags", 5.0, T0, 1),
    ("list_tags", 5.0, T0 + 0.001, 2),
    ("list_tags", 5.0, T0 + 5, 2),
    ("list_tags", 3599.9, None, 1),
    ("list_tags", 3600.0, None, 2),
    ("list_tags", 3600.0, T0, 2),
    ("digest", 5.0, T0, 1),
    ("digest", 5.0, T0 + 0.001, 2),
    ("digest", 3600.0, None, 2),
]


@pytest.mark.parametrize(
    ("method", "later", "not_before", "requests"),
    KEPT,
    ids=[
        f"{m} {t}s later, not_before {'None' if nb is None else f'T0{nb - T0:+g}'}"
        for m, t, nb, _ in KEPT
    ],
)
async def test_a_kept_answer_serves_a_not_before_at_or_before_its_start(
    method: str, later: float, not_before: float | None, requests: int
) -> None:
    inner = memory()
    clock = Clock()
    shared = scans.SharedScans(inner, clock=clock)  # default max_age: one hour

    async def call(access: reference.RegistryAccess) -> object:
        if method == "list_tags":
            return await shared.list_tags(access)
        return await shared.digest(access, "1.1.0")

    first = await call(image())
    clock.now += later
    assert await call(dataclasses.replace(image(), not_before=not_before)) == first
    assert inner.count(method) == requests
    assert shared.misses == requests and shared.hits == 2 - requests


async def test_a_not_before_after_the_kept_answer_asks_the_registry_and_is_shared() -> None:
    inner = memory()
    clock = Clock()
    shared = scans.SharedScans(inner, clock=clock)
    await shared.list_tags(image())
    inner.repositories[f"{HOST}/org/app"]["1.2.0"] = SHA_A  # pushed a moment later
    clock.now += 1
    assert "1.2.0" not in await shared.list_tags(image())  # no bound: the kept answer will do
    triggered = dataclasses.replace(image(), not_before=clock.now)  # a trigger at this instant
    assert "1.2.0" in await shared.list_tags(triggered)  # must not take the older answer
    for access in (image(), triggered):  # and its answer is kept for every later caller
        assert "1.2.0" in await shared.list_tags(access)
    assert inner.count("list_tags") == 2


async def test_a_moved_tag_is_seen_by_a_later_not_before() -> None:
    inner = memory()
    clock = Clock()
    shared = scans.SharedScans(inner, clock=clock)
    assert await shared.digest(image(), "1.1.0") == SHA_B
    inner.repositories[f"{HOST}/org/app"]["1.1.0"] = SHA_A
    clock.now += 4.0
    assert await shared.digest(dataclasses.replace(image(), not_before=T0), "1.1.0") == SHA_B
    assert await shared.digest(dataclasses.replace(image(), not_before=T0 + 4), "1.1.0") == SHA_A


async def test_max_age_zero_still_shares_one_flight() -> None:
    inner = memory()
    shared = scans.SharedScans(inner, max_age=0.0, clock=Clock())
    results = await concurrently(inner, shared, *(shared.list_tags(image()) for _ in range(5)))
    assert results == [["1.0.0", "1.1.0"]] * 5
    await shared.list_tags(image())
    assert inner.count("list_tags") == 2


async def test_the_cache_keeps_at_most_max_entries_least_recently_used_first_out() -> None:
    inner = MemoryRegistry({f"{HOST}/org/app{i}": {"1.0.0": SHA_A} for i in range(5)})
    shared = scans.SharedScans(inner, max_entries=3, clock=Clock())
    for i in range(3):
        await shared.list_tags(image(f"org/app{i}"))
    await shared.list_tags(image("org/app0"))  # used again: app1 is now the least recent
    await shared.list_tags(image("org/app3"))  # pushes app1 out
    assert len(shared._tags.cache) == 3
    await shared.list_tags(image("org/app0"))  # still kept
    assert inner.count("list_tags") == 4
    await shared.list_tags(image("org/app1"))  # gone: asked again
    assert inner.count("list_tags") == 5


class Manual:
    """A reader whose every request waits for the test to answer it, in any order."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[list[str]]] = []

    async def list_tags(self, access: reference.RegistryAccess) -> list[str]:
        self.pending.append(asyncio.get_running_loop().create_future())
        return await self.pending[-1]

    async def digest(self, access: reference.RegistryAccess, tag: str) -> str:
        raise AssertionError("not asked here")

    async def created(self, access: reference.RegistryAccess, tags: Any) -> dict[str, Any]:
        return {}


@dataclasses.dataclass
class Flights:
    """Two calls on one image, 10 s apart, the first one's request made and unanswered."""

    inner: Manual
    clock: Clock
    shared: scans.SharedScans
    older: asyncio.Future[list[str]]
    newer: asyncio.Future[list[str]]


async def ten_seconds_apart(not_before: float | None = T0 + 10, **options: Any) -> Flights:
    """A flight started at T0, then (at T0 + 10) a call with `not_before`."""
    inner, clock = Manual(), Clock()
    shared = scans.SharedScans(inner, clock=clock, **options)
    older = asyncio.ensure_future(shared.list_tags(image()))
    await until(lambda: len(inner.pending) == 1, "the older request is made")
    clock.now += 10
    newer = asyncio.ensure_future(
        shared.list_tags(dataclasses.replace(image(), not_before=not_before))
    )
    return Flights(inner, clock, shared, older, newer)


JOINS = [
    # (not_before of a call made 10 s after a flight started, requests, ids)
    (None, 1, "no bound joins the flight"),
    (T0 - 5, 1, "a flight started after not_before is joined"),
    (T0, 1, "a flight started at not_before is joined"),
    (T0 + 5, 2, "a flight started before not_before is not joined"),
]


@pytest.mark.parametrize(
    ("not_before", "requests"), [(n, r) for n, r, _ in JOINS], ids=[i for *_, i in JOINS]
)
async def test_a_flight_is_joined_only_if_it_started_at_or_after_not_before(
    not_before: float | None, requests: int
) -> None:
    flights = await ten_seconds_apart(not_before)
    inner, shared, first, second = flights.inner, flights.shared, flights.older, flights.newer
    await until(
        lambda: shared.misses + shared.coalesced == 2 and len(inner.pending) == shared.misses,
        "both calls wait, each request made",
    )
    assert len(inner.pending) == requests
    assert (shared.misses, shared.coalesced) == (requests, 2 - requests)
    for i, future in enumerate(inner.pending):
        future.set_result([f"from-request-{i}"])
    assert await first == ["from-request-0"]
    assert await second == [f"from-request-{requests - 1}"]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)], ids=["older lands first", "older lands last"])
async def test_the_newest_answer_is_kept_whichever_lands_last(order: tuple[int, int]) -> None:
    changes: list[tuple[str, str, float]] = []
    flights = await ten_seconds_apart(on_change=lambda *hrs: changes.append(hrs))
    inner, clock, shared = flights.inner, flights.clock, flights.shared
    older, newer = flights.older, flights.newer
    await until(lambda: len(inner.pending) == 2, "the newer request is made")
    answers = (["1.0.0"], ["1.0.0", "2.0.0"])
    for i in order:
        inner.pending[i].set_result(answers[i])
        await (older, newer)[i]
    assert await shared.list_tags(dataclasses.replace(image(), not_before=clock.now)) == answers[1]
    assert len(inner.pending) == 2, "served from the newer answer"
    told = [(HOST, "org/app", T0 + 10)] if order == (0, 1) else []
    assert changes == told, "older, then newer: a change, found by the newer request"


async def test_recording_tells_a_pass_when_the_listing_it_got_was_requested() -> None:
    inner = Manual()
    clock = Clock()
    shared = scans.SharedScans(inner, clock=clock)
    first = asyncio.ensure_future(shared.list_tags(image()))
    await until(lambda: len(inner.pending) == 1, "the request is made")
    inner.pending[0].set_result(["1.0.0"])
    await first
    clock.now += 5

    async def a_pass(not_before: float | None) -> dict[tuple[str, str], float]:
        with scans.recording() as served:
            await shared.list_tags(dataclasses.replace(image(), not_before=not_before))
        return served

    assert await a_pass(None) == {(HOST, "org/app"): T0}, "the kept answer's start"
    newer = asyncio.ensure_future(a_pass(clock.now))
    await until(lambda: len(inner.pending) == 2, "a newer request is made")
    joined = asyncio.ensure_future(a_pass(T0 + 1))
    await until(lambda: shared.coalesced == 1, "a second pass joins it")
    inner.pending[1].set_result(["1.0.0"])
    assert await newer == await joined == {(HOST, "org/app"): T0 + 5}
    await shared.list_tags(image())  # outside recording(): nothing to record into


# --- on_change: a listing that differs from the one kept before it ------------------------------

CHANGES = [
    ("first listing", None, ["1.0.0"], False),
    ("same tags", ["1.0.0", "1.1.0"], ["1.0.0", "1.1.0"], False),
    ("same tags, another order", ["1.0.0", "1.1.0"], ["1.1.0", "1.0.0"], False),
    ("a new tag", ["1.0.0"], ["1.0.0", "1.1.0"], True),
    ("a tag deleted", ["1.0.0", "1.1.0"], ["1.0.0"], True),
]


@pytest.mark.parametrize(
    ("before", "after", "told"),
    [(b, a, t) for _, b, a, t in CHANGES],
    ids=[i for i, *_ in CHANGES],
)
async def test_on_change_is_told_when_a_listing_differs_from_the_kept_one(
    before: list[str] | None, after: list[str], told: bool
) -> None:
    repository = f"{HOST}/org/app"
    inner = MemoryRegistry({repository: dict.fromkeys(before or [], SHA_A)})
    clock = Clock()
    changes: list[tuple[str, str, float]] = []
    shared = scans.SharedScans(inner, clock=clock, on_change=lambda *hrs: changes.append(hrs))
    if before is not None:
        await shared.list_tags(image())
    inner.repositories[repository] = dict.fromkeys(after, SHA_A)
    clock.now += 1
    assert await shared.list_tags(dataclasses.replace(image(), not_before=clock.now)) == after
    assert changes == ([(HOST, "org/app", T0 + 1)] if told else [])


async def test_on_change_is_told_when_a_tag_moves_not_on_a_failure() -> None:
    inner = memory()
    clock = Clock()
    changes: list[tuple[str, str, float]] = []
    shared = scans.SharedScans(inner, clock=clock, on_change=lambda *hrs: changes.append(hrs))
    await shared.digest(image(), "1.1.0")
    inner.repositories[f"{HOST}/org/app"]["1.1.0"] = SHA_A  # re-pushed
    clock.now += 1
    assert await shared.digest(dataclasses.replace(image(), not_before=clock.now), "1.1.0") == SHA_A
    assert changes == [(HOST, "org/app", T0 + 1)]
    del inner.repositories[f"{HOST}/org/app"]
    clock.now += 1
    with pytest.raises(errors.RegistryError):
        await shared.list_tags(dataclasses.replace(image(), not_before=clock.now))
    assert changes == [(HOST, "org/app", T0 + 1)], "a failure is no change"


# --- single flight ------------------------------------------------------------------------------

FLIGHTS = [
    ("20 listings of one image", [("list_tags", image())] * 20, {"list_tags": 1}, 19),
    (
        "20 listings of two images",
        [("list_tags", image()), ("list_tags", image("org/other"))] * 10,
        {"list_tags": 2},
        18,
    ),
    ("20 digests of one tag", [("digest", image())] * 20, {"digest": 1}, 19),
    (
        "listing and digest are separate",
        [("list_tags", image()), ("digest", image())] * 3,
        {"list_tags": 1, "digest": 1},
        4,
    ),
    (
        "same credentials, two Secrets: one flight each",
        [
            ("list_tags", image(creds=ALICE, secret="a")),
            ("list_tags", image(creds=ALICE, secret="b")),
        ]
        * 3,
        {"list_tags": 2},
        4,
    ),
]


@pytest.mark.parametrize(
    ("calls", "requests", "coalesced"),
    [(c, r, n) for _, c, r, n in FLIGHTS],
    ids=[i for i, *_ in FLIGHTS],
)
async def test_concurrent_identical_calls_make_one_request(
    calls: list[tuple[str, reference.RegistryAccess]], requests: dict[str, int], coalesced: int
) -> None:
    inner = memory()
    shared = scans.SharedScans(inner, clock=Clock())

    def start(method: str, access: reference.RegistryAccess) -> Any:
        if method == "list_tags":
            return shared.list_tags(access)
        return shared.digest(access, "1.0.0")

    results = await concurrently(inner, shared, *(start(m, a) for m, a in calls))
    expected = {"list_tags": ["1.0.0", "1.1.0"], "digest": SHA_A}
    assert results == [expected[m] for m, _ in calls]
    assert {m: inner.count(m) for m in requests} == requests
    assert (shared.misses, shared.coalesced, shared.hits) == (
        sum(requests.values()),
        coalesced,
        0,
    )


FAILURES = [
    (
        "missing repository",
        image("org/new", creds=ALICE, secret="pull"),
        errors.RegistryError,
        lambda inner: inner.repositories.update({f"{HOST}/org/new": {"2.0.0": SHA_A}}),
        ["2.0.0"],
    ),
    (
        "refused credentials",
        image(creds=credentials.BasicCredentials("alice", "old"), secret="pull"),
        errors.AuthError,
        lambda inner: setattr(inner, "account", credentials.BasicCredentials("alice", "old")),
        ["1.0.0", "1.1.0"],
    ),
]


@pytest.mark.parametrize(
    ("access", "error", "fix", "tags"),
    [(a, e, f, t) for _, a, e, f, t in FAILURES],
    ids=[i for i, *_ in FAILURES],
)
async def test_an_error_reaches_every_waiter_and_is_not_cached(
    access: reference.RegistryAccess,
    error: type[errors.PromotionError],
    fix: Callable[[MemoryRegistry], None],
    tags: list[str],
) -> None:
    inner = memory(account=ALICE)
    shared = scans.SharedScans(inner, clock=Clock())
    results = await concurrently(inner, shared, *(shared.list_tags(access) for _ in range(5)))
    assert [type(r) for r in results] == [error] * 5
    assert inner.count("list_tags") == 1
    fix(inner)
    assert await shared.list_tags(access) == tags  # asked again: the error was not kept
    assert await shared.list_tags(access) == tags  # from the cache
    assert inner.count("list_tags") == 2
    assert (shared.misses, shared.coalesced, shared.hits) == (2, 4, 1)


async def test_an_error_names_the_waiters_own_secret() -> None:
    inner = memory(account=ALICE)
    shared = scans.SharedScans(inner, clock=Clock())
    wrong = credentials.BasicCredentials("alice", "wrong")
    results = await concurrently(
        inner,
        shared,
        shared.list_tags(image(creds=wrong, secret="dev-pull")),
        shared.list_tags(image(creds=wrong, secret="prod-pull")),
    )
    assert [str(r).split("Secret ")[1].split(";")[0] for r in results] == ["dev-pull", "prod-pull"]


# --- cancellation, copies, pass-through -------------------------------------------------------


async def test_a_cancelled_waiter_leaves_the_others_their_answer() -> None:
    inner = memory()
    shared = scans.SharedScans(inner, clock=Clock())
    inner.gate = asyncio.Event()
    first = asyncio.ensure_future(shared.list_tags(image()))
    second = asyncio.ensure_future(shared.list_tags(image()))
    await until(lambda: waiting(shared) == 2 and inner.parked == 1, "both wait, at the gate")
    first.cancel()
    await until(lambda: first.done() and waiting(shared) == 1, "the first gave up")
    inner.gate.set()
    assert await second == ["1.0.0", "1.1.0"]
    assert first.cancelled()
    assert inner.cancelled == []
    assert inner.count("list_tags") == 1


async def test_when_every_waiter_gives_up_the_request_is_cancelled() -> None:
    inner = memory()
    shared = scans.SharedScans(inner, clock=Clock())
    inner.gate = asyncio.Event()
    waiters = [asyncio.ensure_future(shared.list_tags(image())) for _ in range(3)]
    await until(lambda: waiting(shared) == 3 and inner.parked == 1, "all wait, at the gate")
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await until(lambda: inner.parked == 0, "the request was cancelled")
    assert inner.cancelled == [("list_tags", f"{HOST}/org/app")]
    inner.gate.set()
    assert await shared.list_tags(image()) == ["1.0.0", "1.1.0"]  # a new flight, not the dead one
    assert inner.count("list_tags") == 2


async def test_each_caller_gets_its_own_list() -> None:
    shared = scans.SharedScans(memory(), clock=Clock())
    mine = await shared.list_tags(image())
    mine.append("mine-only")
    assert await shared.list_tags(image()) == ["1.0.0", "1.1.0"]


CREATED = [
    (["1.0.0", "1.1.0"], None, 1, "the same candidates"),
    (["1.1.0", "1.0.0", "1.1.0"], None, 1, "the same set in another order"),
    (["1.0.0"], None, 2, "another set of candidates"),
    (["1.0.0", "1.1.0"], T0 + 1, 2, "a not_before after the kept answer"),
]


@pytest.mark.parametrize(
    ("second", "not_before", "requests"),
    [(t, n, r) for t, n, r, _ in CREATED],
    ids=[i for *_, i in CREATED],
)
async def test_creation_times_are_shared_per_image_and_candidate_set(
    second: list[str], not_before: float | None, requests: int
) -> None:
    inner = memory()
    clock = Clock()
    shared = scans.SharedScans(inner, clock=clock)
    assert await shared.created(image(), ["1.0.0", "1.1.0"]) == {}
    clock.now += 1
    assert await shared.created(dataclasses.replace(image(), not_before=not_before), second) == {}
    assert inner.count("created") == requests
    assert shared.creation_times.misses == requests


class NoClose:
    """A reader with nothing to close."""

    async def list_tags(self, access: reference.RegistryAccess) -> list[str]:
        return ["1.0.0"]

    async def digest(self, access: reference.RegistryAccess, tag: str) -> str:
        return SHA_A

    async def created(self, access: reference.RegistryAccess, tags: Any) -> dict[str, Any]:
        return {}


async def test_aclose_closes_the_inner_reader_when_it_can_be_closed() -> None:
    inner = memory()
    await scans.SharedScans(inner).aclose()
    assert inner.closed
    await scans.SharedScans(NoClose()).aclose()


async def test_aclose_cancels_the_flights_in_progress() -> None:
    inner = memory()
    shared = scans.SharedScans(inner, clock=Clock())
    inner.gate = asyncio.Event()
    waiter = asyncio.ensure_future(shared.list_tags(image()))
    await until(lambda: inner.parked == 1, "the flight reaches the inner reader")
    await shared.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert inner.cancelled == [("list_tags", f"{HOST}/org/app")]


# --- against the real registry ----------------------------------------------------------------


REAL = [(1, 20, 1, "20 calls on one image"), (2, 10, 2, "10 calls on each of two images")]


@pytest.mark.servers
@pytest.mark.parametrize(
    ("images", "per_image", "requests"),
    [(i, p, r) for i, p, r, _ in REAL],
    ids=[i for *_, i in REAL],
)
async def test_one_tag_list_request_per_image_on_a_real_registry(
    registry_open: registry.RegistryServer,
    counted: registry.CountingProxy,
    repo_name: str,
    scanner: Callable[..., Scanner],
    images: int,
    per_image: int,
    requests: int,
) -> None:
    names = [f"{repo_name}{i}" for i in range(images)]
    for name in names:
        registry_open.push_image(name, tags=["1.0.0", "1.1.0"])
    client = scanner()
    shared = scans.SharedScans(client)
    accesses = [image(name, host=counted.host, insecure=True) for name in names] * per_image
    results = await asyncio.gather(*(shared.list_tags(a) for a in accesses))
    assert [sorted(r) for r in results] == [["1.0.0", "1.1.0"]] * len(accesses)
    assert len(counted.seen(r"/tags/list")) == requests
    assert client.requests == [(counted.host, 200)] * requests
    assert (shared.misses, shared.coalesced) == (requests, len(accesses) - requests)


@pytest.mark.servers
def test_promote_lists_an_image_once_for_two_crs(
    tmp_path: Path,
    registry_open: registry.RegistryServer,
    counted: registry.CountingProxy,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0", "1.2.0", "latest"])
    url = git_http_server.create_repo(
        f"scans-{repo_name.replace('/', '-')}",
        {"dev/values.yaml": "image:\n  tag: 0.1.0\n", "prod/values.yaml": "image:\n  tag: 0.1.0\n"},
    )
    crs = [_cr(env, f"{counted.host}/{repo_name}", url) for env in ("dev", "prod")]
    push = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "push", "namespace": "gitops"},
        "stringData": {"username": git_http_server.username, "password": git_http_server.password},
    }
    files = tmp_path / "crs.yaml"
    files.write_text(yaml.safe_dump_all([*crs, push]), "utf-8")
    argv = ["promote", str(files), "--dry-run", "-o", "json", "--workdir", str(tmp_path / "w")]
    assert cli.main(argv) == cli.EXIT_READY
    out = json.loads(capsys.readouterr().out)
    assert [e["status"]["latestTag"] for e in out] == ["1.2.0", "1.2.0"]
    assert len(counted.seen(r"/tags/list")) == 1
    assert len([r for r in counted.seen(r"/manifests/1\.2\.0$") if r.method == "HEAD"]) == 1


def _cr(env: str, image_text: str, git_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": f"app-{env}", "namespace": "gitops"},
        "spec": {
            "image": image_text,
            "insecure": True,
            "tagRegex": r"^\d+\.\d+\.\d+$",
            "git": {"url": git_url, "insecure": True, "branch": "main", "secretRef": "push"},
            "targets": [{"path": f"{env}/values.yaml", "key": "image.tag"}],
        },
    }


async def test_aclose_cancels_an_older_flight_a_newer_one_replaced() -> None:
    flights = await ten_seconds_apart()
    inner, shared, older, newer = flights.inner, flights.shared, flights.older, flights.newer
    await until(lambda: len(inner.pending) == 2, "the newer request is made")
    await shared.aclose()
    await asyncio.wait([older, newer], timeout=10)  # a bound for the failure, not a sleep
    assert older.cancelled() and newer.cancelled()
    assert all(future.cancelled() for future in inner.pending)
