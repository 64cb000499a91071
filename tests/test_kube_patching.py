"""kube/patching.py and the pass runner's status writes, against the kmock emulator over HTTP.

The passes run through `Operator.run_pass` as the handlers call it, without Kopf's reactor, so
each one is driven by hand: the body a pass sees is read from the emulator (or kept stale, as a
lagging watch would leave it), and the registry and git are the in-memory ones of test_reconcile.
What is measured is what the emulator served (`api.history`, `api.counts`). Two passes on one CR
are ordered with barriers, never sleeps.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import prometheus_client
import pytest

from imagepromoter.kube import events, handlers, metrics, patching
from tests.kmock_emulator import Emulator
from tests.operator_harness import CRD, IPR, NS, emulated
from tests.test_reconcile import VALUES, MemoryGit, MemoryRegistry, MemorySecrets, make_spec

pytestmark = pytest.mark.servers  # the kmock emulator

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STATUS_PATCH = ("PATCH", "imagepromotions", "status")


@pytest.fixture
async def api() -> AsyncIterator[Emulator]:
    async with emulated(CRD, vault=True) as emulator:
        yield emulator


async def create(api: Emulator, name: str = "app") -> dict[str, Any]:
    resp = await api.post(
        f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions",
        json={
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "ImagePromotion",
            "metadata": {"name": name, "namespace": NS},
            "spec": make_spec(interval="1m"),
        },
    )
    assert resp.status in (200, 201), await resp.text()
    return dict(await resp.json())


def current(api: Emulator, name: str = "app") -> dict[str, Any]:
    """The object as a caught-up watch would show it."""
    found = api.read_object(IPR, NS, name)
    assert found is not None
    return copy.deepcopy(found)


async def edit_status(api: Emulator, status: dict[str, Any], name: str = "app") -> None:
    """Someone else (kubectl, another controller) merge-patches the status."""
    resp = await api.patch(
        f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/{name}/status",
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 200, await resp.text()


def status_patches(api: Emulator) -> list[dict[str, Any]]:
    return [
        dict(r.data["status"])
        for r in list(api.history)
        if str(getattr(r.method, "value", r.method)).upper() == "PATCH"
        and r.subresource == "status"
    ]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def operator(registry: MemoryRegistry, clock: Clock) -> tuple[handlers.Operator, list[Any]]:
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    state = handlers.Operator(
        handlers.Adapters(registry_factory=lambda: registry, git=git),
        metrics_=metrics.Metrics(prometheus_client.CollectorRegistry()),
        now=clock,
    )
    posted: list[Any] = []
    state.registry = registry
    state.secrets = MemorySecrets()
    state.events = events.Events(post=lambda *args: posted.append(args), now=clock)
    state.status_writer = patching.KopfStatus(kopf.OperatorSettings())
    return state, posted


# --- KopfStatus itself ---------------------------------------------------------------------------


async def test_patch_returns_the_version_it_produced(api: Emulator) -> None:
    await create(api)
    writer = patching.KopfStatus(kopf.OperatorSettings())
    version = await writer.patch(NS, "app", {"latestTag": "1.0.0-dev"})
    stored = current(api)
    assert version == stored["metadata"]["resourceVersion"]
    assert stored["status"] == {"latestTag": "1.0.0-dev"}
    assert await writer.patch(NS, "app", {"latestTag": None, "tagsScanned": 3}) != version
    assert current(api)["status"] == {"tagsScanned": 3}, "a null removes the key"


async def test_a_deleted_cr_is_quiet(api: Emulator) -> None:
    writer = patching.KopfStatus(kopf.OperatorSettings())
    assert await writer.patch(NS, "gone", {"latestTag": "1"}) is None


@pytest.mark.parametrize("code", [409, 422, 500, 503], ids=str)
async def test_other_failures_are_patch_failed_after_one_request(api: Emulator, code: int) -> None:
    await create(api)
    api[f"patch /apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/app/status"] << (
        code
    )
    writer = patching.KopfStatus(kopf.OperatorSettings())
    with pytest.raises(patching.PatchFailed, match=f"HTTP {code}"):
        await writer.patch(NS, "app", {"latestTag": "1"})
    assert api.counts[STATUS_PATCH] == 1, "Kopf's own retries are off"


@pytest.mark.parametrize(
    ("cached_from", "produced", "body_version", "uses_cache"),
    [
        ("5", "6", "5", True),
        ("5", "6", "6", False),
        ("5", "6", "7", False),
        ("5", None, "5", True),
        (None, None, "5", False),
        ("5", "9", "4", True),
        ("5", "9", "8", True),
        ("9", "10", "9", True),
        ("5", "9", "10", False),
        ("a5", "a9", "a4", False),
        ("5", "09", "4", False),
        ("5", "9", "-4", False),
    ],
    ids=[
        "watch-lags", "our-write-echoed", "newer-than-ours", "version-unknown", "no-cache",
        "a-snapshot-before-ours", "between-ours", "more-digits", "more-digits-newer",
        "opaque-versions", "leading-zero", "signed",
    ],
)  # fmt: skip
def test_base_prefers_the_cluster_unless_the_watch_lags(
    cached_from: str | None, produced: str | None, body_version: str, uses_cache: bool
) -> None:
    ours = {"latestTag": "ours"}
    written = patching.Written(ours, cached_from, produced) if cached_from else None
    got = patching.base({"latestTag": "cluster"}, body_version, written)
    assert got == (ours if uses_cache else {"latestTag": "cluster"})


# --- the pass runner ---------------------------------------------------------------------------


async def test_an_idle_pass_makes_no_request_at_all(api: Emulator) -> None:
    await create(api)
    clock = Clock()
    state, posted = operator(MemoryRegistry(["1.0.0-dev", "1.1.0-dev"]), clock)
    patch = kopf.Patch()
    await state.run_pass(current(api), patch, force=True, why="created")
    assert not patch, "Kopf's patch carries no status"
    assert api.counts[STATUS_PATCH] == 1 and len(posted) == 1
    promoted = current(api)["status"]
    assert promoted["promotedTag"] == "1.1.0-dev"
    served = len(api.history)
    for minutes in (1, 2, 30, 59):
        clock.now = T0 + timedelta(minutes=minutes, seconds=1)
        await state.run_pass(current(api), kopf.Patch(), force=False, why="interval")
    assert len(api.history) == served, "no PATCH, no event, no read: nothing"
    assert len(posted) == 1
    assert current(api)["status"] == promoted
    clock.now = T0 + timedelta(hours=1, seconds=11)  # due on the tick's grid (10 s slots)
    await state.run_pass(current(api), kopf.Patch(), force=False, why="interval")
    assert status_patches(api)[-1] == {"lastScanTime": "2026-12-01T11:00:11Z"}, "hourly refresh"


async def test_a_lagging_watch_does_not_make_the_pass_rewrite(api: Emulator) -> None:
    created = await create(api)
    state, _ = operator(MemoryRegistry(["1.0.0-dev", "1.1.0-dev"]), Clock())
    await state.run_pass(copy.deepcopy(created), kopf.Patch(), force=True, why="created")
    # the watch has not brought our write back: the body is still the created one
    await state.run_pass(copy.deepcopy(created), kopf.Patch(), force=True, why="requested")
    assert api.counts[STATUS_PATCH] == 1, "the second pass knew what the first wrote"


async def test_a_change_handler_s_older_snapshot_does_not_make_the_pass_rewrite(
    api: Emulator,
) -> None:
    created = await create(api)  # the snapshot a change handler still holds (Kopf's event body)
    resp = await api.patch(
        f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/app",
        json={"metadata": {"annotations": {"imagepromoter.dev/requested-at": "1"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 200, await resp.text()
    state, _ = operator(MemoryRegistry(["1.0.0-dev", "1.1.0-dev"]), Clock())
    await state.run_pass(current(api), kopf.Patch(), force=True, why="interval")  # a live body
    assert api.counts[STATUS_PATCH] == 1
    # the older snapshot is neither the version before our write nor ours: it predates both
    await state.run_pass(copy.deepcopy(created), kopf.Patch(), force=True, why="requested")
    assert api.counts[STATUS_PATCH] == 1, "the pass knew its body predates our write"


async def test_a_status_someone_else_wrote_is_the_base_of_the_next_pass(api: Emulator) -> None:
    created = await create(api)
    state, _ = operator(MemoryRegistry(["1.0.0-dev", "1.1.0-dev"]), Clock())
    await state.run_pass(copy.deepcopy(created), kopf.Patch(), force=True, why="created")
    ours = current(api)["status"]
    other = {"type": "Reviewed", "status": "True", "reason": "Manual", "message": "ok"}
    await edit_status(api, {"latestTag": "0.0.1-dev", "conditions": [*ours["conditions"], other]})
    edited = current(api)
    assert edited["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    await state.run_pass(edited, kopf.Patch(), force=True, why="requested")
    # computed over their status: latestTag is put right, their condition is kept, and nothing
    # else is written (over our cached status the pass would have seen no difference at all)
    assert status_patches(api)[-1] == {"latestTag": "1.1.0-dev"}
    final = current(api)["status"]
    assert final["latestTag"] == "1.1.0-dev" and final["conditions"][-1] == other
    assert final["conditions"][0] == ours["conditions"][0]


class GatedRegistry(MemoryRegistry):
    """Each list_tags answers the next tag list, the first only once `open` is set."""

    def __init__(self, answers: list[list[str]]) -> None:
        super().__init__([])
        self.answers = answers
        self.calls = 0
        self.open = asyncio.Event()

    async def list_tags(self, access: Any) -> list[str]:
        self.calls += 1
        if self.calls == 1:
            await self.open.wait()
        return list(self.answers[self.calls - 1])


class GatedWriter(patching.KopfStatus):
    """KopfStatus whose first patch waits at a barrier (while its pass holds the CR's lock)."""

    def __init__(self) -> None:
        super().__init__(kopf.OperatorSettings())
        self.reached, self.release = asyncio.Event(), asyncio.Event()
        self.calls = 0

    async def patch(self, namespace: str, name: str, patch: Any) -> str | None:
        self.calls += 1
        if self.calls == 1:
            self.reached.set()
            await self.release.wait()
        return await super().patch(namespace, name, patch)


async def test_two_passes_on_one_cr_write_in_the_order_they_ran(api: Emulator) -> None:
    created = await create(api)
    registry = GatedRegistry([["1.1.0-dev"], ["1.1.0-dev", "1.2.0-dev"]])
    state, _ = operator(registry, Clock())
    writer = GatedWriter()
    state.status_writer = writer
    first = asyncio.create_task(state.run_pass(created, kopf.Patch(), force=True, why="created"))
    registry.open.set()
    await writer.reached.wait()  # the first pass is about to write 1.1.0-dev
    second = asyncio.create_task(
        state.run_pass(current(api), kopf.Patch(), force=True, why="requested")
    )
    for _ in range(100):  # every chance to run: it must be waiting for the CR's lock
        await asyncio.sleep(0)
    assert registry.calls == 1 and writer.calls == 1 and not second.done()
    writer.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert [p.get("promotedTag") for p in status_patches(api)] == ["1.1.0-dev", "1.2.0-dev"]
    assert current(api)["status"]["promotedTag"] == "1.2.0-dev"


async def test_a_failed_write_is_retried_by_the_schedule(
    api: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    uid = (await create(api))["metadata"]["uid"]
    clock = Clock()
    state, _ = operator(MemoryRegistry(["1.1.0-dev"]), clock)
    url = f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/app/status"
    api[f"patch {url}"] << 503
    await state.run_pass(current(api), kopf.Patch(), force=True, why="created")
    assert "HTTP 503" in caplog.text and "will be retried" in caplog.text
    assert uid not in state.statuses, "not known to be written: the body is the truth"
    entry = state.schedule._entries[uid]
    assert entry.next_at == T0 + timedelta(seconds=10) and entry.failures == 1


@pytest.mark.parametrize(
    ("failures", "interval", "delay"),
    [(1, 60, 10), (2, 60, 20), (3, 60, 40), (4, 60, 60), (5, 30, 30)],
    ids=["first", "doubles", "doubles-again", "capped-at-the-interval", "short-interval"],
)
def test_failed_writes_back_off(failures: int, interval: int, delay: int) -> None:
    from imagepromoter.kube import schedule

    plan = schedule.Schedule(base_backoff=timedelta(seconds=10))
    got = None
    for _ in range(failures):
        got = plan.retry("u1", generation=1, interval=timedelta(seconds=interval), now=T0)
    assert got == timedelta(seconds=delay)
    assert plan.due("u1", spec_dict={}, status={}, generation=1, now=T0 + got)
    assert not plan.due("u1", spec_dict={}, status={}, generation=1, now=T0 + got / 2)


async def test_status_patches_in_flight_at_once_are_bounded(api: Emulator) -> None:
    """A wave's passes write their statuses together: at most IN_FLIGHT requests (and so
    connections, in Kopf's unlimited session) at once; the others wait for a slot."""
    await create(api)
    gate = asyncio.Event()
    api[f"patch /apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/app/status"] << (
        gate.wait
    )
    writer = patching.KopfStatus(kopf.OperatorSettings(), in_flight=4)
    writers = [asyncio.create_task(writer.patch(NS, "app", {"tagsScanned": i})) for i in range(12)]
    while in_flight(api) < 4:
        await asyncio.sleep(0)
    for _ in range(200):  # every chance for a fifth to be sent
        await asyncio.sleep(0)
    assert in_flight(api) == 4
    gate.set()
    await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 30)
    assert api.counts[STATUS_PATCH] == 12, "each waited for a slot, then was sent"


def in_flight(api: Emulator) -> int:
    """Status patches the emulator holds unanswered."""
    return sum(1 for r in list(api._requests) if str(getattr(r, "url", "")).endswith("/status"))
