"""The pass runner of kube/handlers.py without Kopf's reactor: retries, health, deadline wiring.

`Operator.run_pass` is what every handler calls; here it runs with in-memory adapters (the
simplest honest implementations of the Protocols, as in test_reconcile), a status writer that
records the merge patches it is given (kube/patching.py's own HTTP is tested against the emulator
in test_kube_patching), and Kopf's own Patch, which must stay empty.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import prometheus_client
import pytest

from imagepromoter import errors
from imagepromoter.kube import events, handlers, health, metrics
from tests.test_reconcile import VALUES, MemoryGit, MemoryRegistry, MemorySecrets, make_spec

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class MemoryStatus:
    """`patching.StatusWriter` in memory: the merge patches it was given, and a version count."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    async def patch(self, namespace: str, name: str, patch: Any) -> str | None:
        self.patches.append(dict(patch))
        return str(100 + len(self.patches))


def operator(registry: Any, git: Any, **options: Any) -> handlers.Operator:
    state = handlers.Operator(
        handlers.Adapters(registry_factory=lambda: registry, git=git),
        options=handlers.Options(**options),
        metrics_=metrics.Metrics(prometheus_client.CollectorRegistry()),
        now=lambda: NOW,
    )
    state.registry = registry
    state.secrets = MemorySecrets()
    state.events = events.Events(post=lambda *args: None, now=lambda: NOW)
    state.status_writer = MemoryStatus()
    return state


def written(state: handlers.Operator) -> list[dict[str, Any]]:
    assert isinstance(state.status_writer, MemoryStatus)
    return state.status_writer.patches


def body(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": "u1", "name": "app", "namespace": "gitops", "generation": 1},
        "spec": make_spec(**spec),
    }


@pytest.mark.parametrize(
    ("registry", "reason"),
    [
        (MemoryRegistry([], fail=errors.RegistryError("down")), "RegistryError"),
        (MemoryRegistry(["1.0.0-dev"]), "InvalidSpec"),
    ],
    ids=["temporary", "invalid-spec"],
)
async def test_a_failed_pass_raises_no_kopf_retry(registry: MemoryRegistry, reason: str) -> None:
    """Kopf must not re-run the handler: the timer alone retries (one pass per failure)."""
    state = operator(registry, MemoryGit({"env/dev/values.yaml": VALUES.encode()}))
    spec = {"tagRegex": "^(bad$"} if reason == "InvalidSpec" else {}
    patch = kopf.Patch()
    await state.run_pass(body(**spec), patch, force=True, why="created")  # must not raise
    assert written(state)[-1]["conditions"][0]["reason"] == reason
    assert not patch, "Kopf's patch carries no status"
    entry = state.schedule._entries["u1"]
    if reason == "InvalidSpec":
        assert entry.next_at is None
    else:
        assert entry.next_at == NOW + timedelta(seconds=10), "the timer's own backoff"


@pytest.mark.parametrize(
    ("registry", "git", "reason", "writes"),
    [
        (MemoryRegistry(["9.0.0-dev"]), MemoryGit, "Promoted", 1),
        (MemoryRegistry([], fail=errors.RegistryError("down")), MemoryGit, "RegistryError", 0),
    ],
    ids=["promoted", "no-write"],
)
async def test_a_promotion_records_its_write_duration(
    registry: MemoryRegistry, git: type[MemoryGit], reason: str, writes: int
) -> None:
    state = operator(registry, git({"env/dev/values.yaml": VALUES.encode()}))
    await state.run_pass(body(), kopf.Patch(), force=True, why="created")
    assert written(state)[-1]["conditions"][0]["reason"] == reason
    observed = state.metrics.promotion_seconds.collect()[0].samples
    assert [s.value for s in observed if s.name.endswith("_count")] == [writes]


async def test_the_pass_deadline_option_reaches_reconcile() -> None:
    class Hanging(MemoryRegistry):
        async def list_tags(self, access: Any) -> list[str]:
            await asyncio.Event().wait()
            return []

    state = operator(Hanging([]), MemoryGit({}), pass_deadline=0.2, start_after=1.0)
    patch = kopf.Patch()
    await state.run_pass(body(), patch, force=True, why="created")
    condition = written(state)[-1]["conditions"][0]
    assert condition["reason"] == "RegistryError" and "deadline (0.2s)" in condition["message"]


async def test_a_pass_stuck_behind_its_cr_lock_makes_health_fail() -> None:
    clock = [0.0]
    state = operator(MemoryRegistry(["1.0.0-dev"]), MemoryGit({}))
    state.health = health.Health(blocked_after=1e9, start_after=300.0, clock=lambda: clock[0])
    lock = state.locks.setdefault("u1", asyncio.Lock())
    await lock.acquire()  # an earlier pass on this CR that never ends
    task = asyncio.create_task(state.run_pass(body(), kopf.Patch(), force=True, why="created"))
    for _ in range(10):
        await asyncio.sleep(0)
    clock[0] += 301.0
    verdict = state.health.check()
    assert not verdict.healthy and "could not start" in verdict.message
    lock.release()
    await asyncio.wait_for(task, 10)
    assert state.health.check().healthy


def test_start_after_must_exceed_the_deadline() -> None:
    with pytest.raises(ValueError, match="must exceed the pass deadline"):
        handlers.Options(pass_deadline=300.0, start_after=60.0)


def test_no_limit_on_whole_passes() -> None:
    assert not hasattr(handlers.Options(), "concurrency")


async def test_the_annotations_that_ask_for_a_pass_are_not_in_kopfs_essence() -> None:
    """Kopf compares and writes back its last-handled copy for what is in the essence: each of
    these annotations in it would cost a second write per request (pipeline/manual.py)."""
    state = operator(MemoryRegistry(["1.0.0"]), MemoryGit(VALUES))
    settings = kopf.OperatorSettings()
    await state.start(settings)
    asking = [
        "imagepromoter.dev/requested-at",
        "imagepromoter.dev/trigger",
        "imagepromoter.dev/upstream-changed",
        "imagepromoter.dev/release-hold",
    ]
    annotations = {key: "1" for key in [*asking, "example.com/other"]}
    cr = kopf.Body({**body(), "metadata": {**body()["metadata"], "annotations": annotations}})
    essence = settings.persistence.diffbase_storage.build(body=cr)
    assert dict(essence.get("metadata", {}).get("annotations", {})) == {"example.com/other": "1"}
    await state.stop()
