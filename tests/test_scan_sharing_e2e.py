"""Images are scanned, not CRs: registry requests per cycle, counted on the wire, at 30 CRs.

30 ImagePromotions over 3 images (10 each, one git repository per image, one values file per
CR) run in the operator (Kopf against the kmock emulator) with the real RegistryClient, the real
docker-registry behind a counting proxy (every request it forwards is recorded) and the real git
server. The operator's and the scan cache's clock is one clock the test moves (`Ticking`): "an
hour later" is a step, and each reading moves it 1 ms, so the passes of one cycle run at
different instants whatever the machine's speed, a pass that asked for "now" could not take an
earlier pass's scan, and what is measured is each cause's not_before (pipeline/freshness.py)
with the sharing rule (scans.py), not how fast 30 passes happen to run.

Cycles, each counted from a cleared proxy: all 30 created at once; all 30 annotated with one
requested-at; a timer cycle (every CR due); a new tag on one image found by its one CR with a
shorter interval, which every other CR of that image then promotes at its next tick (fan-out).
Each cycle must list each image it touches exactly once and read at most one digest per image
(all CRs of an image choose the same tag). Waiting is `eventually`, never a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imagepromoter import scans
from imagepromoter.kube import handlers
from tests.kmock_emulator import Emulator
from tests.operator_harness import (
    VALUES,
    Cluster,
    Running,
    credentials,
    eventually,
    handled,
    start_operator,
    stop_operator,
)
from tests.servers import git_http, registry

pytestmark = pytest.mark.servers

IMAGES, PER_IMAGE = 3, 10
BOUND = 120.0  # seconds for a whole cycle of 30 passes (30 pushes) on a loaded 2-core machine


class Ticking:
    """A clock that moves 1 ms a reading, and as far as the test moves it (the operator's and the
    scans' clock): passes of one cycle see different instants, in the order they read them."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        self.at += timedelta(milliseconds=1)
        return self.at

    def epoch(self) -> float:
        return self().timestamp()

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class Fleet:
    running: Running
    cluster: Cluster
    clock: Ticking
    proxy: registry.CountingProxy
    upstream: Any  # tests.servers.registry.RegistryServer
    images: list[str]  # repository names on the registry
    urls: list[str]  # one git repository per image: its URL
    repos: list[Path]  # and its bare repository on the server

    def name(self, image: int, member: int) -> str:
        return f"app{image}-env{member}"

    def names(self, image: int | None = None) -> list[str]:
        images = range(IMAGES) if image is None else [image]
        return [self.name(i, j) for i in images for j in range(PER_IMAGE)]

    def listings(self) -> list[str]:
        """The repositories whose tags were listed since the last clear, one entry a request."""
        return sorted(r.path.split("/v2/", 1)[1].rsplit("/tags/", 1)[0]
                      for r in self.proxy.seen(r"/tags/list"))  # fmt: skip

    def digests(self) -> list[str]:
        """The manifests read since the last clear, one entry a request."""
        return sorted(r.path.split("/v2/", 1)[1] for r in self.proxy.seen(r"/manifests/"))

    def tag(self, image: int, member: int) -> str:
        text = git_http.read_file(self.repos[image], "main", f"env{member}/values.yaml").decode()
        return text.split("tag: ", 1)[1].split()[0]

    def scans(self) -> float:
        """Passes that read the registry (from the cache or not), as the operator counts them."""
        value: float = self.running.metrics.scans._value.get()
        return value


@pytest.fixture
async def fleet(
    api: Emulator,
    git_http_server: Any,
    git_repo: Any,
    registry_open: registry.RegistryServer,
    counted: registry.CountingProxy,
    repo_name: str,
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    from imagepromoter.git import writer
    from imagepromoter.registry import client

    images = [f"{repo_name}{i}" for i in range(IMAGES)]
    for name in images:
        await asyncio.to_thread(registry_open.push_image, name, tags=["1.0.0", "0.9.0"])
    files = {f"env{j}/values.yaml": VALUES.format(tag="0.1.0") for j in range(PER_IMAGE)}
    urls, repos = zip(*(git_repo(files) for _ in range(IMAGES)), strict=True)
    clock = Ticking()

    def shared() -> scans.SharedScans:  # composed as `imagepromoter run` composes it
        return scans.SharedScans(
            client.RegistryClient(requests_per_second=10_000.0), clock=clock.epoch
        )

    git = writer.GitWriter(tmp_path / "work", retries=3, sleep=lambda seconds: None)
    adapters = handlers.Adapters(registry_factory=shared, git=git)
    running = await start_operator(api, adapters, now=clock)
    cluster = running.cluster
    await credentials(cluster, git_http_server)
    yield Fleet(running, cluster, clock, counted, registry_open, images, list(urls), list(repos))
    await stop_operator(running)


def cr(fleet: Fleet, image: int, member: int) -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": fleet.name(image, member), "namespace": "gitops"},
        "spec": {
            "image": f"{fleet.proxy.host}/{fleet.images[image]}",
            "insecure": True,  # the local registry speaks plain HTTP
            "tagRegex": r"^\d+\.\d+\.\d+$",
            # one CR of image 0 looks more often: it finds new tags, the others follow it
            "interval": "30m" if (image, member) == (0, 0) else "1h",
            "git": {
                "url": fleet.urls[image],
                "insecure": True,
                "branch": "main",
                "secretRef": "gitops-write",
            },
            "targets": [{"path": f"env{member}/values.yaml", "key": "image.tag"}],
        },
    }


async def test_each_cycle_lists_each_image_once_however_many_crs_name_it(fleet: Fleet) -> None:
    cluster = fleet.cluster

    # created at once: exactly one listing per image, though the passes run one after another:
    # each takes a scan started at or after its creationTimestamp, and these are all earlier
    fleet.clock.at = max(fleet.clock.at, datetime.now(UTC)) + timedelta(seconds=2)
    fleet.proxy.clear()
    await asyncio.gather(
        *(cluster.apply(cr(fleet, i, j)) for i in range(IMAGES) for j in range(PER_IMAGE))
    )
    for name in fleet.names():
        await eventually(lambda n=name: cluster.ready(n).get("reason") == "Promoted", name, BOUND)
    assert {fleet.tag(i, j) for i in range(IMAGES) for j in range(PER_IMAGE)} == {"1.0.0"}
    created = (fleet.listings(), fleet.digests())
    assert created[0] == sorted(fleet.images), created
    assert len(created[1]) <= IMAGES and {d.rsplit("/manifests/", 1)[1] for d in created[1]} == {
        "1.0.0"
    }, created

    # all annotated with one requested-at (later than every kept scan): one listing per image
    fleet.clock.advance(seconds=10)
    requested = f"{fleet.clock.epoch():.3f}"
    fleet.proxy.clear()
    before = fleet.scans()
    annotation = {"metadata": {"annotations": {handlers.REQUESTED_AT: requested}}}
    await asyncio.gather(*(cluster.patch(name, annotation) for name in fleet.names()))
    for name in fleet.names():
        await eventually(
            lambda n=name: handled(fleet.running, n, requested), f"{name} triggered", BOUND
        )
    assert fleet.scans() - before == IMAGES * PER_IMAGE
    triggered = (fleet.listings(), fleet.digests())
    assert triggered[0] == sorted(fleet.images), triggered
    assert len(triggered[1]) <= IMAGES, triggered

    # a timer cycle: an hour later every CR is due, and each image is listed once
    fleet.clock.advance(hours=1, seconds=1)
    fleet.proxy.clear()
    before = fleet.scans()
    await eventually(lambda: fleet.scans() - before >= IMAGES * PER_IMAGE, "a timer cycle", BOUND)
    timer = (fleet.listings(), fleet.digests())
    assert timer[0] == sorted(fleet.images), timer
    assert len(timer[1]) <= IMAGES, timer

    # a new tag on image 0: its 30m CR finds it, every other CR of image 0 acts on that scan
    await asyncio.to_thread(fleet.upstream.push_image, fleet.images[0], tags=["1.1.0"])
    fleet.clock.advance(minutes=30, seconds=1)  # only app0-env0 is due (the others: 1h)
    fleet.proxy.clear()
    for name in fleet.names(0):
        await eventually(
            lambda n=name: cluster.status(n).get("promotedTag") == "1.1.0", f"{name} 1.1.0", BOUND
        )
    assert [fleet.tag(0, j) for j in range(PER_IMAGE)] == ["1.1.0"] * PER_IMAGE
    assert {fleet.tag(i, j) for i in (1, 2) for j in range(PER_IMAGE)} == {"1.0.0"}
    fanned = (fleet.listings(), fleet.digests())
    assert fanned == ([fleet.images[0]], [f"{fleet.images[0]}/manifests/1.1.0"]), fanned
    print(  # the figures the report quotes (pytest -s)
        "registry requests per cycle (listings, digests),",
        f"{IMAGES * PER_IMAGE} CRs over {IMAGES} images:",
        f"create {len(created[0])},{len(created[1])};",
        f"requested-at {len(triggered[0])},{len(triggered[1])};",
        f"timer {len(timer[0])},{len(timer[1])};",
        f"new tag fan-out {len(fanned[0])},{len(fanned[1])}",
    )
