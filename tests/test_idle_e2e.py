"""Idle means idle, measured: 20 ImagePromotions sharing 2 Secrets, Kopf on the kmock emulator,
the real registry and the real git server.

A first cycle promotes every CR (one status PATCH and one Event each); then the operator's clock
(`operate(now=...)`) moves by the interval and every CR has its timer pass, which finds nothing
new: no status PATCH, no Event, at most one read per Secret. Moving the clock by an hour refreshes
`lastScanTime` alone (status.settle), one PATCH per CR; a new tag then costs one PATCH and one
Event per CR again. Counts come from the emulator's
`history` and `counts`; waiting is "until the metrics show the passes ran", never a sleep.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

from imagepromoter import scans
from imagepromoter.kube import handlers, metrics
from tests.kmock_emulator import Emulator
from tests.operator_harness import (
    EVENTS,
    NS,
    VALUES,
    credentials,
    eventually,
    start_operator,
    stop_operator,
)

pytestmark = pytest.mark.servers  # the kmock emulator, the real registry and git server

N = 20
WAIT = 180.0  # twenty pushes into one repository on a loaded 2-core machine
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class Clock:
    """The operator's clock: it moves only when the test says so (thread-safe enough: a float)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def served(api: Emulator, since: int) -> list[Any]:
    """The requests the emulator finished serving after the first `since`."""
    return list(api.history)[since:]


def method(request: Any) -> str:
    return str(getattr(request.method, "value", request.method)).upper()


def tally(requests: list[Any]) -> collections.Counter[tuple[str, str, str]]:
    """(method, plural, subresource) -> n, as `Emulator.counts` keeps them."""
    return collections.Counter(
        (method(r), r.resource.plural if r.resource else "", r.subresource or "") for r in requests
    )


STATUS_PATCH = ("PATCH", "imagepromotions", "status")
EVENT_POST = ("POST", "events", "")
SECRET_GET = ("GET", "secrets", "")


async def test_twenty_crs_an_idle_cycle_writes_nothing(
    api: Emulator,
    git_http_server: Any,
    git_repo: Any,
    registry_htpasswd: Any,
    repo_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from imagepromoter.git import writer
    from imagepromoter.registry import client

    await asyncio.to_thread(
        registry_htpasswd.push_image, repo_name, tags=["0.9.0-dev", "1.0.0-dev", "1.1.0-dev"]
    )
    files = {f"environments/app-{i}/values.yaml": VALUES.format(tag="0.9.0-dev") for i in range(N)}
    url, _ = git_repo(files)
    registry_metrics = metrics.Metrics(prometheus_client.CollectorRegistry())

    def registry() -> scans.SharedScans:
        return scans.SharedScans(
            client.RegistryClient(
                requests_per_second=10_000.0, on_request=registry_metrics.on_request
            ),
            max_age=0.5,
        )

    adapters = handlers.Adapters(
        registry_factory=registry, git=writer.GitWriter(tmp_path / "work", retries=3)
    )
    clock = Clock()
    running = await start_operator(api, adapters, metrics_=registry_metrics, now=clock)
    cluster = running.cluster
    try:
        await credentials(cluster, git_http_server, registry_htpasswd, pull="pull")
        start_at = len(api.history)
        for i in range(N):
            await cluster.apply(
                {
                    "apiVersion": "imagepromoter.dev/v1alpha1",
                    "kind": "ImagePromotion",
                    "metadata": {"name": f"app-{i}", "namespace": NS},
                    "spec": {
                        "image": f"{registry_htpasswd.host}/{repo_name}",
                        "insecure": True,
                        "imagePullSecret": "pull",
                        "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
                        "interval": "1m",
                        "git": {"url": url, "branch": "main", "secretRef": "gitops-write",
                                "insecure": True},
                        "targets": [{"path": f"environments/app-{i}/values.yaml",
                                     "key": "image.tag"}],
                    },
                }
            )  # fmt: skip
        names = [f"app-{i}" for i in range(N)]
        await eventually(
            lambda: all(cluster.status(n).get("promotedTag") == "1.1.0-dev" for n in names),
            "every CR promoted",
            WAIT,
        )
        await eventually(lambda: len(api.list_objects(EVENTS, NS)) >= N, "the events", WAIT)
        scans_done = running.metrics.scans._value.get()
        assert scans_done >= N
        first = served(api, start_at)
        counts = tally(first)
        per_cr = collections.Counter(
            r.name for r in first if (method(r), r.subresource) == ("PATCH", "status")
        )
        assert per_cr == dict.fromkeys(names, 1), "one status PATCH per promoted CR"
        assert counts[EVENT_POST] == N, "one Event per promoted CR"
        assert {cluster.ready(n)["reason"] for n in names} == {"Promoted"}
        before_idle = {n: cluster.status(n) for n in names}

        # the idle cycle: one interval later every CR is due, and nothing has changed
        idle_at = len(api.history)
        clock.now = T0 + timedelta(minutes=1, seconds=1)
        await eventually(
            lambda: running.metrics.scans._value.get() >= scans_done + N, "the idle cycle", WAIT
        )
        idle = served(api, idle_at)
        idle_counts = tally(idle)
        assert idle_counts[STATUS_PATCH] == 0, [r.data for r in idle if method(r) == "PATCH"]
        assert idle_counts[EVENT_POST] == 0
        assert idle_counts[SECRET_GET] <= 2, "each Secret read at most once in the cycle"
        housekeeping = [r for r in idle if method(r) == "GET" and r.name is None]  # Kopf's watches
        others = tally([r for r in idle if r not in housekeeping])
        others.pop(SECRET_GET, None)
        assert others == {}, f"an idle pass makes no other request: {others}"
        assert {n: cluster.status(n) for n in names} == before_idle

        # an hour later: lastScanTime alone is refreshed, once per CR
        scans_done = running.metrics.scans._value.get()
        refresh_at = len(api.history)
        clock.now = T0 + timedelta(hours=1, seconds=2)
        await eventually(
            lambda: running.metrics.scans._value.get() >= scans_done + N, "the refresh", WAIT
        )
        refresh = served(api, refresh_at)
        patches = [r.data["status"] for r in refresh if method(r) == "PATCH"]
        assert patches == [{"lastScanTime": "2026-12-01T11:00:02Z"}] * N
        # a changed cycle: a new tag, and each CR is promoted with one PATCH and one Event
        changed_at = len(api.history)
        await asyncio.to_thread(registry_htpasswd.push_image, repo_name, tags=["1.2.0-dev"])
        for minute in range(2, 12):  # until every pass has seen the tag past the scan cache
            scans_done = running.metrics.scans._value.get()
            clock.now = T0 + timedelta(hours=1, minutes=minute, seconds=3)
            await eventually(
                lambda: running.metrics.scans._value.get() >= scans_done + N, "a cycle", WAIT
            )
            if all(cluster.status(n).get("promotedTag") == "1.2.0-dev" for n in names):
                break
        await eventually(lambda: len(api.list_objects(EVENTS, NS)) >= 2 * N, "the events", WAIT)
        changed = served(api, changed_at)
        per_cr = collections.Counter(
            r.name for r in changed if (method(r), r.subresource) == ("PATCH", "status")
        )
        assert per_cr == dict.fromkeys(names, 1), "one status PATCH per promoted CR"
        assert tally(changed)[EVENT_POST] == N, "one Event per promoted CR"
        with capsys.disabled():
            print(
                f"\n[idle e2e] first cycle: {counts[STATUS_PATCH]} status PATCHes, "
                f"{counts[EVENT_POST]} event POSTs, {counts[SECRET_GET]} Secret GETs; "
                f"idle cycle: {idle_counts[STATUS_PATCH]} status PATCHes, "
                f"{idle_counts[EVENT_POST]} event POSTs, {idle_counts[SECRET_GET]} Secret GETs, "
                f"{len(idle)} requests in all; hourly refresh: {len(patches)} PATCHes; "
                f"changed cycle: {sum(per_cr.values())} status PATCHes, "
                f"{tally(changed)[EVENT_POST]} event POSTs"
            )
    finally:
        await stop_operator(running)
    assert api.counts[EVENT_POST] == 2 * N, "no Event was queued after the two promotions"
