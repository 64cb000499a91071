"""Pacing against a registry that limits us: the real docker-registry behind our own proxies.

- `FaultProxy` answers 429 (or 503) with Retry-After for the first N requests: the scan waits as
  told (the client's fake clock moves only by its sleeps, so the waits are exact) and sends
  nothing beyond the retried requests.
- `QuotaProxy` (tests/fixtures_pacing.py) announces a quota in RateLimit-* headers and refuses
  what exceeds it: the client stops at zero and waits for the reset instead of hitting the
  wall. Its windows run on real time, so this client sleeps for real (up to two seconds); the
  proof is what the proxy answered (no 429) and in which window, not a stopwatch.
- A 429 that never ends ends the scan at its deadline with a RegistryError naming the host and
  the limit; another CR's scan of that host is then refused without a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import pytest

from imagepromoter import errors
from imagepromoter.registry import client
from tests.fixtures_pacing import QuotaProxy
from tests.fixtures_registry import PacedScanner, access
from tests.servers import registry

pytestmark = pytest.mark.servers

TAGS = "/tags/list"


@pytest.fixture
def quota_proxy() -> Iterator[Callable[..., QuotaProxy]]:
    made: list[QuotaProxy] = []

    def make(upstream: str, **options: Any) -> QuotaProxy:
        made.append(QuotaProxy(upstream, **options))
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()


@pytest.mark.parametrize(
    ("status", "retry_after", "times"),
    [(429, "2", 2), (503, "5", 1), (429, "date", 1)],
    ids=["429-twice", "503-retry-after", "429-http-date"],
)
async def test_retry_after_is_waited_and_nothing_more_is_sent(
    proxied: tuple[registry.FaultProxy, str],
    paced_scanner: Callable[..., PacedScanner],
    caplog: pytest.LogCaptureFixture,
    status: int,
    retry_after: str,
    times: int,
) -> None:
    proxy, repo = proxied
    header = retry_after
    if retry_after == "date":  # 30 s after now, as the proxy's own Date header will count it
        header = formatdate(time.time() + 30, usegmt=True)
    proxy.add("status", path=TAGS, status=status, times=times, headers={"Retry-After": header})
    scan = paced_scanner(requests_per_second=client.limits.DEFAULT_RATE)
    with caplog.at_level(logging.INFO, logger="imagepromoter.registry"):
        tags = await scan.list_tags(access(proxy.host, repo))
        digest = await scan.digest(access(proxy.host, repo), "1.1.0")
    assert sorted(tags) == ["1.0.0", "1.1.0"] and digest.startswith("sha256:")
    assert len(proxy.seen(TAGS)) == times + 1  # the refused ones, retried once each
    assert len(proxy.seen("/manifests/")) == 1
    told = [s for s in scan.sleeps if s >= 1]
    if retry_after == "date":  # whole seconds between the proxy's Date and the date it gave
        assert len(told) == 1 and 28 <= told[0] <= 30
    else:
        assert told == [float(retry_after)] * times
    throttled = [r.getMessage() for r in caplog.records if "rate-limiting" in r.getMessage()]
    assert len(throttled) == times  # one INFO line per throttling answer, not per request
    assert all(proxy.host in line and f"answered {status}" in line for line in throttled)


class StampingProxy(registry.FaultProxy):
    """A FaultProxy that stamps each request with the client's fake clock as it arrives."""

    def __init__(self, upstream: str, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.stamps: list[tuple[str, float]] = []
        super().__init__(upstream)

    def serve(self, request: registry._Handler) -> None:
        self.stamps.append((request.path.split("/")[-2], self.clock()))
        super().serve(request)


async def test_other_requests_to_the_host_wait_for_the_hold(
    registry_open: registry.RegistryServer,
    repo_name: str,
    paced_scanner: Callable[..., PacedScanner],
) -> None:
    """Two CRs at once on one host: the 429 to the first holds the second's request too."""
    registry_open.push_image(repo_name, tags=["1.0.0"])
    scan = paced_scanner(max_in_flight=1, retries=0)  # the first CR gives up: no retry sleep
    proxy = StampingProxy(registry_open.url, lambda: scan.now)
    try:
        proxy.add("status", path=TAGS, status=429, headers={"Retry-After": "4"})
        first, second = (
            access(proxy.host, repo_name),
            access(proxy.host, repo_name, secret_name="x"),
        )
        results = await asyncio.gather(
            scan.list_tags(first), scan.digest(second, "1.0.0"), return_exceptions=True
        )
    finally:
        proxy.stop()
    assert isinstance(results[0], errors.RegistryError) and isinstance(results[1], str)
    (_, refused_at), (kind, sent_at) = proxy.stamps
    assert kind == "manifests" and sent_at >= refused_at + 4.0  # not one request into the hold


async def test_ratelimit_headers_stop_before_the_wall(
    registry_open: registry.RegistryServer,
    repo_name: str,
    quota_proxy: Callable[..., QuotaProxy],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"])
    proxy = quota_proxy(registry_open.url, limit=3, window=2.0)  # 3 requests fit in 2 s
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # real: the proxy's window runs on real time
        waits.append(seconds)
        await asyncio.sleep(seconds)

    scan = client.RegistryClient(sleep=sleep)
    try:
        target = access(proxy.host, repo_name)
        for _ in range(5):
            await scan.digest(target, "1.0.0")
    finally:
        await scan.aclose()
    assert proxy.statuses() == [200] * 5  # never sent into the wall
    assert [window for window, _ in proxy.answers] == [1, 1, 1, 2, 2]
    assert len(waits) == 1 and 0 < waits[0] <= 2.0  # one wait: for the reset it announced


@pytest.mark.parametrize(
    ("fault", "limit_words", "requests"),
    [
        (
            {"status": 429, "headers": {"Retry-After": "3"}},
            "Retry-After 3 s",
            4,  # at 0, 3, 6 and 9 s; the next at 12 s would pass the 10 s deadline
        ),
        (
            {
                "status": 429,
                "headers": {
                    "RateLimit-Limit": "10",
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": "30",
                },
            },
            "its limit is 10 requests, 0 left, reset in 30 s",
            1,  # the reset is past the deadline: not waited for, not retried
        ),
    ],
    ids=["retry-after", "ratelimit-headers"],
)
async def test_a_429_that_never_ends_ends_the_scan_at_its_deadline(
    proxied: tuple[registry.FaultProxy, str],
    paced_scanner: Callable[..., PacedScanner],
    fault: dict[str, Any],
    limit_words: str,
    requests: int,
) -> None:
    proxy, repo = proxied
    proxy.add("status", path=TAGS, times=99, **fault)
    scan = paced_scanner(scan_deadline=10, retries=50)
    with pytest.raises(errors.RegistryError) as caught:
        await scan.list_tags(access(proxy.host, repo))
    message = str(caught.value)
    assert message.startswith(proxy.host) and "scan deadline of 10 s" in message
    assert "429" in message and limit_words in message
    assert len(proxy.seen(TAGS)) == requests
    # Another CR's scan of the same host while it is held: refused without a request.
    proxy.clear()
    if requests == 1:
        with pytest.raises(errors.RegistryError, match="is rate-limiting us") as other:
            await scan.list_tags(access(proxy.host, repo, secret_name="other-cr"))
        assert limit_words in str(other.value) and proxy.requests == []
