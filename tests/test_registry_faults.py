"""A fault-injecting proxy of our own in front of the real registry: the client stays sane.

Nothing sleeps for real on retries: the scanner records the delays it would have waited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from imagepromoter import errors
from tests.fixtures_registry import Scanner, access
from tests.servers import free_port, registry

pytestmark = pytest.mark.servers

MakeScanner = Callable[..., Scanner]
TAGS = "/tags/list"


RECOVERED = [
    ({"kind": "status", "status": 429, "headers": {"Retry-After": "3"}}, {}, 2, [3.0]),
    ({"kind": "status", "status": 503, "headers": {"Retry-After": "0"}}, {}, 2, [0.0]),
    ({"kind": "status", "status": 502, "times": 2}, {}, 3, "backoff"),
    ({"kind": "truncate"}, {}, 2, "backoff"),
    ({"kind": "stall"}, {"read_timeout": 0.3}, 2, "backoff"),
]


@pytest.mark.parametrize(
    ("fault", "options", "attempts", "sleeps"),
    RECOVERED,
    ids=["429-retry-after", "503-retry-after-zero", "502-twice", "truncated-body", "stalled"],
)
async def test_transient_faults_are_retried(
    proxied: tuple[registry.FaultProxy, str],
    scanner: MakeScanner,
    fault: dict[str, object],
    options: dict[str, object],
    attempts: int,
    sleeps: list[float] | str,
) -> None:
    proxy, repo = proxied
    proxy.add(path=TAGS, **fault)  # type: ignore[arg-type]
    client = scanner(**options)
    assert sorted(await client.list_tags(access(proxy.host, repo))) == ["1.0.0", "1.1.0"]
    assert len(proxy.seen(TAGS)) == attempts
    if sleeps == "backoff":
        assert len(client.sleeps) == attempts - 1
        assert all(0.25 <= s <= 0.5 * 2**i for i, s in enumerate(client.sleeps))
    else:
        assert client.sleeps == sleeps


async def test_retry_after_as_http_date(
    proxied: tuple[registry.FaultProxy, str], scanner: MakeScanner
) -> None:
    proxy, repo = proxied
    when = "Sun, 29 Nov 2099 10:00:00 GMT"  # far away: reported, not waited for
    proxy.add("status", path=TAGS, status=429, headers={"Retry-After": when})
    client = scanner()
    with pytest.raises(errors.RegistryError, match=r"answered 429 \(too many requests\)") as caught:
        await client.list_tags(access(proxy.host, repo))
    assert "it asked us to wait" in str(caught.value)
    assert client.sleeps == []


FAILED = [
    (
        {"kind": "status", "status": 503, "times": 99},
        {"retries": 2},
        "answered 503 (unavailable) for {repo}: gave up after 3 attempts; "
        "the next scan will try again",
        3,
    ),
    (
        {"kind": "status", "status": 429, "headers": {"Retry-After": "3600"}},
        {},
        "answered 429 (too many requests) for {repo}: it asked us to wait 3600 s",
        1,
    ),
    (
        {"kind": "status", "status": 500, "body": b'{"errors":[{"code":"UNKNOWN","message":"x"}]}'},
        {},
        "answered 500 for {repo} (the tag list) (registry says: UNKNOWN: x)",
        1,
    ),
    (
        {"kind": "stall", "times": 99},
        {"read_timeout": 0.2, "retries": 1},
        "could not be read for {repo} after 2 attempts (the answer stalled)",
        2,
    ),
    (
        {"kind": "truncate", "times": 99},
        {"retries": 1},
        "could not be read for {repo} after 2 attempts (the connection broke mid-answer",
        2,
    ),
    (
        {"kind": "oversize", "size": 50 * 2**20},
        {"max_body_bytes": 2**20},
        "sent more than 1048576 bytes for {repo} (/v2/{repo}/tags/list); refusing to read",
        1,
    ),
    (
        {"kind": "oversize", "size": 50 * 2**20, "declare_length": False},
        {"max_body_bytes": 2**20},
        "sent more than 1048576 bytes for {repo}",
        1,
    ),
    (
        {"kind": "invalid_json"},
        {},
        "sent invalid JSON for the tag list of {repo}; the registry (or a proxy in front of it) "
        "is misbehaving",
        1,
    ),
    (
        {"kind": "invalid_json", "body": b'{"tags": "1.0.0"}'},
        {},
        "sent a tag list for {repo} without a `tags` list of strings",
        1,
    ),
]


@pytest.mark.parametrize(
    ("fault", "options", "message", "attempts"),
    FAILED,
    ids=[
        "503-forever",
        "429-asks-an-hour",
        "500-not-retried",
        "stalled-forever",
        "truncated-forever",
        "oversized-declared",
        "oversized-streamed",
        "invalid-json",
        "tags-not-a-list",
    ],
)
async def test_faults_become_clear_registry_errors(
    proxied: tuple[registry.FaultProxy, str],
    scanner: MakeScanner,
    fault: dict[str, object],
    options: dict[str, object],
    message: str,
    attempts: int,
) -> None:
    proxy, repo = proxied
    proxy.add(path=TAGS, **fault)  # type: ignore[arg-type]
    with pytest.raises(errors.RegistryError) as caught:
        await scanner(**options).list_tags(access(proxy.host, repo))
    assert type(caught.value) is errors.RegistryError
    assert str(caught.value).startswith(f"{proxy.host} ")
    assert message.format(repo=repo) in str(caught.value)
    assert caught.value.__cause__ is None
    assert len(proxy.seen(TAGS)) == attempts


async def test_manifest_that_does_not_match_its_digest(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    fault_proxy: Callable[..., registry.FaultProxy],
) -> None:
    pushed = registry_open.push_image(repo_name, tags=["1.0.0"])
    proxy = fault_proxy(registry_open.url)
    proxy.add("invalid_json", path=f"/manifests/{pushed.digest}", body=b'{"schemaVersion": 2}')
    with pytest.raises(errors.RegistryError, match="does not match its digest"):
        await scanner().created(access(proxy.host, repo_name), ["1.0.0"])


async def test_unreachable_registry(scanner: MakeScanner) -> None:
    host = f"127.0.0.1:{free_port()}"
    client = scanner(retries=2)
    with pytest.raises(errors.RegistryError) as caught:
        await client.list_tags(access(host, "org/app"))
    assert str(caught.value).startswith(
        f"{host} could not be read for org/app after 3 attempts (over HTTPS: could not connect"
    )
    assert client.requests == [(host, None)] * 3


async def test_plain_http_registry_without_insecure(
    registry_open: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"])
    with pytest.raises(errors.RegistryError, match=r"set spec\.insecure: true"):
        await scanner(retries=0).list_tags(access(registry_open.host, repo_name, insecure=False))


async def test_in_flight_requests_per_host_are_bounded(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    fault_proxy: Callable[..., registry.FaultProxy],
) -> None:
    """Three CRs scanning the same host at once still send at most 4 requests at a time."""
    pushed = registry_open.push_image(repo_name, tags=[])
    registry_open.seed_tags(repo_name, [f"1.0.{i}" for i in range(12)], pushed.digest)
    proxy = fault_proxy(registry_open.url)
    proxy.add("gather", path="/manifests/", times=4, count=4)  # held until 4 are in at once
    client = scanner()
    where = access(proxy.host, repo_name)
    tags = [f"1.0.{i}" for i in range(12)]
    await asyncio.gather(*(client.created(where, tags) for _ in range(3)))
    assert proxy.max_in_flight == 4
