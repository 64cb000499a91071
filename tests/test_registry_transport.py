"""The registry transport on the wire, against real docker-registries and proxies of ours.

Each section is a bug found on real setups, proven here where the fault must be made:
1. gzip: a proxy that compresses (nginx `gzip on`, CDNs) in front of the registry, honouring
   Accept-Encoding or not; manifests must be read as the exact bytes their digest covers.
2. `insecure` follows Docker's order: HTTPS without verification first, plain HTTP only for a
   host that speaks no TLS. A self-signed registry on port 443 (image `127.0.0.1/...`, no
   port) and a plain-HTTP one.
3. Credentials never downgrade: a same-host redirect to `http://` carries no Authorization.
   The proxy speaks HTTPS and plain HTTP on one port, so the redirect keeps the host:port.
4. Bounded scans: a hostile paginating proxy (empty pages linking to fresh URLs; one new tag
   per page), and a deadline on a fake clock that covers pages and retries alike.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from imagepromoter import errors
from tests.conftest import need_server
from tests.fixtures_registry import PacedScanner, Scanner, access, reader
from tests.servers import registry

pytestmark = pytest.mark.servers

MakeScanner = Callable[..., Scanner]
WHEN = {"1.0.0": "2026-01-02T03:04:05Z", "1.1.0": "2026-02-03T04:05:06Z"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# 1. gzip -------------------------------------------------------------------------------------


@pytest.fixture
def pushed(registry_open: registry.RegistryServer, repo_name: str) -> str:
    """Two images in `repo_name`: a single manifest and a two-platform index."""
    registry_open.push_image(repo_name, tags=["1.0.0"], created=WHEN["1.0.0"])
    registry_open.push_image(
        repo_name,
        tags=["1.1.0"],
        platforms=["linux/amd64", "linux/arm64"],
        created=WHEN["1.1.0"],
    )
    return repo_name


async def scan_everything(scan: Scanner, host: str, repo: str) -> None:
    """Tags, the digest of each, and creation times (index, child manifest, config blob)."""
    target = access(host, repo)
    assert sorted(await scan.list_tags(target)) == ["1.0.0", "1.1.0"]
    for tag in ("1.0.0", "1.1.0"):
        assert (await scan.digest(target, tag)).startswith("sha256:")
    assert await scan.created(target, ["1.0.0", "1.1.0"]) == {t: at(w) for t, w in WHEN.items()}


async def test_gzip_where_asked_and_identity_for_manifests(
    registry_open: registry.RegistryServer,
    pushed: str,
    compressing_proxy: Callable[..., registry.CompressingProxy],
    scanner: MakeScanner,
) -> None:
    proxy = compressing_proxy(registry_open.url)
    await scan_everything(scanner(), proxy.host, pushed)
    # The tag list may come compressed (it did, and was decoded) ...
    assert any("/tags/list" in path for path in proxy.compressed)
    # ... but every manifest and blob request asked for the exact bytes, and got them.
    exact = proxy.seen("/manifests/|/blobs/")
    assert exact and {r.accept_encoding for r in exact} == {"identity"}
    assert not [p for p in proxy.compressed if "/manifests/" in p or "/blobs/" in p]


async def test_manifests_compressed_anyway_are_decoded_and_verified(
    registry_open: registry.RegistryServer,
    pushed: str,
    compressing_proxy: Callable[..., registry.CompressingProxy],
    scanner: MakeScanner,
) -> None:
    proxy = compressing_proxy(registry_open.url, force=True)
    await scan_everything(scanner(), proxy.host, pushed)
    by_digest = [p for p in proxy.compressed if "/manifests/sha256:" in p]
    assert len(by_digest) == 3  # the manifest, the index and its linux/amd64 child
    assert {r.accept_encoding for r in proxy.seen("/manifests/")} == {"identity"}


async def test_the_size_cap_applies_to_the_decoded_body(
    registry_open: registry.RegistryServer,
    repo_name: str,
    compressing_proxy: Callable[..., registry.CompressingProxy],
    scanner: MakeScanner,
) -> None:
    image = registry_open.push_image(repo_name, tags=["1.0.0"])
    registry_open.seed_tags(repo_name, [f"1.0.{i}" for i in range(1, 3000)], image.digest)
    plain = httpx.get(f"{registry_open.url}/v2/{repo_name}/tags/list").content
    cap = 16_000
    assert len(gzip.compress(plain)) < cap < len(plain)  # small on the wire, big decoded
    proxy = compressing_proxy(registry_open.url, force=True)
    with pytest.raises(errors.RegistryError) as caught:
        await scanner(max_body_bytes=cap).list_tags(access(proxy.host, repo_name))
    assert f"{proxy.host} sent more than {cap} bytes for {repo_name}" in str(caught.value)


TAG_LIST = b'{"name": "x", "tags": ["1.0.0", "1.1.0"]}'


@pytest.mark.parametrize(
    ("headers", "body", "outcome"),
    [
        ({"Content-Encoding": "deflate"}, zlib.compress(TAG_LIST), ["1.0.0", "1.1.0"]),
        ({"Content-Encoding": "x-gzip"}, gzip.compress(TAG_LIST), ["1.0.0", "1.1.0"]),
        ({"Content-Encoding": "identity"}, TAG_LIST, ["1.0.0", "1.1.0"]),
        ({"Content-Encoding": "gzip"}, gzip.compress(TAG_LIST)[:-12], "retried"),
        ({"Content-Encoding": "gzip"}, b"this is not gzip", "does not decode as gzip"),
        ({"Content-Encoding": "br"}, b"\x0b\x02\x80", "in Content-Encoding 'br', which we"),
        (
            {"Content-Encoding": "gzip, gzip"},
            gzip.compress(gzip.compress(TAG_LIST)),
            "'gzip, gzip'",
        ),
    ],
    ids=["deflate", "x-gzip", "identity", "truncated-gzip", "not-gzip", "brotli", "gzip-twice"],
)
async def test_content_encodings(
    registry_open: registry.RegistryServer,
    repo_name: str,
    fault_proxy: Callable[..., registry.FaultProxy],
    scanner: MakeScanner,
    headers: dict[str, str],
    body: bytes,
    outcome: list[str] | str,
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0", "1.1.0"])
    proxy = fault_proxy(registry_open.url)
    proxy.add("status", "/tags/list", status=200, headers=headers, body=body)
    scan = scanner()
    target = access(proxy.host, repo_name)
    if isinstance(outcome, list):
        assert sorted(await scan.list_tags(target)) == outcome
    elif outcome == "retried":  # a truncated stream is retried like a reset; upstream answers
        assert sorted(await scan.list_tags(target)) == ["1.0.0", "1.1.0"]
        assert len(proxy.seen("/tags/list")) == 2 and len(scan.sleeps) == 1
    else:
        with pytest.raises(errors.RegistryError) as caught:
            await scan.list_tags(target)
        assert outcome in str(caught.value)
        assert len(proxy.seen("/tags/list")) == 1  # not retried: it would come back the same


# 2. insecure: HTTPS first --------------------------------------------------------------------


def claim(stack: contextlib.ExitStack, port: int) -> None:
    """Hold `port` for the test, or fail saying what is in the way."""
    try:
        stack.enter_context(registry.claim_port(port))
    except registry.PortBusy as exc:
        pytest.fail(str(exc))


@pytest.fixture
def registry_443(tmp_path: Path) -> Iterator[registry.RegistryServer]:
    """A self-signed HTTPS docker-registry on 127.0.0.1:443 (tests run as root)."""
    with contextlib.ExitStack() as stack:
        claim(stack, 443)
        server = need_server(lambda: registry.start(tmp_path / "r443", tls=True, port=443))
        stack.callback(server.stop)
        yield server


@pytest.fixture
def registry_80(tmp_path: Path) -> Iterator[registry.RegistryServer]:
    """A plain-HTTP docker-registry on 127.0.0.1:80, with nothing listening on 443."""
    with contextlib.ExitStack() as stack:
        claim(stack, 443)  # held (and checked free) so the HTTPS attempt meets a closed port
        claim(stack, 80)
        server = need_server(lambda: registry.start(tmp_path / "r80", port=80))
        stack.callback(server.stop)
        yield server


def test_a_busy_fixed_port_fails_with_a_clear_message() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(registry.PortBusy) as caught, registry.claim_port(port, wait=0):
            pass
    assert f"port {port} on 127.0.0.1 is not free" in str(caught.value)
    assert "stop what listens there" in str(caught.value)


async def test_insecure_on_port_443_goes_to_https_first(
    registry_443: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    assert registry_443.host == "127.0.0.1"  # spec.image 127.0.0.1/<repo>: the default port
    pushed = registry_443.push_image(repo_name, tags=["1.0", "2.0"])
    scan = scanner()
    target = access(registry_443.host, repo_name, insecure=True)
    assert sorted(await scan.list_tags(target)) == ["1.0", "2.0"]
    assert await scan.digest(target, "2.0") == pushed.digest
    # One answer each, no failed attempt: nothing was tried over plain HTTP (port 80).
    assert scan.requests == [("127.0.0.1", 200), ("127.0.0.1", 200)]
    assert scan.sleeps == []


async def test_insecure_without_a_port_falls_back_from_443_to_80(
    registry_80: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    assert registry_80.host == "127.0.0.1"
    registry_80.push_image(repo_name, tags=["1.0"])
    scan = scanner()
    target = access(registry_80.host, repo_name, insecure=True)
    for _ in range(2):
        assert await scan.list_tags(target) == ["1.0"]
    # Nothing on 443: plain HTTP on 80 within the same attempt, then HTTP straight away.
    assert scan.requests == [("127.0.0.1", 200)] * 2
    assert scan.sleeps == []


async def test_insecure_plain_http_registry_falls_back_at_once_and_remembers(
    registry_open: registry.RegistryServer,
    repo_name: str,
    counting_proxy: Callable[[str], registry.CountingProxy],
    scanner: MakeScanner,
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    proxy = counting_proxy(registry_open.url)  # plain HTTP only, like registry_open
    scan = scanner()
    for _ in range(2):
        assert await scan.list_tags(access(proxy.host, repo_name, insecure=True)) == ["1.0"]
    # The TLS handshake failed (the host speaks no TLS), so HTTP in the same attempt:
    # no retry, no backoff, one answer per scan, and the second scan went straight to HTTP.
    assert scan.requests == [(proxy.host, 200), (proxy.host, 200)]
    assert scan.sleeps == []
    assert [(r.method, r.secure) for r in proxy.seen("/tags/list")] == [("GET", False)] * 2


async def test_verified_access_never_falls_back_to_plain_http(
    registry_open: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    scan = scanner(retries=0)
    with pytest.raises(errors.RegistryError) as caught:
        await scan.list_tags(access(registry_open.host, repo_name, insecure=False))
    assert "set spec.insecure: true for a plain-HTTP or self-signed registry" in str(caught.value)


# 3. credentials never downgrade --------------------------------------------------------------


@pytest.fixture
def downgrading_proxy(
    registry_htpasswd: registry.RegistryServer, tmp_path: Path
) -> Iterator[registry.FaultProxy]:
    """HTTPS and HTTP on one port in front of the htpasswd registry; blobs go to http://."""
    tls = registry.TlsFiles.self_signed(tmp_path / "proxy-tls")
    proxy = registry.FaultProxy(registry_htpasswd.url, registry_htpasswd, dual_tls=tls)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize("insecure", [False, True], ids=["verified", "insecure"])
async def test_a_same_host_redirect_to_http_carries_no_authorization(
    registry_htpasswd: registry.RegistryServer,
    repo_name: str,
    downgrading_proxy: registry.FaultProxy,
    scanner: MakeScanner,
    monkeypatch: pytest.MonkeyPatch,
    insecure: bool,
) -> None:
    proxy = downgrading_proxy
    assert proxy.dual_tls is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(proxy.dual_tls.certificate))
    registry_htpasswd.push_image(repo_name, tags=["1.0.0"], created=WHEN["1.0.0"])
    proxy.add("redirect_blob_http", path="/blobs/", times=10)
    creds = reader(registry_htpasswd)
    target = access(proxy.host, repo_name, creds, "pull-secret", insecure=insecure)
    assert await scanner().created(target, ["1.0.0"]) == {"1.0.0": at(WHEN["1.0.0"])}
    blobs = proxy.seen("/blobs/")
    assert [(r.secure, r.authorized) for r in blobs] == [(True, True), (False, False)]
    assert "signed=" in blobs[1].path  # the same host:port, over plain HTTP


# 4. bounded scans ----------------------------------------------------------------------------


async def test_empty_pages_that_link_on_are_a_loop(
    registry_open: registry.RegistryServer,
    repo_name: str,
    hostile_proxy: Callable[..., registry.HostilePagingProxy],
    scanner: MakeScanner,
) -> None:
    registry_open.push_image(repo_name, tags=["1.0", "1.1"])
    proxy = hostile_proxy(registry_open.url, mode="empty")
    with pytest.raises(errors.RegistryError) as caught:
        await scanner().list_tags(access(proxy.host, repo_name))
    assert str(caught.value) == (
        f"{proxy.host} paginates the tags of {repo_name} in a loop (a page with no new tag "
        "still links to another after 2 tags); the registry is misbehaving"
    )
    assert proxy.pages == 2  # the real page, then one empty page: no more


@pytest.mark.parametrize(
    ("options", "cap"), [({}, 1000), ({"max_pages": 40}, 40)], ids=["default", "configured"]
)
async def test_one_new_tag_per_page_stops_at_the_page_cap(
    registry_open: registry.RegistryServer,
    repo_name: str,
    hostile_proxy: Callable[..., registry.HostilePagingProxy],
    scanner: MakeScanner,
    options: dict[str, int],
    cap: int,
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    proxy = hostile_proxy(registry_open.url, mode="one_new")
    with pytest.raises(errors.RegistryError) as caught:
        await scanner(**options).list_tags(access(proxy.host, repo_name))
    assert str(caught.value) == (
        f"{proxy.host} paginates the tags of {repo_name} over more than {cap} pages (the limit "
        f"per scan; {cap} tags so far); the registry (or a proxy in front of it) keeps "
        "linking to more pages"
    )
    assert proxy.pages == cap


async def test_the_tag_cap_names_itself(
    registry_open: registry.RegistryServer,
    repo_name: str,
    hostile_proxy: Callable[..., registry.HostilePagingProxy],
    scanner: MakeScanner,
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    proxy = hostile_proxy(registry_open.url, mode="one_new")
    with pytest.raises(errors.RegistryError) as caught:
        await scanner(max_tags=25).list_tags(access(proxy.host, repo_name))
    assert "lists more than 25 tags for" in str(caught.value)
    assert "(the limit per scan)" in str(caught.value)
    assert proxy.pages == 26


async def test_every_scan_has_a_total_deadline(
    registry_open: registry.RegistryServer,
    repo_name: str,
    hostile_proxy: Callable[..., registry.HostilePagingProxy],
    paced_scanner: Callable[..., PacedScanner],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    proxy = hostile_proxy(registry_open.url, mode="one_new")
    scan: PacedScanner

    def slow_answer(host: str, status: int | None) -> None:  # each answer takes 1 s (fake)
        scan.requests.append((host, status))
        scan.advance(1.0)

    scan = paced_scanner(scan_deadline=30, on_request=slow_answer, requests_per_second=1e6)
    with pytest.raises(errors.RegistryError) as caught:
        await scan.list_tags(access(proxy.host, repo_name))
    assert str(caught.value) == (
        f"{proxy.host} could not be scanned for {repo_name} within the scan deadline of 30 s "
        "(30 pages, 30 tags so far); the registry is too slow or keeps us busy, the next scan "
        "will try again"
    )
    assert proxy.pages == 30


async def test_the_deadline_also_bounds_retries(
    registry_open: registry.RegistryServer,
    repo_name: str,
    fault_proxy: Callable[..., registry.FaultProxy],
    paced_scanner: Callable[..., PacedScanner],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0"])
    proxy = fault_proxy(registry_open.url)
    proxy.add("status", "/tags/list", times=10, status=503, headers={"Retry-After": "20"})
    scan = paced_scanner(scan_deadline=30, requests_per_second=1e6)
    with pytest.raises(errors.RegistryError) as caught:
        await scan.list_tags(access(proxy.host, repo_name))
    assert "within the scan deadline of 30 s" in str(caught.value)
    assert f"{proxy.host} answered 503" in str(caught.value)
    assert scan.sleeps == [20.0]  # the second 20 s wait would pass the deadline: not taken
    assert len(proxy.seen("/tags/list")) == 2


def test_hostile_proxy_stops_linking_eventually(
    registry_open: registry.RegistryServer,
    repo_name: str,
    hostile_proxy: Callable[..., registry.HostilePagingProxy],
) -> None:
    """The proxy itself ends, so an unbounded client fails these tests instead of hanging."""
    registry_open.push_image(repo_name, tags=["1.0"])
    proxy = hostile_proxy(registry_open.url, mode="one_new", give_up_after=3)
    url: str | None = f"{proxy.url}/v2/{repo_name}/tags/list"
    tags: list[str] = []
    with httpx.Client() as client:
        while url:
            answer = client.get(url)
            tags += json.loads(answer.content)["tags"]
            url = answer.links.get("next", {}).get("url")
            url = f"{proxy.url}{url}" if url else None
    assert tags == ["1.0", "9.0.2", "9.0.3"]
