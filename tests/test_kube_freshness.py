"""The not_before each Kopf handler of kube/handlers.py gives its pass, and the poke fan-out.

The handlers are taken from the Kopf registry `build_registry` fills and called as Kopf calls
them; the registry reader records the RegistryAccess of every listing, so what each cause asks
of the scan cache is read off the access itself. The clock is fixed.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from typing import Any

import kopf
import pytest

from imagepromoter import holds, scans
from imagepromoter.kube import handlers
from imagepromoter.kube import stages as kube_stages
from imagepromoter.kube.handlers import REQUESTED_AT
from imagepromoter.webhooks import model as webhook_model
from tests.test_kube_handlers import NOW
from tests.test_kube_handlers import operator as memory_operator
from tests.test_reconcile import VALUES, MemoryGit, MemoryRegistry, make_spec

EARLIER = NOW - timedelta(seconds=30)
STAMP = EARLIER.strftime("%Y-%m-%dT%H:%M:%SZ")


class Statuses:
    """`patching.StatusWriter` in memory: the last status patch written per CR name."""

    def __init__(self) -> None:
        self.last: dict[str, dict[str, Any]] = {}
        self.count = 0  # patches written

    async def patch(self, namespace: str, name: str, patch: Any) -> str | None:
        self.last[name] = dict(patch)
        self.count += 1
        return str(len(self.last))

    def promoted(self, name: str) -> str | None:
        """The promotedTag the last pass on `name` wrote, if any pass wrote one."""
        return (self.last.get(name) or {}).get("promotedTag")


def operator(registry: Any) -> tuple[handlers.Operator, kopf.OperatorRegistry]:
    state = memory_operator(registry, MemoryGit({"env/dev/values.yaml": VALUES.encode()}))
    state.status_writer = Statuses()
    return state, handlers.build_registry(state)


def handler(registry: kopf.OperatorRegistry, name: str) -> Any:
    """The function Kopf would call for the handler named `name`."""
    kinds = (registry._changing, registry._spawning, registry._watching)
    (found,) = [h.fn for kind in kinds for h in kind._handlers if h.fn.__name__ == name]
    return found


def body(uid: str = "u1", *, annotations: dict[str, str] | None = None, **meta: Any) -> kopf.Body:
    return kopf.Body(
        {
            "metadata": {
                "uid": uid,
                "name": uid,
                "namespace": "gitops",
                "generation": 1,
                "annotations": annotations or {},
                **meta,
            },
            "spec": make_spec(),
        }
    )


TRIGGER = webhook_model.Trigger(
    tag="1.1.0-dev", source="ci", type="generic-hmac", delivery="d1",
    received_at="2026-12-01T09:59:30.000Z",
).encode()  # fmt: skip

def listed(uid: str) -> kopf.Body:
    """A CR whose generation a pass has read, but never scanned: the timer's to pass, not the
    watch's (a bare body is a new CR, which the watch passes at once)."""
    return kopf.Body({**body(uid), "status": {"observedGeneration": 1}})


def observed(cr: kopf.Body, generation: int) -> kopf.Body:
    """`cr` at `generation`, with a status from a pass that read `generation - 1`."""
    meta = {**cr.meta, "generation": generation}
    return kopf.Body({**cr, "metadata": meta, "status": {"observedGeneration": generation - 1}})


CAUSES = [
    ("created", body(creationTimestamp=STAMP), EARLIER),
    ("created, clock ahead", body(creationTimestamp="2027-01-01T00:00:00Z"), NOW),
    ("spec changed", observed(body(managedFields=[{"time": STAMP}]), 2), EARLIER),
    ("spec changed, no managedFields", observed(body(), 2), NOW),
]


@pytest.mark.parametrize(("cr", "expected"), [c[1:] for c in CAUSES], ids=[c[0] for c in CAUSES])
async def test_each_cause_gives_its_pass_a_not_before(cr: kopf.Body, expected: datetime) -> None:
    """A generation no pass has read, as the watch delivers it (a start's listing too)."""
    registry = MemoryRegistry(["1.0.0-dev", "1.1.0-dev"])
    state, kopf_registry = operator(registry)
    await handler(kopf_registry, "watched")(type=None, body=cr, meta=cr.meta)
    await asyncio.gather(*state.requested)
    (access,) = registry.seen
    assert access.not_before == expected.timestamp()


async def test_a_spec_change_passes_once_and_an_observed_generation_asks_nothing() -> None:
    registry = MemoryRegistry(["1.0.0-dev", "1.1.0-dev"])
    state, kopf_registry = operator(registry)
    watched = handler(kopf_registry, "watched")
    seen = observed(body(managedFields=[{"time": STAMP}]), 2)
    seen = kopf.Body({**seen, "status": {"observedGeneration": 2}})
    await watched(type=None, body=seen, meta=seen.meta)  # listed after a start: nothing owed
    await asyncio.gather(*state.requested)
    assert registry.seen == []
    changed = observed(seen, 3)
    for _ in range(3):  # the change, and two more events before its status lands
        await watched(type="MODIFIED", body=changed, meta=changed.meta)
    await asyncio.gather(*state.requested)
    assert len(registry.seen) == 1 and state.spec_changes.last_answered("u1") == "3"
    after = kopf.Body({**changed, "status": {"observedGeneration": 3}})
    await watched(type="MODIFIED", body=after, meta=after.meta)
    assert not state.requested and len(registry.seen) == 1


async def test_a_new_cr_its_first_tick_passed_is_not_passed_again_by_the_watch() -> None:
    clock, inner, state, kopf_registry, statuses = await shared_operator()
    cr = body(creationTimestamp=STAMP)
    await ticker(state, kopf_registry)(body=cr, patch=kopf.Patch(), logger=None)
    assert statuses.count == 1, "the tick passed the new CR (its generation is unobserved)"
    clock[0] += timedelta(minutes=5)  # past the shared scan's reuse: a second pass would list
    await handler(kopf_registry, "watched")(type="ADDED", body=cr, meta=cr.meta)
    await asyncio.gather(*state.requested)
    assert len(inner.seen) == 1 and statuses.count == 1, "answered by the tick's pass"


async def request(
    state: handlers.Operator,
    kopf_registry: kopf.OperatorRegistry,
    cr: kopf.Body,
    value: str,
    key: str = REQUESTED_AT,
) -> None:
    """Annotate `cr` with `key` as the watch delivers it; wait for the pass it starts."""
    annotated = kopf.Body({**cr, "metadata": {**cr.meta, "annotations": {key: value}}})
    await handler(kopf_registry, "watched")(type="MODIFIED", body=annotated, meta=annotated.meta)
    await asyncio.gather(*state.requested)


REQUESTS = [
    ("requested-at epoch seconds", REQUESTED_AT, f"{EARLIER.timestamp():.0f}", EARLIER),
    ("requested-at not a time", REQUESTED_AT, "x", NOW),
    ("webhook trigger: its receivedAt", webhook_model.TRIGGER_ANNOTATION, TRIGGER, EARLIER),
    ("upstream changed: now", kube_stages.UPSTREAM_CHANGED, f"dev {EARLIER.timestamp()}", NOW),
    ("release-hold changed: now", holds.RELEASE_ANNOTATION, "1", NOW),
]


@pytest.mark.parametrize(
    ("key", "value", "expected"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS]
)
async def test_a_request_on_an_annotation_gives_its_pass_a_not_before(
    key: str, value: str, expected: datetime
) -> None:
    registry = MemoryRegistry(["1.0.0-dev", "1.1.0-dev"])
    state, kopf_registry = operator(registry)
    cr = kopf.Body({**body(), "status": {"observedGeneration": 1}})  # passed before
    await handler(kopf_registry, "watched")(type=None, body=cr, meta=cr.meta)  # listed, bare
    await asyncio.gather(*state.requested)
    assert registry.seen == [], "a CR without the annotation: no pass from the watch"
    await request(state, kopf_registry, cr, value, key)
    (access,) = registry.seen
    assert access.not_before == expected.timestamp()
    await request(state, kopf_registry, cr, value, key)
    assert len(registry.seen) == 1, "the same value again: no pass"


TIMERS = [
    # (intervals of the CRs on the image, the ticked CR's index, the shortest interval used)
    (["1h"], 0, timedelta(hours=1)),
    (["1h", "1m"], 0, timedelta(minutes=1)),
    (["1m", "1h"], 0, timedelta(minutes=1)),
    (["1h", "1m (suspended)"], 0, timedelta(hours=1)),
]


@pytest.mark.parametrize(
    ("intervals", "ticked", "shortest"), TIMERS, ids=[",".join(i) for i, *_ in TIMERS]
)
async def test_a_timer_pass_takes_a_scan_within_the_images_shortest_interval(
    intervals: list[str], ticked: int, shortest: timedelta
) -> None:
    registry = MemoryRegistry(["1.0.0-dev"])
    _, kopf_registry = operator(registry)
    watched = handler(kopf_registry, "watched")
    crs = []
    for i, text in enumerate(intervals):
        cr = listed(f"u{i}")
        cr["spec"]["interval"] = text.split()[0]
        cr["spec"]["suspend"] = "suspended" in text
        crs.append(cr)
        await watched(type="ADDED", body=cr, meta=cr.meta)
    await handler(kopf_registry, "tick")(body=crs[ticked], patch=kopf.Patch(), logger=None)
    (access,) = registry.seen
    tick = timedelta(seconds=handlers.Options().tick)  # the slack: waves are an interval apart
    assert access.not_before == (NOW - shortest + min(tick, shortest / 2)).timestamp()


def ticker(state: handlers.Operator, kopf_registry: kopf.OperatorRegistry) -> Any:
    """The timer handler, then every pass its tick started (the handler returns before they
    end, as Kopf calls it: handlers.py says why)."""
    tick = handler(kopf_registry, "tick")

    async def ticked(**kwargs: Any) -> None:
        await tick(**kwargs)
        await asyncio.gather(*list(state.passes.values()))

    return ticked


async def shared_operator() -> tuple[
    list[Any], MemoryRegistry, handlers.Operator, kopf.OperatorRegistry, Statuses
]:
    """An operator on a settable clock whose passes share scans (and fan out) from one registry."""
    clock = [NOW]
    inner = MemoryRegistry(["1.0.0-dev"])
    shared = scans.SharedScans(inner, clock=lambda: clock[0].timestamp())
    state, kopf_registry = operator(None)
    state.now, state.clock = (lambda: clock[0]), (lambda: clock[0])
    state.adapters = handlers.Adapters(registry_factory=lambda: shared, git=state.adapters.git)
    await state.start(kopf.OperatorSettings())
    state.status_writer = statuses = Statuses()
    assert shared.on_change == state.image_changed
    return clock, inner, state, kopf_registry, statuses


async def test_new_tags_found_by_one_cr_are_acted_on_by_every_cr_of_the_image_at_once() -> None:
    clock, inner, state, kopf_registry, statuses = await shared_operator()
    watched, tick = handler(kopf_registry, "watched"), ticker(state, kopf_registry)
    crs = [listed(f"u{i}") for i in range(3)]
    crs[2]["spec"]["image"] = "ghcr.io/myorg/another"
    for i, cr in enumerate(crs):
        cr["spec"]["interval"] = "1m" if i == 0 else "1h"
        await watched(type="ADDED", body=cr, meta=cr.meta)
    for cr in crs:  # a first pass each
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    assert len(inner.seen) == 2, "one listing per image"
    inner.tags.append("1.1.0-dev")
    clock[0] += timedelta(minutes=1, seconds=1)  # u0 is due (1m), the others are not (1h)
    statuses.last.clear()
    for cr in crs:
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    assert len(inner.seen) == 3, "u0 listed the image; u1 took its scan"
    promoted = {cr.meta["name"]: statuses.promoted(cr.meta["name"]) for cr in crs}
    assert promoted == {"u0": "1.1.0-dev", "u1": "1.1.0-dev", "u2": None}, "u2: another image"


class GatedGit(MemoryGit):
    """A git writer whose writes for one path wait until the test opens the gate."""

    def __init__(self, files: dict[str, bytes], held: str) -> None:
        super().__init__(files)
        self.held, self.entered, self.gate = held, threading.Event(), threading.Event()

    def write(self, git: Any, creds: Any, plan: Any, **options: Any) -> Any:
        if self.held in self.touched(plan):
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return super().write(git, creds, plan, **options)

    def touched(self, plan: Any) -> set[str]:
        return {change.path for change in plan(lambda path: self.files[path]).changes}


async def test_a_cr_busy_with_an_older_listing_when_new_tags_are_found_acts_on_them() -> None:
    clock = [NOW]
    inner = MemoryRegistry(["1.0.0-dev"])
    shared = scans.SharedScans(inner, clock=lambda: clock[0].timestamp())
    old = VALUES.replace("1.0.0-dev", "0.9.0-dev").encode()
    files = {"env/dev/values.yaml": old, "env/prod/values.yaml": old}
    git = GatedGit(files, held="env/prod/values.yaml")
    state, kopf_registry = operator(None)
    state.now, state.clock = (lambda: clock[0]), (lambda: clock[0])
    state.adapters = handlers.Adapters(registry_factory=lambda: shared, git=git)
    await state.start(kopf.OperatorSettings())
    state.status_writer = statuses = Statuses()
    watched, tick = handler(kopf_registry, "watched"), ticker(state, kopf_registry)
    dev, prod = listed("dev"), listed("prod")
    dev["spec"]["interval"], prod["spec"]["interval"] = "1m", "1h"
    prod["spec"]["targets"] = [{"path": "env/prod/values.yaml", "key": "image.tag"}]
    # another repository: writes into one repository and branch are one batch at a time, so
    # dev's write would queue behind prod's held one
    prod["spec"]["git"] = {**prod["spec"]["git"], "url": prod["spec"]["git"]["url"] + "-prod"}
    for cr in (dev, prod):
        await watched(type="ADDED", body=cr, meta=cr.meta)
    # prod's first pass lists 1.0.0-dev and is held in its git write ...
    busy = asyncio.ensure_future(tick(body=prod, patch=kopf.Patch(), logger=None))
    assert await asyncio.to_thread(git.entered.wait, 30), "prod's pass reached git"
    # ... while dev, a minute later, finds 1.1.0-dev
    inner.tags.append("1.1.0-dev")
    clock[0] += timedelta(minutes=1, seconds=1)
    await tick(body=dev, patch=kopf.Patch(), logger=None)
    assert statuses.promoted("dev") == "1.1.0-dev"
    git.gate.set()
    await busy
    assert b"tag: 1.0.0-dev" in git.files["env/prod/values.yaml"], "prod promoted the older tag"
    await tick(body=prod, patch=kopf.Patch(), logger=None)  # its next tick: due again at once
    assert statuses.promoted("prod") == "1.1.0-dev"
    assert len(inner.seen) == 2, "from dev's scan"


async def test_a_request_already_answered_by_a_fan_out_needs_no_pass_of_its_own() -> None:
    clock, inner, state, kopf_registry, statuses = await shared_operator()
    watched, tick = handler(kopf_registry, "watched"), handler(kopf_registry, "tick")
    crs = [body(f"u{i}") for i in range(2)]
    for cr in crs:
        await watched(type="ADDED", body=cr, meta=cr.meta)
        await tick(body=cr, patch=kopf.Patch(), logger=None)
    inner.tags.append("1.1.0-dev")
    clock[0] += timedelta(seconds=30)
    stamp = f"{clock[0].timestamp():.3f}"  # both CRs are annotated at once
    clock[0] += timedelta(seconds=1)
    await request(state, kopf_registry, crs[0], stamp)  # u0's event first
    await asyncio.gather(*list(state.passes.values()))
    clock[0] += timedelta(milliseconds=5)
    await tick(body=crs[0], patch=kopf.Patch(), logger=None)  # the fan-out wave: u1 promotes
    await asyncio.gather(*list(state.passes.values()))
    assert statuses.promoted("u1") == "1.1.0-dev"
    listings, writes = len(inner.seen), statuses.count
    await request(state, kopf_registry, crs[1], stamp)  # u1's, late
    assert (len(inner.seen), statuses.count) == (listings, writes), "no pass at all"
    assert state.requests.last_answered("u1") == stamp, "answered by the fan-out's pass"
    newer = f"{(clock[0] + timedelta(seconds=1)).timestamp():.3f}"  # a newer request is not
    clock[0] += timedelta(seconds=2)
    await request(state, kopf_registry, crs[1], newer)
    assert len(inner.seen) == listings + 1, "a request after the last pass's listing: a pass"
