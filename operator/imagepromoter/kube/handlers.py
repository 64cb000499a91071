"""The Kopf shell: thin handlers that all call `reconcile.reconcile` and patch what it returns.

    event: a generation not observed -> a pass at once: a new CR (no status yet), a spec change
                                      (also how suspend/resume act), or either made while the
                                      operator was stopped (its first listing at a start)
    event with a new annotation    -> a pass at once (the manual trigger, see docs/operator.md:
      imagepromoter.dev/requested-at    kubectl annotate ipr NAME --overwrite
                                          imagepromoter.dev/requested-at="$(date +%s)"; the
                                      webhook trigger, upstream-changed and release-hold)
    timer (fixed `tick`, 10s)      -> every CR due now starts together, whichever CR ticked (the
                                      wave: pipeline/waves.py; due instants start from when the
                                      pass began, on the tick's grid); a CR not queued yet (after
                                      a restart) passes when `schedule.Schedule.due` says so
    event DELETED                  -> forget the CR (and stop its timer: see below)
    event ADDED/MODIFIED           -> the image index (pipeline/index.py): image -> CRs, intervals

Creation, spec changes and resuming are read from the watch, as the annotations are
(pipeline/manual.py), not from Kopf's create, update and resume handlers: those find a change by
diffing the object against a last-handled copy Kopf writes back into an annotation after each of
them, an object PATCH per CR created or changed (bench/scale.py's initial cycle at 1,000 CRs:
1,000 of them beside the 1,000 status patches, each on a connection of its own).

The pass runner, the waves and the state they share are kube/passes.py (`Operator`); the
constants and options, kube/options.py.

The liveness probe (`liveness`, default http://0.0.0.0:8081/healthz) is ours, not Kopf's:
kube/health.py serves it from a thread, unhealthy when the loop is blocked for
`Options.blocked_after` or a due pass could not start for `Options.start_after`.

No finalizers. Deleting a CR needs no cleanup in git, and a finalizer left behind by a stopped
operator blocks the deletion of the CR and of its namespace. Kopf puts a finalizer on every object
that has a timer (to stop the timer on deletion), so the timer handler is registered with
`requires_finalizer=False` (`_without_finalizers`, the one place this module reaches into Kopf's
registry), and the timer is stopped instead by its `when` filter: the DELETED watch event marks the
uid gone, and Kopf stops timers whose filters no longer match.

Kopf's own bookkeeping lives in annotations under `kopf.imagepromoter.dev/`, never in `status`,
so the status is exactly the documented one; with no create, update or resume handler for
ImagePromotions, Kopf keeps none for them (the last-handled copy a CR carries from an older
version is left as it is, unread).

Adapters: `kube/` may not import `registry/` or `git/` (import-linter), so `cli.py` hands them in
through `configure(...)` and then calls `run_operator(...)`; tests call `operate(...)` directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

import kopf

from imagepromoter import reconcile, shards
from imagepromoter.kube import health, metrics, sharding
from imagepromoter.kube import stages as kube_stages
from imagepromoter.kube import webhooks as kube_webhooks
from imagepromoter.kube.options import (
    GROUP,
    KOPF_PREFIX,
    PLURAL,
    REQUESTED_AT,
    VERSION,
    Adapters,
    Options,
)
from imagepromoter.kube.passes import Operator

__all__ = [
    "GROUP",
    "KOPF_PREFIX",
    "PLURAL",
    "REQUESTED_AT",
    "VERSION",
    "Adapters",
    "Operator",
    "Options",
    "build_registry",
    "configure",
    "operate",
    "run_operator",
]

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

    def alive(meta: kopf.Meta, **_: Any) -> bool:
        return meta.get("uid") not in state.gone

    @kopf.timer(*res, interval=state.options.tick, when=alive, registry=registry)
    async def tick(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        # never a Kopf retry (run_pass raises none): the schedule decides, retries included.
        # Any CR's tick starts the whole wave due now, as tasks, and returns: Kopf sleeps a
        # timer's interval from the handler's end, so awaiting the pass here would space this
        # CR's ticks by the tick plus the pass, and a wave's CR whose pass outlasted a tick would
        # look stopped to the next wave (Operator._start_pass) and pass late, alone.
        if state.on_tick(body) is None:
            await state.run_pass(body, patch, force=False, why="interval")  # not queued yet

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
    kube_stages.register(registry, state.upstreams)  # spec.from: followers told of a change
    _without_finalizers(registry)
    sharding.register(registry, selector or shards.Selector())  # it filters them all ...
    if selector:  # ... so this one, added after it, sees every CR: those that left the shard

        @kopf.on.event(*res, registry=registry)
        async def left_shard(type: str | None, meta: kopf.Meta, **_: Any) -> None:
            if type != "DELETED" and not state.selector.matches(meta.get("labels")):
                state.release(str(meta.get("uid", "")))

    return registry


def _without_finalizers(registry: kopf.OperatorRegistry) -> None:
    """Register timers without Kopf's finalizer (see the module docstring for why)."""
    spawning = registry._spawning
    spawning._handlers[:] = [
        dataclasses.replace(handler, requires_finalizer=False) for handler in spawning._handlers
    ]
