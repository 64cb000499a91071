"""RegistryClient against a real docker-registry: tags, paging, digests, creation times, caches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from imagepromoter import errors, policy
from tests.fixtures_registry import Scanner, access, reader
from tests.servers import registry

pytestmark = pytest.mark.servers

MakeScanner = Callable[..., Scanner]


async def test_lists_every_tag(
    registry_open: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    pushed = registry_open.push_image(repo_name, tags=["1.0.0", "1.1.0", "latest"])
    registry_open.seed_tags(repo_name, [f"2.0.{i}" for i in range(50)], pushed.digest)
    client = scanner()
    tags = await client.list_tags(access(registry_open.host, repo_name))
    assert sorted(tags) == sorted(["1.0.0", "1.1.0", "latest", *(f"2.0.{i}" for i in range(50))])
    assert client.requests == [(registry_open.host, 200)]  # distribution 2.8: one page, no Link


async def test_null_tags_is_an_empty_list(
    registry_scratch: registry.RegistryServer, scanner: MakeScanner
) -> None:
    registry_scratch.push_image("org/gone", tags=["1.0.0"])
    registry_scratch.remove_all_tags("org/gone")
    assert await scanner().list_tags(access(registry_scratch.host, "org/gone")) == []


async def test_unknown_repository_says_check_spec_image(
    registry_open: registry.RegistryServer, scanner: MakeScanner
) -> None:
    with pytest.raises(errors.RegistryError) as caught:
        await scanner().list_tags(access(registry_open.host, "no/such-repo"))
    assert type(caught.value) is errors.RegistryError
    assert str(caught.value).startswith(
        f"{registry_open.host} answered 404 for no/such-repo (the tag list): the repository "
        "does not exist; check spec.image"
    )


PAGING = [
    ({}, 25),
    ({"absolute_links": True}, 25),
    ({"reject_large_n": True}, 26),  # one 400 for n=1000, then the registry's own 100 a page
    ({"shuffle": True, "page_size": 100, "max_n": 1000}, 3),
    ({"page_size": 7, "max_n": 7}, 358),
]


@pytest.mark.parametrize(
    ("options", "requests"),
    PAGING,
    ids=["ghcr-relative-links", "absolute-links", "quay-rejects-large-n", "shuffled", "odd-pages"],
)
async def test_pagination_sees_every_tag_once(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    paginating_proxy: Callable[..., registry.PaginatingProxy],
    options: dict[str, object],
    requests: int,
) -> None:
    pushed = registry_open.push_image(repo_name, tags=[])
    expected = [f"1.{i // 100}.{i % 100}" for i in range(2500)]
    registry_open.seed_tags(repo_name, expected, pushed.digest)
    proxy = paginating_proxy(registry_open.url, **options)
    client = scanner()
    tags = await client.list_tags(access(proxy.host, repo_name))
    assert len(tags) == len(set(tags)) == 2500
    assert set(tags) == set(expected)
    assert len(proxy.seen("/tags/list")) == requests


async def test_page_size_refusal_is_remembered_per_host(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    paginating_proxy: Callable[..., registry.PaginatingProxy],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"])
    proxy = paginating_proxy(registry_open.url, reject_large_n=True)
    client = scanner()
    for _ in range(2):
        assert await client.list_tags(access(proxy.host, repo_name)) == ["1.0.0"]
    assert [r.path.endswith("?n=1000") for r in proxy.seen("/tags/list")] == [True, False, False]


async def test_tag_cap(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    paginating_proxy: Callable[..., registry.PaginatingProxy],
) -> None:
    pushed = registry_open.push_image(repo_name, tags=[])
    registry_open.seed_tags(repo_name, [f"t{i}" for i in range(450)], pushed.digest)
    proxy = paginating_proxy(registry_open.url)
    with pytest.raises(errors.RegistryError, match="more than 300 tags"):
        await scanner(max_tags=300).list_tags(access(proxy.host, repo_name))
    assert len(proxy.seen("/tags/list")) == 4  # stopped at the page that crossed the cap


@pytest.mark.parametrize(
    ("platforms", "docker"),
    [
        (["linux/amd64"], False),
        (["linux/amd64", "linux/arm64"], False),
        (["linux/amd64"], True),
        (["linux/amd64", "linux/arm64", "linux/arm/v7"], True),
    ],
    ids=["oci-manifest", "oci-index", "docker-manifest", "docker-list"],
)
async def test_digest_single_and_multi_arch(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    paginating_proxy: Callable[..., registry.PaginatingProxy],
    platforms: list[str],
    docker: bool,
) -> None:
    pushed = registry_open.push_image(repo_name, tags=["1.0.0"], platforms=platforms, docker=docker)
    proxy = paginating_proxy(registry_open.url)  # answers 404 without the OCI index type, as ghcr
    client = scanner()
    assert await client.digest(access(proxy.host, repo_name), "1.0.0") == pushed.digest
    (head,) = proxy.seen("/manifests/")
    assert head.method == "HEAD"
    assert all(media in head.accept for media in (registry.ACCEPT_ALL.split(", ")))


async def test_digest_of_a_missing_tag(
    registry_open: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"])
    with pytest.raises(errors.RegistryError, match=r"has no tag '9\.9\.9'"):
        await scanner().digest(access(registry_open.host, repo_name), "9.9.9")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_newest_orders_by_real_created_values(
    registry_open: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    reg = registry_open
    reg.push_image(repo_name, tags=["build-a"], created="2026-03-01T00:00:00Z")
    reg.push_image(repo_name, tags=["build-b"], created="2026-05-01T12:00:00.5Z")
    reg.push_image(repo_name, tags=["build-c"], created="2026-04-01T00:00:00Z")
    reg.push_image(repo_name, tags=["other"], created="2027-01-01T00:00:00Z")
    client = scanner()
    where = access(reg.host, repo_name)
    tags = await client.list_tags(where)
    wanted = policy.candidates(tags, tag_regex=r"^build-.*")
    created = await client.created(where, wanted)
    assert created == {
        "build-a": _utc("2026-03-01T00:00:00"),
        "build-b": _utc("2026-05-01T12:00:00.5"),
        "build-c": _utc("2026-04-01T00:00:00"),
    }
    assert (
        policy.select(tags, tag_regex=r"^build-.*", policy="newest", created=created) == "build-b"
    )


CREATED_RULES = [
    ({"created": "2026-01-01T00:00:00Z"}, "2026-01-01T00:00:00"),
    (
        {"created": "2026-01-01T00:00:00Z", "annotate_created": "2026-06-06T06:06:06Z"},
        "2026-06-06T06:06:06",
    ),
    (
        {
            "platforms": ["linux/arm64", "linux/amd64"],
            "platform_created": {
                "linux/arm64": "2026-09-09T00:00:00Z",
                "linux/amd64": "2026-02-02T00:00:00Z",
            },
        },
        "2026-02-02T00:00:00",
    ),
    (
        {
            "platforms": ["linux/arm64", "linux/amd64"],
            "created": "2026-01-01T00:00:00Z",
            "annotate_created": "2026-07-07T00:00:00Z",
        },
        "2026-07-07T00:00:00",
    ),
    (
        {
            "platforms": ["unknown/unknown", "linux/arm64", "linux/s390x"],
            "platform_created": {
                "unknown/unknown": "2020-01-01T00:00:00Z",
                "linux/arm64": "2026-03-03T00:00:00Z",
                "linux/s390x": "2026-04-04T00:00:00Z",
            },
        },
        "2026-03-03T00:00:00",
    ),
    (
        {
            "platforms": ["linux/amd64", "linux/arm64"],
            "docker": True,
            "platform_created": {"linux/amd64": "2026-08-08T00:00:00Z"},
        },
        "2026-08-08T00:00:00",
    ),
]


@pytest.mark.parametrize(
    ("push", "expected"),
    CREATED_RULES,
    ids=[
        "config-created",
        "manifest-annotation-wins",
        "index-takes-linux-amd64",
        "index-annotation-wins",
        "index-without-amd64-takes-first-real-platform",
        "docker-manifest-list",
    ],
)
async def test_created_rules(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    push: dict[str, object],
    expected: str,
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"], **push)  # type: ignore[arg-type]
    created = await scanner().created(access(registry_open.host, repo_name), ["1.0.0"])
    assert created == {"1.0.0": _utc(expected)}


async def test_created_platform_is_configurable(
    registry_open: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    registry_open.push_image(
        repo_name,
        tags=["1.0.0"],
        platforms=["linux/amd64", "linux/arm64"],
        platform_created={
            "linux/amd64": "2026-01-01T00:00:00Z",
            "linux/arm64": "2026-02-02T00:00:00Z",
        },
    )
    created = await scanner(platform="linux/arm64").created(
        access(registry_open.host, repo_name), ["1.0.0"]
    )
    assert created == {"1.0.0": _utc("2026-02-02T00:00:00")}


async def test_created_skips_vanished_tags(
    registry_open: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"], created="2026-01-01T00:00:00Z")
    created = await scanner().created(access(registry_open.host, repo_name), ["1.0.0", "gone"])
    assert created == {"1.0.0": _utc("2026-01-01T00:00:00")}


async def test_metadata_is_cached_by_digest(
    registry_open: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    paginating_proxy: Callable[..., registry.PaginatingProxy],
) -> None:
    reg = registry_open
    first = reg.push_image(repo_name, tags=["1.0.0"], created="2026-01-01T00:00:00Z")
    reg.seed_tags(repo_name, [f"same-{i}" for i in range(20)], first.digest)
    reg.push_image(repo_name, tags=["1.1.0"], created="2026-02-01T00:00:00Z")
    proxy = paginating_proxy(reg.url)
    client = scanner()
    where = access(proxy.host, repo_name)

    tags = await client.list_tags(where)
    assert len(await client.created(where, tags)) == 22
    gets = [r for r in proxy.seen() if r.method == "GET" and "/tags/" not in r.path]
    assert len(gets) == 4  # two manifests by digest and their two configs: 20 tags share one
    assert len(proxy.seen("/manifests/")) - 2 == 22  # one HEAD per tag

    proxy.clear()
    third = reg.push_image(repo_name, tags=["1.2.0"], created="2026-03-01T00:00:00Z")
    tags = await client.list_tags(where)
    created = await client.created(where, tags)
    assert created["1.2.0"] == _utc("2026-03-01T00:00:00")
    fetched = [r.path for r in proxy.seen() if r.method == "GET" and "/tags/" not in r.path]
    assert fetched[0].endswith(f"/manifests/{third.digest}")
    assert len(fetched) == 2  # only the new digest's manifest and config


async def test_config_blob_redirect_drops_credentials(
    registry_htpasswd: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    fault_proxy: Callable[..., registry.FaultProxy],
) -> None:
    reg = registry_htpasswd
    reg.push_image(repo_name, tags=["1.0.0"], created="2026-01-01T00:00:00Z")
    proxy = fault_proxy(reg.url, reg)
    proxy.add("redirect_blob", path="/blobs/", times=10)
    creds = reader(reg)
    created = await scanner().created(access(proxy.host, repo_name, creds, "pull"), ["1.0.0"])
    assert created == {"1.0.0": _utc("2026-01-01T00:00:00")}
    assert proxy.storage is not None
    (fetch,) = proxy.storage.requests
    assert not fetch.authorized
    assert all(r.authorized for r in proxy.seen("/blobs/"))


async def test_on_request_counts_by_host_and_status(
    registry_token: registry.RegistryServer, scanner: MakeScanner
) -> None:
    reg = registry_token
    reg.push_image("public/app", tags=["1.0.0"])
    client = scanner()
    await client.list_tags(access(reg.host, "public/app"))
    assert reg.tokens is not None
    assert client.requests == [(reg.host, 401), (reg.tokens.host, 200), (reg.host, 200)]
