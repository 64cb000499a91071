"""One operator run's state and its passes: `Operator`, which every Kopf handler is bound to.

Each pass says how fresh its scan must be (`not_before`, pipeline/freshness.py: the creation,
change, request or webhook time; a timer pass, its image's shortest interval), and the shared
scans (scans.py) serve every pass of an image from one request; when a scan finds new tags,
`image_changed` pokes every CR of the image so they act on it in the next wave.

Every pass runs under a per-CR lock (timer and change handlers never overlap on one CR) and
within `Options.pass_deadline` (reconcile enforces it on every network phase). There is no limit
on whole passes: a pass waiting on a slow remote holds nothing another CR needs. What is limited
is CPU work (reconcile's small thread pool) and connections per host (the git writer's slots, the
registry client's pool); passes on the same repository and branch are serialized by the git
writer. The status from `reconcile` is written by the pass itself, inside the CR's turn, and only
what differs (kube/patching.py; an idle pass makes no API request); the outcome posts a
de-duplicated Event and counts in the metrics. A failed pass does not raise a Kopf error: our
timer is the only retry (kube/retrying.py says why), so Kopf sees every handler succeed.

Timer passes start in waves (pipeline/waves.py: a heap of due instants; any CR's tick starts every
CR due), so CRs of one image and one repository pass together; `run_pass` is the one way any cause
(create, spec change, manual request, timer, webhook, stage) runs a pass. kube/handlers.py
registers the Kopf handlers that call into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from imagepromoter import changes, credentials, gates, holds, reconcile, scans, shards, spec
from imagepromoter import status as status_module
from imagepromoter.kube import (
    events,
    health,
    metrics,
    notifying,
    patching,
    schedule,
    secrets,
)
from imagepromoter.kube import stages as kube_stages
from imagepromoter.kube.options import KOPF_PREFIX, REQUESTED_AT, Adapters, Options
from imagepromoter.pipeline import batches, freshness, manual, waves
from imagepromoter.pipeline import index as image_index
from imagepromoter.webhooks import model as webhook_model

logger = logging.getLogger(__name__)

_Answer = Callable[[Mapping[str, Any], str], Awaitable[None]]  # a request's pass: (body, value)
_Read = Callable[[Mapping[str, Any]], object]  # a request's value as a body carries it
GENERATION = "metadata.generation"  # beside the annotations: a generation no pass has read


def _annotation(key: str, body: Mapping[str, Any]) -> object:
    annotations: Mapping[str, Any] = (body.get("metadata") or {}).get("annotations") or {}
    return annotations.get(key)


@dataclass
class _Timings:
    started: float
    write_started: float | None = None
    write_finished: float | None = None

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Record when the write inside this block starts and ends (it raised or not)."""
        self.write_started = time.monotonic()
        try:
            yield
        finally:
            self.write_finished = time.monotonic()


class _TimedBatches:
    """Wraps the batching writer to time the write (the window included: the CR waited it)."""

    def __init__(
        self, git: batches.Batches, timings: _Timings, expected: batches.Expected | None = None
    ) -> None:
        self._git = git
        self._timings = timings
        self._expected = expected  # the pass's own: its arrival lets the batch go sooner

    async def write(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plan: changes.Planner,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> changes.WriteResult:
        with self._timings.writing():
            return await self._git.write(
                git, creds, plan, dry_run=dry_run, deadline=deadline, expected=self._expected
            )


@dataclass
class Operator:
    """The state shared by the handlers of one operator run."""

    adapters: Adapters
    options: Options = Options()
    metrics_: metrics.Metrics | None = None
    now: Callable[[], datetime] | None = None
    registry: reconcile.RegistryReader | None = None
    secrets: reconcile.SecretReader | None = None
    batcher: batches.Batches | None = None  # built by start(): one push per repository and branch
    gone: set[str] = field(default_factory=set)
    statuses: dict[str, patching.Written] = field(default_factory=dict)  # our last writes
    status_writer: patching.StatusWriter | None = None
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    upstreams: kube_stages.KopfUpstreams = field(default_factory=kube_stages.KopfUpstreams)
    images: image_index.ImageIndex = field(default_factory=image_index.ImageIndex)
    due: waves.DueQueue = field(default_factory=waves.DueQueue)  # the next waves
    # the live body each CR's timer last ticked with, and when (time.monotonic())
    bodies: dict[str, tuple[Mapping[str, Any], float]] = field(default_factory=dict)
    passes: dict[str, asyncio.Task[bool]] = field(default_factory=dict)  # started by a wave
    # the annotations that ask for a pass, read from the watch (pipeline/manual.py)
    requests: manual.Requests = field(default_factory=lambda: manual.Requests(manual.requested_at))
    triggers: manual.Requests = field(
        default_factory=lambda: manual.Requests(manual.webhook_trigger)
    )
    upstream_changes: manual.Requests = field(
        default_factory=lambda: manual.Requests(manual.upstream_changed)
    )
    releases: manual.Requests = field(
        default_factory=lambda: manual.Requests(manual.release_hold, removal_asks=True)
    )
    spec_changes: manual.Requests = field(  # a generation no pass has read: created, changed
        default_factory=lambda: manual.Requests(manual.generation_owed)
    )
    # per (uid, annotation): the latest body and value of a request whose pass has not started
    asked: dict[tuple[str, str], tuple[Mapping[str, Any], str]] = field(default_factory=dict)
    requested: set[asyncio.Task[None]] = field(default_factory=set)  # their passes, running
    selector: shards.Selector = field(default_factory=shards.Selector)

    def __post_init__(self) -> None:
        self.clock: Callable[[], datetime] = self.now or _utcnow
        self.metrics: metrics.Metrics = self.metrics_ or metrics.METRICS
        self.schedule = schedule.Schedule(
            base_backoff=self.options.base_backoff, grid=self.options.tick
        )
        self.events = events.Events(window=self.options.event_window, now=self.clock)
        self.health = health.Health(
            blocked_after=self.options.blocked_after, start_after=self.options.start_after
        )
        self.notifier = notifying.Notifier(secrets=lambda: self.secrets, post=self.events.post)
        # the annotations that ask for a pass: what was seen of each, and its pass ...
        annotated: dict[str, tuple[manual.Requests, _Answer]] = {
            REQUESTED_AT: (self.requests, self._requested_pass),
            webhook_model.TRIGGER_ANNOTATION: (self.triggers, self._webhook_pass),
            kube_stages.UPSTREAM_CHANGED: (self.upstream_changes, self._upstream_pass),
            holds.RELEASE_ANNOTATION: (self.releases, self._release_pass),
        }
        self._annotations = tuple(annotated)  # left out of Kopf's essence (`start`)
        # ... and beside them a generation no pass has read; each row reads its value off a body
        self._asking: dict[str, tuple[manual.Requests, _Answer, _Read]] = {
            key: (memory, answer, functools.partial(_annotation, key))
            for key, (memory, answer) in annotated.items()
        }
        spec_row = (self.spec_changes, self._spec_pass, manual.unobserved_generation)
        self._asking[GENERATION] = spec_row

    async def start(self, settings: kopf.OperatorSettings) -> None:
        """Configure Kopf and build the adapters that need the running loop."""
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=KOPF_PREFIX,
            key="last-handled-configuration",
            # the annotations that ask for a pass are read from the watch (pipeline/manual.py)
            ignored_fields=[("metadata", "annotations", key) for key in self._annotations],
        )
        settings.persistence.finalizer = f"{KOPF_PREFIX}/finalizer"  # never added; see docstring
        settings.posting.reporting_component = "imagepromoter"
        settings.posting.event_name_prefix = "imagepromoter-"
        self.registry = self.adapters.registry_factory()
        if isinstance(self.registry, scans.SharedScans):
            self.registry.on_change = self.image_changed
        self.secrets = secrets.KopfSecrets(settings, max_age=self.options.secret_max_age)
        self.status_writer = patching.KopfStatus(settings)
        self.batcher = batches.Batches(self.adapters.git, window=self.options.batch_window)

    async def stop(self) -> None:
        """Close what `start` opened."""
        for task in [*self.passes.values(), *self.requested]:
            task.cancel()
        close = getattr(self.registry, "aclose", None)
        if close is not None:
            await close()
        await self.notifier.aclose()

    def forget(self, uid: str) -> None:
        """A CR was deleted: drop everything kept about it and stop its timer."""
        self.gone.add(uid)
        self._drop(uid)
        self.locks.pop(uid, None)

    def release(self, uid: str) -> None:
        """A CR relabelled out of this shard: drop what is kept for it (it may come back).

        Not `gone`: Kopf already stopped its timer here (its filter stopped matching), and if it
        comes back its timer starts again and schedules it from the cluster's status.
        """
        if uid not in self.gone:
            self._drop(uid)

    def _drop(self, uid: str) -> None:
        """Forget the CR's schedule, index entry, requests, events memory and last write."""
        self.schedule.forget(uid)
        self.due.discard(uid)
        self.bodies.pop(uid, None)
        self.images.remove(uid)
        for memory, _, _ in self._asking.values():
            memory.forget(uid)
        for key in [key for key in self.asked if key[0] == uid]:
            del self.asked[key]  # its waiting pass finds nothing to do (`_asked_pass`)
        self.events.forget(uid)
        self.statuses.pop(uid, None)

    def watched(self, body: Mapping[str, Any]) -> None:
        """An ADDED or MODIFIED event (or a listing): the image index, and a new request."""
        meta: Mapping[str, Any] = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        self.images.update(uid, body.get("spec") or {})
        status: Mapping[str, Any] = body.get("status") or {}
        now = self.clock()
        for key, (memory, _, read) in self._asking.items():
            value = memory.seen(uid, read(body), status=status, now=now)
            if value is not None:
                self._ask(uid, key, body, value)

    def _ask(self, uid: str, annotation: str, body: Mapping[str, Any], value: str) -> None:
        """A pass for a new request; one already waiting for its turn takes this one instead.

        So the requests that arrive while a pass of the CR runs make one more pass, on the latest
        value (a burst of webhook deliveries, or annotations, is one pass after the running one).
        """
        waiting = (uid, annotation) in self.asked
        self.asked[uid, annotation] = (body, value)
        if waiting:
            return
        task = asyncio.create_task(self._asked_pass(uid, annotation))
        self.requested.add(task)
        task.add_done_callback(self._asked_ended)

    async def _asked_pass(self, uid: str, annotation: str) -> None:
        """Wait for a pass of the CR running now to end, then pass on the latest request."""
        lock = self.locks.setdefault(uid, asyncio.Lock())
        async with lock:
            pass  # the running pass has ended; what arrived meanwhile is in `asked`
        asked = self.asked.pop((uid, annotation), None)
        if asked is None:
            return  # the CR was deleted, or left this shard, while it waited (`_drop`)
        body, value = asked
        memory, answer, _ = self._asking[annotation]
        await answer(body, value)
        memory.answered(uid, value)

    async def _requested_pass(self, body: Mapping[str, Any], value: str) -> None:
        """A manual trigger's pass, unless the CR's last pass already answered it."""
        since = freshness.requested(value, self.clock())
        self._take_along(body, since)
        ran = await self.run_pass(
            body, None, force=True, why=f"requested at {value}", not_before=since,
            unless_served=since, scheduled=_instant(since),
        )  # fmt: skip
        self.metrics.manual_triggers.labels(result="passed" if ran else "answered").inc()

    async def _webhook_pass(self, body: Mapping[str, Any], value: str) -> None:
        """A recorded webhook event's pass, announced by a Normal `Webhook` event."""
        trigger = webhook_model.decode(value)
        if trigger is None:
            return  # anything else in the annotation is not ours to act on
        self.events.post(body, "Normal", "Webhook", webhook_model.announcement(trigger))
        why = f"webhook {trigger.source} delivery {trigger.delivery}"
        since = freshness.webhook(trigger.received_at, self.clock())
        self._take_along(body, since)
        await self.run_pass(
            body, None, force=True, why=why, not_before=since, scheduled=_instant(since)
        )

    async def _spec_pass(self, body: Mapping[str, Any], value: str) -> None:
        """A generation no pass has read: a new CR (as fresh as its creation) or a spec change,
        made now or while the operator was stopped (as fresh as the change); none when a pass
        of that generation (the CR's first tick, say) already scanned after it."""
        meta: Mapping[str, Any] = body.get("metadata") or {}
        if "observedGeneration" not in (body.get("status") or {}):
            why, since = "created", freshness.created(meta, self.clock())
        else:
            why, since = f"spec changed (generation {value})", freshness.changed(meta, self.clock())
        await self.run_pass(body, None, force=True, why=why, not_before=since, unless_served=since)

    async def _upstream_pass(self, body: Mapping[str, Any], value: str) -> None:
        """The CR's upstream stage changed (kube/stages.py set the annotation): follow it now."""
        await self.run_pass(body, None, force=True, why=f"upstream changed ({value})")

    async def _release_pass(self, body: Mapping[str, Any], value: str) -> None:
        """release-hold changed: the pass writes over the hold (holds.released)."""
        await self.run_pass(body, None, force=True, why="release-hold changed")

    def _asked_ended(self, task: asyncio.Task[None]) -> None:
        self.requested.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a requested pass failed unexpectedly", exc_info=task.exception())

    def image_changed(self, host: str, repository: str, started: float) -> None:
        """A scan found new tags: every CR of the image is due now, in the next wave (fan-out)."""
        now = self.clock()
        for uid in self.images.members((host, repository)):
            self.schedule.poke(uid, now, started)
            self.due.set(uid, now)

    def on_tick(self, body: Mapping[str, Any]) -> asyncio.Task[bool] | None:
        """A CR's timer ticked: start every CR now due (the wave); this CR's pass, if it is one."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        self.bodies[uid] = (body, time.monotonic())
        self.start_due()
        return self.passes.get(uid)

    def start_due(self) -> None:
        """Start the pass of every CR due now, together (pipeline/waves.py says why).

        The wave also takes the CRs due within one more tick that share an image or a
        repository with it: waves a slot apart merge (each of those passes once a tick early).
        """
        now = self.clock()
        due = self.due.take_due(now)
        if not due:
            return
        shared = set().union(*(self._wave_keys(uid) for uid, _ in due))
        wave = max(at for _, at in due)
        started = sum(self._start_pass(uid, scheduled=at) for uid, at in due)
        early = self._start_soon(shared, now, wave)
        logger.debug("wave due %s: %d of %d due passes started, %d a tick early",
                     wave, started, len(due), early)  # fmt: skip

    def _start_soon(
        self,
        shared: set[tuple[str, object]],
        now: datetime,
        wave: datetime,
        *,
        but: str = "",
        not_before: float | None = None,
    ) -> int:
        """Start, a tick early, the CRs (but `but`) due within one more tick that share an image
        or a repository with `shared`; their next passes count from `wave`. How many started."""
        early = timedelta(seconds=self.options.tick)
        soon = self.due.pop_soon(
            now + early, lambda uid: uid != but and not shared.isdisjoint(self._wave_keys(uid))
        )
        started = 0
        for uid, at in soon:
            if self._start_pass(uid, early=early, scheduled=wave, not_before=not_before):
                started += 1
            else:
                self.due.set(uid, at)  # not started here: it stays due when it was
        return started

    def _take_along(self, body: Mapping[str, Any], since: float) -> None:
        """A trigger's pass takes along the CRs of its image and repository due within a tick:
        their timer wave would otherwise come while the trigger's passes of a burst still run,
        and split each repository's promotions into two pushes (the earlier requests' batch,
        then the wave's). They scan as fresh as the trigger asks, so that their own requests, if
        a burst holds them, find them answered (and no pass uses a listing older than one)."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        keys = self._wave_keys(uid)
        if keys:
            self._start_soon(keys, self.clock(), _instant(since), but=uid, not_before=since)

    def _wave_keys(self, uid: str) -> set[tuple[str, object]]:
        """What a CR shares with a wave: its image and its repository and branch."""
        ticked = self.bodies.get(uid)
        if ticked is None:
            return set()
        spec_dict: Mapping[str, Any] = ticked[0].get("spec") or {}
        return {("image", self.images.image_of(uid)), ("repository", _repository(spec_dict))}

    def _start_pass(
        self,
        uid: str,
        *,
        early: timedelta = timedelta(0),
        scheduled: datetime | None = None,
        not_before: float | None = None,
    ) -> bool:
        """Start a wave's pass of `uid` as a task; False if it is not started here."""
        ticked = self.bodies.get(uid)
        if ticked is None or uid in self.gone or uid in self.passes:
            return False  # not ticked here yet (its own tick decides), gone, or already running
        body, when = ticked
        if time.monotonic() - when > 2 * self.options.tick:
            # its timer has not ticked lately (a peering pause stops them all): its body may
            # be stale, so its own next tick, with a live body, decides
            return False
        labels = (body.get("metadata") or {}).get("labels")
        if self.selector and not self.selector.matches(labels):
            return False  # relabelled into another shard: its timer here has stopped
        task = asyncio.create_task(
            self.run_pass(
                body,
                None,
                force=False,
                why="interval",
                early=early,
                scheduled=scheduled,
                not_before=not_before,
            )
        )
        self.passes[uid] = task
        task.add_done_callback(functools.partial(self._pass_ended, uid))
        return True

    def _pass_ended(self, uid: str, task: asyncio.Task[bool]) -> None:
        if self.passes.get(uid) is task:
            del self.passes[uid]
        if not task.cancelled() and task.exception() is not None:
            logger.error("pass of %s failed unexpectedly", uid, exc_info=task.exception())

    def not_before(self, uid: str, spec_dict: Mapping[str, Any], now: datetime) -> float:
        """A timer pass's freshness: a scan within the shortest interval of the CR's image."""
        shortest = schedule.interval_of(spec_dict)
        key = image_index.image_key(spec_dict)
        indexed = self.images.min_interval(key) if key is not None else None
        within = min(shortest, indexed) if indexed is not None else shortest
        return freshness.timer(now, within, slack=self._one_tick)

    @property
    def _one_tick(self) -> timedelta:
        return timedelta(seconds=self.options.tick)

    async def run_pass(
        self,
        body: Mapping[str, Any],
        patch: kopf.Patch | None,
        *,
        force: bool,
        why: str,
        not_before: float | None = None,
        early: timedelta = timedelta(0),
        scheduled: datetime | None = None,
        unless_served: float | None = None,
    ) -> bool:
        """One reconcile pass for one CR (if due or forced); its status written in its turn.

        True when a pass ran (False: the CR is gone, not due, its last pass answered, or, not
        forced, a pass of it is running).

        `early`: due by `early` from now is due (a wave taking a CR due just after it).
        `scheduled`: the instant the wave that started it was due, or the request's own time (a
        manual or webhook trigger); the next pass is one interval after it, if the pass began
        within a tick of it (so the period is the interval, not the interval plus the wave's
        start-up, and CRs annotated at once are due together again although the watch delivered
        them seconds apart, across a slot's edge).
        `unless_served`: no pass if the CR's last pass used a listing requested at or after it.

        `patch` (Kopf's) is left alone: the status is written by `_write_status` under the lock.
        `not_before` is how fresh its scan must be (pipeline/freshness.py); a forced pass without
        one asks for now, a timer pass for its image's shortest interval.
        """
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        spec_dict: Mapping[str, Any] = body.get("spec") or {}
        generation = meta.get("generation")
        begun = self.clock()  # the wave's instant: CRs started together are due together again
        if scheduled is not None and timedelta(0) <= begun - scheduled < self._one_tick:
            begun = scheduled  # started on time: its instant (a late start counts from now)
        lock = self.locks.setdefault(uid, asyncio.Lock())
        if not force and lock.locked():
            # a pass of this CR (created, requested, ...) runs, and queues the CR as it ends (no
            # await between its lock and an early return). Waiting here would hold up a tick's
            # handler, and Kopf sleeps a tick from the handler's end
            return False
        with self.health.waiting() as started:
            await lock.acquire()
            started()
        try:
            if uid in self.gone:
                return False
            if unless_served is not None and self.schedule.served_since(
                uid, unless_served, generation=generation
            ):
                logger.info("%s/%s (%s): answered by the last pass", meta.get("namespace"),
                            meta.get("name"), why)  # fmt: skip
                return False
            # bodies are live (Kopf updates them from the watch): read the version once, here
            version = _version(meta)
            written = self.statuses.get(uid)
            if not patching.lagging(written, version):
                self.statuses.pop(uid, None)  # the watch caught up: the body is the truth
            previous = patching.base(body.get("status") or {}, version, written)
            now = self.clock()
            if not force and not self.schedule.due(
                uid, spec_dict=spec_dict, status=previous, generation=generation, now=now + early
            ):
                self.due.set(uid, self.schedule.next_at(uid))  # still queued for its own wave
                return False
            if not_before is None:
                not_before = now.timestamp() if force else self.not_before(uid, spec_dict, now)
            asked = self.schedule.poked(uid)  # a fan-out: the scan that found new tags, or newer
            not_before = not_before if asked is None else max(not_before, asked)
            expected = self._batches().expect(_repository(spec_dict))
            try:
                with scans.recording() as served:
                    result, timings = await self._reconcile(
                        meta, spec_dict, previous, generation, not_before=not_before,
                        expected=expected,
                    )  # fmt: skip
            finally:
                expected.settle()
            interval = (
                result.promotion.interval if result.promotion else schedule.interval_of(spec_dict)
            )
            settled = status_module.settle(
                previous, result.status, interval=interval, now=self.clock()
            )
            saved = await self._write_status(meta, previous, settled)
            interval = gates.next_pass(interval, result.status, self.clock())  # Waiting: sooner
            if saved:
                retry_in = self.schedule.record(
                    uid,
                    generation=generation,
                    reason=result.outcome.reason,
                    interval=interval,
                    now=begun,
                    seen=max(served.values(), default=None),
                )
            else:
                retry_in = self.schedule.retry(
                    uid, generation=generation, interval=interval, now=begun
                )
            self.due.set(uid, self.schedule.next_at(uid))
            logger.debug("%s/%s: pass began %s, next due %s", meta.get("namespace"),
                         meta.get("name"), begun, self.due.due_at(uid))  # fmt: skip
        finally:
            lock.release()
        self.events.report(body, result.outcome)
        self.notifier.after(body, result)
        self._count(result, timings)
        logger.info(
            "%s/%s (%s): %s: %s (next pass %s)",
            meta.get("namespace"),
            meta.get("name"),
            why,
            result.outcome.reason,
            result.outcome.message,
            f"in {retry_in.total_seconds():g}s" if retry_in is not None else "on a spec change",
        )
        return True

    async def _write_status(
        self, meta: Mapping[str, Any], previous: Mapping[str, Any], new: Mapping[str, Any]
    ) -> bool:
        """Patch what differs from `previous` (nothing differs: no request); False if it failed."""
        changed = status_module.changes(previous, new)
        if not changed:
            return True
        if self.status_writer is None:
            raise RuntimeError("the operator has not started")
        uid, namespace, name = (str(meta.get(k, "")) for k in ("uid", "namespace", "name"))
        before = _version(meta)  # the live body's version just before our write
        try:
            produced = await self.status_writer.patch(namespace, name, changed)
        except patching.PatchFailed as exc:
            logger.warning("%s/%s: %s; the pass will be retried", namespace, name, exc)
            self.statuses.pop(uid, None)
            return False
        if produced is None:  # deleted meanwhile: nothing to keep
            self.statuses.pop(uid, None)
            return True
        self.statuses[uid] = patching.Written(
            status=dict(new), started_from=before, produced=produced
        )
        return True

    async def _reconcile(
        self,
        meta: Mapping[str, Any],
        spec_dict: Mapping[str, Any],
        previous: Mapping[str, Any],
        generation: int | None,
        *,
        not_before: float | None,
        expected: batches.Expected | None = None,
    ) -> tuple[reconcile.Result, _Timings]:
        if self.registry is None or self.secrets is None:
            raise RuntimeError("the operator has not started")
        timings = _Timings(started=time.monotonic())
        resource = reconcile.Resource(
            name=str(meta.get("name")),
            namespace=str(meta.get("namespace")),
            spec=spec_dict,
            status=previous,
            generation=generation,
            annotations=dict(meta.get("annotations") or {}),
        )
        result = await reconcile.reconcile(
            resource,
            registry=self.registry,
            git=_TimedBatches(self._batches(), timings, expected),
            secrets=self.secrets,
            now=self.clock,
            dry_run=self.options.dry_run,
            not_before=not_before,
            trigger=webhook_model.decode(
                (meta.get("annotations") or {}).get(webhook_model.TRIGGER_ANNOTATION)
            ),
            history=self.adapters.history,
            upstreams=self.upstreams,
            deadline=self.options.pass_deadline,
        )
        return result, timings

    def _batches(self) -> batches.Batches:
        """The batching writer (built by start(); on first use when embedded without it)."""
        if self.batcher is None:
            self.batcher = batches.Batches(self.adapters.git, window=self.options.batch_window)
        return self.batcher

    def _count(self, result: reconcile.Result, timings: _Timings) -> None:
        end = time.monotonic()
        scan_seconds = None
        if result.outcome.scan_time is not None:
            scan_seconds = (timings.write_started or end) - timings.started
        promotion_seconds = None
        if timings.write_started is not None and timings.write_finished is not None:
            promotion_seconds = timings.write_finished - timings.write_started
        self.metrics.record(
            result.outcome, scan_seconds=scan_seconds, promotion_seconds=promotion_seconds
        )


def _repository(spec_dict: Mapping[str, Any]) -> tuple[str, str]:
    """The repository and branch a pass may write into, as its spec says (batches.expect)."""
    git = spec_dict.get("git")
    if not isinstance(git, Mapping):
        return ("", "")
    return (str(git.get("url", "")), str(git.get("branch", "")))


def _version(meta: Mapping[str, Any]) -> str | None:
    version = meta.get("resourceVersion")
    return str(version) if version is not None else None


def _instant(epoch: float) -> datetime:
    """Epoch seconds as the aware datetime the schedule counts in."""
    return datetime.fromtimestamp(epoch, UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)
