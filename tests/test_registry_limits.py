"""The per-host token bucket, through the client, against a real docker-registry.

The client waits for its rate limit through its injectable `sleep` and reads its injectable
`clock`; `PacedScanner` moves a fake clock only when asked to sleep, so these tests check the
exact waits asked for (no real sleeping, no timing asserts). Each `digest` call is one HEAD.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from imagepromoter.registry import limits
from tests.fixtures_registry import PacedScanner, access
from tests.servers import registry

pytestmark = pytest.mark.servers


@pytest.mark.parametrize(
    ("rate", "burst", "requests", "concurrent", "waits"),
    [
        (5.0, 5.0, 5, False, []),
        (5.0, 5.0, 8, False, [0.2, 0.2, 0.2]),
        (limits.DEFAULT_RATE, None, 205, True, [0.01] * 5),  # the defaults: 100/s, burst 200
        (5.0, None, 13, False, [0.2] * 3),  # burst default: two seconds of the rate
        (0.25, None, 3, False, [4.0, 4.0]),  # ... but at least one request
    ],
    ids=["within-burst", "3-beyond-burst", "default-rate-concurrent", "burst-2s", "burst-1"],
)
async def test_requests_beyond_the_burst_wait_one_interval_each(
    registry_open: registry.RegistryServer,
    repo_name: str,
    paced_scanner: Callable[..., PacedScanner],
    rate: float,
    burst: float | None,
    requests: int,
    concurrent: bool,
    waits: list[float],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    scan = paced_scanner(requests_per_second=rate, burst=burst)
    target = access(registry_open.host, repo_name)
    if concurrent:
        await asyncio.gather(*(scan.digest(target, "1.0") for _ in range(requests)))
    else:
        for _ in range(requests):
            await scan.digest(target, "1.0")
    assert scan.requests == [(registry_open.host, 200)] * requests
    assert scan.sleeps == pytest.approx(waits)
    size = burst or max(1.0, 2 * rate)  # the default burst (limits.DEFAULT_BURST at 100/s)
    assert sum(scan.sleeps) == pytest.approx(max(0, requests - size) / rate)


@pytest.mark.parametrize(
    ("idle", "waits"),
    [(1.0, []), (0.4, [0.2] * 3), (0.0, [0.2] * 5)],
    ids=["full-refill", "partial-refill", "no-refill"],
)
async def test_the_bucket_refills_with_idle_time(
    registry_open: registry.RegistryServer,
    repo_name: str,
    paced_scanner: Callable[..., PacedScanner],
    idle: float,
    waits: list[float],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    scan = paced_scanner(requests_per_second=5.0, burst=5.0)
    target = access(registry_open.host, repo_name)
    for _ in range(5):
        await scan.digest(target, "1.0")
    assert scan.sleeps == []
    scan.advance(idle)
    for _ in range(5):
        await scan.digest(target, "1.0")
    assert scan.sleeps == pytest.approx(waits)


@pytest.mark.parametrize(
    ("second_host", "waits"),
    [("same", [0.2] * 5), ("other", [])],
    ids=["same-host-shares-one-bucket", "other-host-has-its-own"],
)
async def test_the_bucket_belongs_to_the_host_not_to_the_access(
    registry_open: registry.RegistryServer,
    repo_name: str,
    paced_scanner: Callable[..., PacedScanner],
    counting_proxy: Callable[[str], registry.CountingProxy],
    second_host: str,
    waits: list[float],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    registry_open.push_image(repo_name + "-other", tags=["2.0"])
    scan = paced_scanner(requests_per_second=5.0, burst=5.0)
    host = registry_open.host if second_host == "same" else counting_proxy(registry_open.url).host
    first = access(registry_open.host, repo_name)
    second = access(host, repo_name + "-other", secret_name="another-cr")
    for _ in range(5):  # interleaved, as two CRs scanning at once would be
        await scan.digest(first, "1.0")
        await scan.digest(second, "2.0")
    assert len(scan.requests) == 10
    assert scan.sleeps == pytest.approx(waits)
