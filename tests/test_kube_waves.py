"""Waves in the operator: a tick of any CR starts every CR due, so they scan and push together.

The Kopf handlers are called as Kopf calls them, on a fake clock, with in-memory adapters that
count what they are asked: one listing per image and one batch per repository for a wave, where
each CR on its own timer would have made its own.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import kopf
import pytest

from imagepromoter import scans
from imagepromoter.kube import handlers
from imagepromoter.kube.options import REQUESTED_AT
from imagepromoter.pipeline import waves
from tests.test_kube_freshness import NOW, Statuses, handler, listed, operator
from tests.test_reconcile import VALUES, MemoryGit, MemoryRegistry


class CountingGit(MemoryGit):
    """MemoryGit with write_batch: how many batches, and how many plans in each."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(files)
        self.batches: list[int] = []

    def write_batch(self, git: Any, creds: Any, plans: Any, **options: Any) -> list[Any]:
        self.batches.append(len(plans))
        results: list[Any] = []
        for plan in plans:
            try:
                results.append(super().write(git, creds, plan, **options))
            except Exception as exc:  # each plan fails alone, as the writer does
                results.append(exc)
        return results


async def started(
    n: int, *, window: float = 0.0
) -> tuple[handlers.Operator, Any, list[kopf.Body], MemoryRegistry, CountingGit, list[Any]]:
    clock = [NOW + timedelta(seconds=1)]  # inside a grid slot (a slot's edge splits a wave in two)
    inner = MemoryRegistry(["1.0.0-dev"])
    shared = scans.SharedScans(inner, clock=lambda: clock[0].timestamp())
    git = CountingGit({"env/dev/values.yaml": VALUES.encode()})
    state, kopf_registry = operator(None)
    state.options = handlers.Options(batch_window=window)
    state.now = state.clock = lambda: clock[0]
    state.schedule = type(state.schedule)(grid=state.options.tick)
    state.adapters = handlers.Adapters(registry_factory=lambda: shared, git=git)
    await state.start(kopf.OperatorSettings())
    state.status_writer = Statuses()
    watched = handler(kopf_registry, "watched")
    crs = [listed(f"u{i}") for i in range(n)]  # the timer passes them first
    for cr in crs:
        cr["spec"]["interval"] = "1m"
        cr["spec"]["targets"] = [{"path": "env/dev/values.yaml", "key": "image.tag"}]
        await watched(type="ADDED", body=cr, meta=cr.meta)
    return state, handler(kopf_registry, "tick"), crs, inner, git, clock


def gated_listings(inner: MemoryRegistry) -> asyncio.Event:
    """Make the registry's tag listings wait until the returned event is set."""
    gate = asyncio.Event()
    list_tags = inner.list_tags

    async def gated(access: Any) -> list[str]:
        await gate.wait()
        return await list_tags(access)

    inner.list_tags = gated  # type: ignore[method-assign]
    return gate


async def wave(
    state: handlers.Operator, tick: Any, by: kopf.Body, clock: list[Any], at: Any = None
) -> Statuses:
    """Move the clock to `at` (else to when a CR is next due), tick `by`, and wait for every
    pass that tick started; the statuses they wrote."""
    clock[0] = at or state.due.next_at() or clock[0]
    await tick(body=by, patch=kopf.Patch(), logger=None)
    await asyncio.gather(*list(state.passes.values()))
    statuses: Statuses = state.status_writer  # type: ignore[assignment]
    return statuses


async def test_crs_that_first_passed_seconds_apart_pass_together_after_that() -> None:
    state, tick, crs, inner, git, clock = await started(10)
    for cr in crs:  # first passes on their own timers, 0.7 s apart (one 10 s grid slot)
        await tick(body=cr, patch=kopf.Patch(), logger=None)
        clock[0] += timedelta(seconds=0.7)
    first = len(inner.seen)
    due = {state.due.due_at(str(cr.meta["uid"])) for cr in crs}
    assert len(due) == 1, "every CR is due at the same instant: one wave"
    (at,) = due
    assert at == waves.align(at, state.options.tick) and at >= NOW + timedelta(minutes=1, seconds=7)
    inner.tags.append("1.1.0-dev")
    git.batches.clear()
    statuses = await wave(state, tick, crs[3], clock, at)  # one tick starts them all
    assert {statuses.promoted(str(cr.meta["name"])) for cr in crs} == {"1.1.0-dev"}
    assert len(inner.seen) - first == 1, "one listing of the image for the whole wave"
    assert sum(git.batches) == 10
    for cr in crs:  # their own ticks now find their passes done: nothing more happens
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    assert len(inner.seen) - first == 1


async def test_a_wave_is_one_batch_per_repository() -> None:
    state, tick, crs, inner, git, clock = await started(6, window=0.05)
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    inner.tags.append("1.1.0-dev")
    git.batches.clear()
    await wave(state, tick, crs[0], clock)
    assert git.batches == [6], "the six CRs of one repository are one write"


async def test_a_cr_relabelled_out_of_the_shard_is_not_started_by_a_wave() -> None:
    from imagepromoter import shards

    state, tick, crs, inner, _git, clock = await started(2)
    state.selector = shards.parse(["imagepromoter.dev/shard=0"])
    for cr in crs:
        cr["metadata"]["labels"] = {"imagepromoter.dev/shard": "0"}
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    crs[1]["metadata"]["labels"] = {"imagepromoter.dev/shard": "1"}  # moved; its timer stops
    inner.tags.append("1.1.0-dev")
    statuses = await wave(state, tick, crs[0], clock)
    assert statuses.promoted("u0") == "1.1.0-dev"
    assert statuses.promoted("u1") != "1.1.0-dev"


async def test_a_fan_out_starts_the_image_s_crs_in_the_next_wave() -> None:
    state, tick, crs, inner, _git, clock = await started(3)
    crs[0]["spec"]["interval"] = "1m"
    for cr in crs[1:]:
        cr["spec"]["interval"] = "1h"
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    inner.tags.append("1.1.0-dev")
    clock[0] = state.due.due_at("u0") or clock[0]
    await tick(body=crs[0], patch=kopf.Patch(), logger=None)  # u0's pass finds the new tag
    await asyncio.gather(*list(state.passes.values()))
    assert {"u1", "u2"} <= {k for k in ("u1", "u2") if k in state.due}
    clock[0] += timedelta(milliseconds=5)
    await tick(body=crs[0], patch=kopf.Patch(), logger=None)  # any tick: the poked CRs start
    await asyncio.gather(*list(state.passes.values()))
    statuses: Statuses = state.status_writer  # type: ignore[assignment]
    assert {statuses.promoted(n) for n in ("u0", "u1", "u2")} == {"1.1.0-dev"}


async def test_a_cr_whose_timer_stopped_ticking_is_left_to_its_own_next_tick() -> None:
    import time

    state, tick, crs, inner, _git, clock = await started(2)
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    body, _ = state.bodies["u1"]
    state.bodies["u1"] = (body, time.monotonic() - 3 * state.options.tick)  # e.g. a peering pause
    inner.tags.append("1.1.0-dev")
    statuses = await wave(state, tick, crs[0], clock)
    assert statuses.promoted("u0") == "1.1.0-dev"
    assert statuses.promoted("u1") != "1.1.0-dev", "not from a body that may be stale"
    await tick(body=crs[1], patch=kopf.Patch(), logger=None)  # its own tick, a live body
    await asyncio.gather(*list(state.passes.values()))
    assert statuses.promoted("u1") == "1.1.0-dev"


async def test_waves_a_slot_apart_merge_into_one() -> None:
    state, tick, crs, inner, git, clock = await started(6, window=0.05)
    clock[0] = NOW + timedelta(seconds=9)  # three CRs pass just before a slot's edge...
    for cr in crs[:3]:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    clock[0] = NOW + timedelta(seconds=10.5)  # ...and three just after it
    for cr in crs[3:]:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    uids = [str(cr.meta["uid"]) for cr in crs]
    assert len({state.due.due_at(uid) for uid in uids}) == 2, "two waves, a slot apart"
    inner.tags.append("1.1.0-dev")
    git.batches.clear()
    statuses = await wave(state, tick, crs[0], clock)  # the earlier wave takes the later one
    assert {statuses.promoted(uid) for uid in uids} == {"1.1.0-dev"}
    assert git.batches == [6], "one write for the repository"
    assert len({state.due.due_at(uid) for uid in uids}) == 1, "one wave from now on"


async def test_a_wave_takes_early_only_the_crs_that_share_its_image_or_repository() -> None:
    state, tick, crs, _inner, _git, clock = await started(2)
    crs[1]["spec"]["image"] = "ghcr.io/acme/other"
    crs[1]["spec"]["git"]["url"] = "https://git.example/other.git"
    state.images.update("u1", crs[1]["spec"])  # what the watch's MODIFIED event does
    clock[0] = NOW + timedelta(seconds=9)
    await tick(body=crs[0], patch=kopf.Patch(), logger=None)
    clock[0] = NOW + timedelta(seconds=10.5)
    await tick(body=crs[1], patch=kopf.Patch(), logger=None)
    later = state.due.due_at("u1")
    assert later is not None and later > (state.due.due_at("u0") or later)
    await wave(state, tick, crs[0], clock, state.due.due_at("u0"))
    assert state.due.due_at("u1") == later, "u1 shares nothing with the wave: it keeps its time"
    assert "u1" not in state.passes


async def test_a_wave_started_a_moment_late_is_due_again_one_interval_after_its_instant() -> None:
    state, tick, crs, inner, _git, clock = await started(3)
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    at = state.due.due_at("u0")
    assert at is not None
    inner.tags.append("1.1.0-dev")
    await wave(state, tick, crs[0], clock, at + timedelta(milliseconds=3))
    assert {state.due.due_at(str(cr.meta["uid"])) for cr in crs} == {at + timedelta(minutes=1)}, (
        "the period is the interval, not the interval rounded up to one more tick"
    )
    late = state.due.due_at("u0")
    assert late is not None
    await wave(state, tick, crs[0], clock, late + timedelta(seconds=15))  # more than a tick late
    assert state.due.due_at("u0") == waves.align(late + timedelta(seconds=75), state.options.tick)


@pytest.mark.parametrize(
    ("at_the_wave", "stamped"),
    [(False, False), (True, False), (False, True)],
    ids=["between-waves", "at-a-wave", "one-stamp"],
)
async def test_after_a_trigger_across_a_slot_edge_each_image_is_listed_once_per_interval(
    at_the_wave: bool, stamped: bool
) -> None:
    """The bench's triggered-then-idle sequence (bench/scale.py) on a fake clock: the requested
    passes start as the watch delivers them, a few seconds apart and across a slot's edge. With
    a value that is not a time, each pass counts its next one from its own start, so they fall
    into two slots, and the waves after must still list each image once per interval (the
    earlier wave takes the later slot's CRs of the same repository). With one time stamped on
    them all (`date +%s`), they are due together again: one slot."""
    state, tick, crs, inner, _git, clock = await started(6)
    listed: list[tuple[str, Any]] = []
    list_tags = inner.list_tags

    async def timed(access: Any) -> list[str]:
        listed.append((access.image.repository, clock[0]))
        return await list_tags(access)

    inner.list_tags = timed  # type: ignore[method-assign]
    for i, cr in enumerate(crs):  # an image each, one repository (as 100/100/10 is, per repo)
        cr["spec"]["image"] = f"ghcr.io/acme/app{i}"
        state.images.update(str(cr.meta["uid"]), cr["spec"])
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    await wave(state, tick, crs[0], clock)
    edge = waves.align(clock[0] + timedelta(seconds=1), state.options.tick)
    if at_the_wave:  # the edge is the instant the next timer wave is due
        edge = state.due.next_at() or edge
    inner.tags.append("1.1.0-dev")
    value = f"{(edge - timedelta(seconds=1.5)).timestamp():.0f}" if stamped else "x"
    for i, cr in enumerate(crs):  # requested-at, delivered 0.4 s apart across the edge
        clock[0] = edge - timedelta(seconds=1.2) + timedelta(seconds=0.4 * i)
        annotated = kopf.Body({**cr, "metadata": {**cr.meta, "annotations": {REQUESTED_AT: value}}})
        state.watched(annotated)
        await tick(body=crs[i], patch=kopf.Patch(), logger=None)  # ticks go on meanwhile
        await asyncio.gather(*state.requested, *state.passes.values())
    triggered = len(listed)
    slots = len({state.due.due_at(str(cr.meta["uid"])) for cr in crs})
    assert slots == (1 if stamped else 2)
    for _ in range(4):  # the next waves, whichever CR ticks
        await wave(state, tick, crs[5], clock)
    after: dict[str, list[Any]] = {}
    for image, at in listed[triggered:]:
        after.setdefault(image, []).append(at)
    assert sorted(after) == [f"acme/app{i}" for i in range(6)]
    for image, times in after.items():
        assert len(times) >= 3, (image, times)  # listed by the waves, not only before them
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= timedelta(minutes=1) for gap in gaps), (image, gaps)


async def test_a_tick_returns_while_the_passes_it_started_run() -> None:
    """Kopf sleeps a timer's interval from the handler's end: a tick that awaited its pass would
    space that CR's ticks by the pass's length, and a pass longer than a tick would make the CR
    look stopped to the next wave (it then passed late and alone: an extra push)."""
    state, tick, crs, inner, _git, clock = await started(2)
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    gate = gated_listings(inner)
    clock[0] = state.due.next_at() or clock[0]
    ticked = asyncio.create_task(tick(body=crs[0], patch=kopf.Patch(), logger=None))
    for _ in range(100):
        await asyncio.sleep(0)
    assert ticked.done(), "the tick has returned"
    assert sorted(state.passes) == ["u0", "u1"], "the wave's passes run on"
    assert not any(task.done() for task in state.passes.values())
    gate.set()
    await asyncio.gather(*list(state.passes.values()))


async def test_a_trigger_takes_along_the_crs_of_its_repository_due_within_a_tick() -> None:
    """A burst of requested-at annotations delivered just before the CRs' timer wave: the first
    request's pass takes the rest along, so the repository gets one push, not the earlier
    requests' batch and then the wave's (bench/scale.py, triggered, once made 15 pushes for 10
    repositories this way)."""
    state, tick, crs, inner, git, clock = await started(6, window=0.05)
    for i, cr in enumerate(crs):  # an image each, one repository (as in the bench)
        cr["spec"]["image"] = f"ghcr.io/acme/app{i}"
        state.images.update(str(cr.meta["uid"]), cr["spec"])
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    at = state.due.next_at()
    assert at is not None
    inner.tags.append("1.1.0-dev")
    git.batches.clear()
    listed = len(inner.seen)
    clock[0] = at - timedelta(seconds=3)  # the wave is due in 3 s
    stamp = f"{clock[0].timestamp():.0f}"

    def annotated(cr: kopf.Body) -> kopf.Body:
        return kopf.Body({**cr, "metadata": {**cr.meta, "annotations": {REQUESTED_AT: stamp}}})

    for cr in crs[:2]:  # the watch has delivered two of the six requests
        state.watched(annotated(cr))
    await asyncio.gather(*state.requested, *list(state.passes.values()))
    statuses: Statuses = state.status_writer  # type: ignore[assignment]
    assert {statuses.promoted(str(cr.meta["name"])) for cr in crs} == {"1.1.0-dev"}
    assert git.batches == [6], "one write for the repository"
    assert len(inner.seen) == listed + 6, "one listing per image"
    for cr in crs[2:]:  # the other four arrive: each answered by the pass that took it along
        state.watched(annotated(cr))
    await asyncio.gather(*state.requested)
    await wave(state, tick, crs[0], clock, at)  # the wave's instant: nothing is due any more
    assert git.batches == [6] and len(inner.seen) == listed + 6
    assert {state.requests.last_answered(str(cr.meta["uid"])) for cr in crs} == {stamp}


async def test_a_tick_while_another_pass_of_its_cr_runs_returns_and_the_pass_queues_it() -> None:
    """A CR's tick during its created or requested pass does not wait for that pass: Kopf
    sleeps a tick from the handler's end, so a tick held up by a pass several seconds long made
    the CR look stopped to the next wave, which then left it to pass alone a moment later (the
    scale bench once made 13 pushes for 10 repositories so, after the initial cycle)."""
    state, tick, crs, inner, _git, clock = await started(2)
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    await asyncio.gather(*list(state.passes.values()))
    gate = gated_listings(inner)
    clock[0] += timedelta(seconds=2)  # asked after the last pass's scan: it must scan again
    stamp = f"{clock[0].timestamp():.0f}"
    requested = kopf.Body(
        {**crs[0], "metadata": {**crs[0].meta, "annotations": {REQUESTED_AT: stamp}}}
    )
    state.watched(requested)
    for _ in range(20):
        await asyncio.sleep(0)
    assert state.locks["u0"].locked(), "the requested pass runs, waiting on its scan"
    ticked = asyncio.create_task(tick(body=crs[0], patch=kopf.Patch(), logger=None))
    for _ in range(20):
        await asyncio.sleep(0)
    assert ticked.done(), "the tick has returned"
    gate.set()
    await asyncio.gather(*state.requested)
    assert state.due.due_at("u0") is not None, "the requested pass queued it"
