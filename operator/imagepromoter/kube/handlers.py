"""The Kopf shell: thin handlers that all call `reconcile.reconcile` and patch what it returns.

    create                         -> a pass at once
    update of spec                 -> a pass at once (this is also how suspend/resume act)
    event with a new annotation    -> a pass at once (the manual trigger, see docs/operator.md:
      imagepromoter.dev/requested-at    kubectl annotate ipr NAME --overwrite
                                          imagepromoter.dev/requested-at="$(date +%s)"); read
                                      from the watch, not from Kopf's diff (pipeline/manual.py)
    resume (operator start)        -> a pass only if the spec changed while we were away;
                                      otherwise the timer decides from the persisted status
    timer (fixed `tick`, 10s)      -> every CR due now starts together, whichever CR ticked (the
                                      wave: pipeline/waves.py; due instants start from when the
                                      pass began, on the tick's grid); a CR not queued yet (after
                                      a restart) passes when `schedule.Schedule.due` says so
    event DELETED                  -> forget the CR (and stop its timer: see below)
    event ADDED/MODIFIED           -> the image index (pipeline/index.py): image -> CRs, intervals

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

The liveness probe (`liveness`, default http://0.0.0.0:8081/healthz) is ours, not Kopf's:
kube/health.py serves it from a thread, unhealthy when the loop is blocked for
`Options.blocked_after` or a due pass could not start for `Options.start_after`.

No finalizers. Deleting a CR needs no cleanup in git, and a finalizer left behind by a stopped
operator blocks the deletion of the CR and of its namespace. Kopf puts a finalizer on every object
that has a timer (to stop the timer on deletion), so the timer handler is registered with
`requires_finalizer=False` (`_without_finalizers`, the one place this module reaches into Kopf's
registry), and the timer is stopped instead by its `when` filter: the DELETED watch event marks the
uid gone, and Kopf stops timers whose filters no longer match.

Kopf's own bookkeeping (the last-handled spec, handler progress) lives in annotations under
`kopf.imagepromoter.dev/`, never in `status`, so the status is exactly the documented one.

Adapters: `kube/` may not import `registry/` or `git/` (import-linter), so `cli.py` hands them in
through `configure(...)` and then calls `run_operator(...)`; tests call `operate(...)` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from imagepromoter import changes, credentials, gates, reconcile, scans, shards, spec
from imagepromoter import status as status_module
from imagepromoter.kube import (
    events,
    health,
    metrics,
    notifying,
    patching,
    schedule,
    secrets,
    sharding,
)
from imagepromoter.kube import stages as kube_stages
from imagepromoter.kube import webhooks as kube_webhooks
from imagepromoter.pipeline import batches, freshness, manual, waves
from imagepromoter.pipeline import index as image_index
from imagepromoter.webhooks import model as webhook_model

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "imagepromoter.dev", "v1alpha1", "imagepromotions"
REQUESTED_AT = "imagepromoter.dev/requested-at"
KOPF_PREFIX = "kopf.imagepromoter.dev"


@dataclass(frozen=True)
class Adapters:
    """The real adapters, built by cli.py (kube/ may not import them)."""

    registry_factory: Callable[[], reconcile.RegistryReader]  # called inside the operator's loop
    git: reconcile.GitWriter
    history: reconcile.GitHistory | None = None  # for Held messages (git/history.py)


@dataclass(frozen=True)
class Options:
    """Operator behaviour that is not in any CR."""

    tick: float = 10.0  # seconds between timer checks; the per-CR interval is checked on each
    base_backoff: timedelta = timedelta(seconds=10)  # first retry after a temporary failure
    event_window: timedelta = events.DEFAULT_WINDOW  # an identical event is not re-posted within
    dry_run: bool = False
    webhook_port: int | None = None  # serve ImageWebhooks here (None: no receiver)
    webhook_host: str = "0.0.0.0"  # noqa: S104 - a pod's port
    webhook_ssl: ssl.SSLContext | None = None  # TLS from a mounted Secret; None: plain HTTP
    webhook_namespaces: tuple[str, ...] = ()  # ImageWebhooks read only here (default all)
    pass_deadline: float | None = reconcile.DEFAULT_DEADLINE  # seconds per pass (network phases)
    blocked_after: float = 10.0  # /healthz: the event loop silent this long is unhealthy
    start_after: float = 300.0  # /healthz: a due pass not started after this long is unhealthy
    heartbeat: float = 1.0  # seconds between the event loop's heartbeats
    secret_max_age: float = secrets.DEFAULT_MAX_AGE  # a Secret read serves passes this long
    # seconds writes into one repository and branch are gathered into one push; `imagepromoter
    # run` defaults to 2s (--batch-window), here 0: only what is waiting (embedding, tests)
    batch_window: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_window < 0:
            raise ValueError(f"the batch window must not be negative (got {self.batch_window:g}s)")
        if self.pass_deadline is not None and self.start_after <= self.pass_deadline:
            raise ValueError(
                f"start_after ({self.start_after:g}s) must exceed the pass deadline "
                f"({self.pass_deadline:g}s): a pass may wait that long behind an earlier one"
            )


_configured: Adapters | None = None


def configure(
    *,
    registry_factory: Callable[[], reconcile.RegistryReader],
    git: reconcile.GitWriter,
    history: reconcile.GitHistory | None = None,
) -> None:
    """Hand in the real adapters before `run_operator` (called by cli.py)."""
    global _configured
    _configured = Adapters(registry_factory=registry_factory, git=git, history=history)


def run_operator(
    *,
    namespaces: Collection[str] = (),
    metrics_port: int | None = 8080,
    liveness: str | None = "http://0.0.0.0:8081/healthz",
    peering: str | None = None,
    standalone: bool = False,
    priority: int | None = None,
    options: Options | None = None,
    selector: shards.Selector | None = None,
) -> int:
    """Run the operator until it is stopped (SIGINT/SIGTERM); the process exit code."""
    if _configured is None:
        raise RuntimeError("call kube.handlers.configure(...) before run_operator()")
    if metrics_port:
        metrics.METRICS.serve(metrics_port)
    asyncio.run(
        operate(
            _configured,
            options=options or Options(),
            namespaces=namespaces,
            liveness=liveness,
            peering=peering,
            standalone=standalone,
            priority=priority,
            selector=selector,
        )
    )
    return 0


async def operate(
    adapters: Adapters,
    *,
    options: Options = Options(),
    namespaces: Collection[str] = (),
    connection: kopf.ConnectionInfo | None = None,
    metrics_: metrics.Metrics | None = None,
    now: Callable[[], datetime] | None = None,
    liveness: str | None = None,
    peering: str | None = None,
    standalone: bool = True,
    priority: int | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    selector: shards.Selector | None = None,
    observe: Callable[[Operator], None] | None = None,
) -> None:
    """Run Kopf with this project's handlers in the current event loop until `stop_flag`.

    `liveness` is where /healthz is served (kube/health.py), from a thread of its own.
    `selector`: serve only the ImagePromotions with these labels (a shard; kube/sharding.py).
    `observe` is handed the run's state before Kopf starts (tests read what it answered).
    """
    state = Operator(adapters, options=options, metrics_=metrics_, now=now)
    if observe is not None:
        observe(state)
    registry = build_registry(state, connection=connection, selector=selector)
    if priority is None and not standalone:
        # Kopf pauses every operator when peers share a priority; a random one per replica
        # makes exactly one of them (the highest) active.
        priority = random.randint(1, 2**31 - 1)  # noqa: S311 - not a secret
    probe = health.Server(state.health, liveness) if liveness else None
    beating = asyncio.create_task(state.health.heartbeat(options.heartbeat))
    if probe is not None:
        probe.start()
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=standalone,
            peering_name=peering,
            priority=priority,
            liveness_endpoint=None,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        beating.cancel()
        if probe is not None:
            probe.stop()


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
    requests: manual.Requests = field(default_factory=manual.Requests)  # requested-at values
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

    async def start(self, settings: kopf.OperatorSettings) -> None:
        """Configure Kopf and build the adapters that need the running loop."""
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=KOPF_PREFIX,
            key="last-handled-configuration",
            # the manual trigger is read from the watch (pipeline/manual.py says why)
            ignored_fields=[("metadata", "annotations", REQUESTED_AT)],
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
        self.schedule.forget(uid)
        self.due.discard(uid)
        self.bodies.pop(uid, None)
        self.images.remove(uid)
        self.requests.forget(uid)
        self.events.forget(uid)
        self.statuses.pop(uid, None)
        self.locks.pop(uid, None)

    def watched(self, body: Mapping[str, Any]) -> None:
        """An ADDED or MODIFIED event (or a listing): the image index, and a new manual request."""
        meta: Mapping[str, Any] = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        self.images.update(uid, body.get("spec") or {})
        value = self.requests.seen(
            uid,
            (meta.get("annotations") or {}).get(REQUESTED_AT),
            last_scan=(body.get("status") or {}).get("lastScanTime"),
            now=self.clock(),
        )
        if value is not None:
            task = asyncio.create_task(self._requested_pass(body, value))
            self.requested.add(task)
            task.add_done_callback(self._requested_ended)

    async def _requested_pass(self, body: Mapping[str, Any], value: str) -> None:
        """A manual trigger's pass, unless the CR's last pass already answered it."""
        since = freshness.requested(value, self.clock())
        ran = await self.run_pass(
            body, None, force=True, why=f"requested at {value}", not_before=since,
            unless_served=since,
        )  # fmt: skip
        self.requests.answered(str((body.get("metadata") or {}).get("uid", "")), value)
        self.metrics.manual_triggers.labels(result="passed" if ran else "answered").inc()

    def _requested_ended(self, task: asyncio.Task[None]) -> None:
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
        early = timedelta(seconds=self.options.tick)
        soon = self.due.pop_soon(
            now + early, lambda uid: not shared.isdisjoint(self._wave_keys(uid))
        )
        wave = max(at for _, at in due)
        for uid, at in due:
            self._start_pass(uid, scheduled=at)
        for uid, at in soon:
            if not self._start_pass(uid, early=early, scheduled=wave):
                self.due.set(uid, at)  # not started here: it stays due when it was

    def _wave_keys(self, uid: str) -> set[tuple[str, object]]:
        """What a CR shares with a wave: its image and its repository and branch."""
        ticked = self.bodies.get(uid)
        if ticked is None:
            return set()
        spec_dict: Mapping[str, Any] = ticked[0].get("spec") or {}
        return {("image", self.images.image_of(uid)), ("repository", _repository(spec_dict))}

    def _start_pass(
        self, uid: str, *, early: timedelta = timedelta(0), scheduled: datetime | None = None
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
            self.run_pass(body, None, force=False, why="interval", early=early, scheduled=scheduled)
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

        True when a pass ran (False: the CR is gone, not due, or its last pass answered).

        `early`: due by `early` from now is due (a wave taking a CR due just after it).
        `scheduled`: the instant the wave that started it was due; the next pass is one interval
        after it (so the period is the interval, not the interval plus the wave's start-up).
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


def build_registry(
    state: Operator,
    *,
    connection: kopf.ConnectionInfo | None = None,
    selector: shards.Selector | None = None,
) -> kopf.OperatorRegistry:
    """A fresh Kopf registry with the handlers bound to `state`."""
    registry = kopf.OperatorRegistry()
    state.selector = selector or shards.Selector()
    res = (GROUP, VERSION, PLURAL)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster service account, else the current kubeconfig: both kubernetes-client-free.
        if connection is not None:
            return connection
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        return info or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        await state.start(settings)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await state.stop()

    @kopf.on.create(*res, registry=registry)
    async def created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        since = freshness.created(body.meta, state.clock())
        await state.run_pass(body, patch, force=True, why="created", not_before=since)

    @kopf.on.update(*res, field="spec", registry=registry)
    async def spec_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        since = freshness.changed(body.meta, state.clock())
        await state.run_pass(body, patch, force=True, why="spec changed", not_before=since)

    @kopf.on.resume(*res, registry=registry)
    async def resumed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        status = body.get("status") or {}
        if status.get("observedGeneration") != body.meta.get("generation"):
            since = freshness.changed(body.meta, state.clock())
            why = "changed while stopped"
            await state.run_pass(body, patch, force=True, why=why, not_before=since)

    def alive(meta: kopf.Meta, **_: Any) -> bool:
        return meta.get("uid") not in state.gone

    @kopf.timer(*res, interval=state.options.tick, when=alive, registry=registry)
    async def tick(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        # never a Kopf retry (run_pass raises none): the schedule decides, retries included.
        # Any CR's tick starts the whole wave due now; this CR's part of it is awaited here.
        started = state.on_tick(body)
        if started is not None:
            await asyncio.shield(started)
        else:
            await state.run_pass(body, patch, force=False, why="interval")

    @kopf.on.event(*res, registry=registry)
    async def watched(type: str | None, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
        # async: run in the loop, beside the waves that read what it updates (a sync handler
        # would run in Kopf's thread pool)
        uid = str(meta.get("uid", ""))
        if type == "DELETED":
            state.forget(uid)
        elif uid not in state.gone:  # ADDED, MODIFIED, or None for the initial listing
            state.watched(body)

    kube_webhooks.register(registry, state)
    kube_stages.register(registry, state, state.upstreams)  # spec.from and release-hold
    _without_finalizers(registry)
    sharding.register(registry, selector or shards.Selector())  # last: it filters them all
    return registry


def _without_finalizers(registry: kopf.OperatorRegistry) -> None:
    """Register timers without Kopf's finalizer (see the module docstring for why)."""
    spawning = registry._spawning
    spawning._handlers[:] = [
        dataclasses.replace(handler, requires_finalizer=False) for handler in spawning._handlers
    ]


def _repository(spec_dict: Mapping[str, Any]) -> tuple[str, str]:
    """The repository and branch a pass may write into, as its spec says (batches.expect)."""
    git = spec_dict.get("git")
    if not isinstance(git, Mapping):
        return ("", "")
    return (str(git.get("url", "")), str(git.get("branch", "")))


def _version(meta: Mapping[str, Any]) -> str | None:
    version = meta.get("resourceVersion")
    return str(version) if version is not None else None


def _utcnow() -> datetime:
    return datetime.now(UTC)
