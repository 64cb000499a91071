"""Pytest fixtures for the registry servers (see tests/servers/registry.py).

- `registry_open`, `registry_htpasswd`, `registry_token`: one real `docker-registry` per mode for
  the session (token mode with our own JWT issuer at `.tokens`; `reader`/`.password` may pull
  everything, `outsider`/`.outsider_password` can log in but read nothing, anonymous may pull
  repositories named `public/...` listed at start: `public/app`).
- `repo_name`: a fresh repository name per test (`t<N>/app`), so session servers can be shared.
- `scanner`: a factory of `RegistryClient`s for this test, closed afterwards. Each one records
  the retry delays it asked for (`.sleeps`, nothing really sleeps) and every request it made
  (`.requests`: (host, status) pairs). Its rate limit is high so tests do not wait for it.
- `paginating_proxy(upstream_url, **options)` / `fault_proxy(upstream_url, registry=None)`:
  proxies of our own in front of a registry, stopped after the test.
- `compressing_proxy(upstream_url, force=False)` / `hostile_proxy(upstream_url, mode=...)`:
  gzip in front of the registry (nginx-style), and a tag list that never stops linking.
- `reader(server)`: BasicCredentials of the account that may pull everything.
- `access(host, repository, ...)`: a RegistryAccess for `host/repository` (insecure by default,
  since the local registry speaks plain HTTP).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagepromoter import credentials, reference
from imagepromoter.registry import client
from tests.conftest import need_server
from tests.servers import registry

_repos = itertools.count()


def access(
    host: str,
    repository: str,
    creds: credentials.BasicCredentials | None = None,
    secret_name: str | None = None,
    *,
    insecure: bool = True,
) -> reference.RegistryAccess:
    """What reconcile would hand the client for `host/repository`."""
    return reference.RegistryAccess(
        image=reference.parse(f"{host}/{repository}"),
        credentials=creds,
        secret_name=secret_name,
        insecure=insecure,
    )


def reader(server: registry.RegistryServer) -> credentials.BasicCredentials:
    """The account that may pull everything on `server` (htpasswd and token modes)."""
    return credentials.BasicCredentials(server.username, server.password)


def _session_registry(
    factory: pytest.TempPathFactory, name: str, **options: Any
) -> Iterator[registry.RegistryServer]:
    server = need_server(lambda: registry.start(factory.mktemp(name), **options))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry.RegistryServer]:
    yield from _session_registry(tmp_path_factory, "registry-open")


@pytest.fixture(scope="session")
def registry_htpasswd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[registry.RegistryServer]:
    yield from _session_registry(tmp_path_factory, "registry-htpasswd", auth="htpasswd")


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry.RegistryServer]:
    yield from _session_registry(
        tmp_path_factory, "registry-token", auth="token", public_repos=["public/app"]
    )


@pytest.fixture
def repo_name() -> str:
    return f"t{next(_repos)}/app"


class Scanner(client.RegistryClient):
    """A RegistryClient that records its requests and retry delays instead of sleeping."""

    def __init__(self, **options: Any) -> None:
        self.sleeps: list[float] = []
        self.requests: list[tuple[str, int | None]] = []
        options.setdefault("requests_per_second", 10_000.0)
        options.setdefault("on_request", lambda host, status: self.requests.append((host, status)))
        options.setdefault("sleep", self._record_sleep)
        super().__init__(**options)

    async def _record_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
async def scanner() -> AsyncIterator[Callable[..., Scanner]]:
    made: list[Scanner] = []

    def make(**options: Any) -> Scanner:
        made.append(Scanner(**options))
        return made[-1]

    yield make
    for one in made:
        await one.aclose()


@pytest.fixture
def paginating_proxy() -> Iterator[Callable[..., registry.PaginatingProxy]]:
    made: list[registry.PaginatingProxy] = []

    def make(upstream: str, **options: Any) -> registry.PaginatingProxy:
        made.append(registry.PaginatingProxy(upstream, **options))
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., registry.FaultProxy]]:
    made: list[registry.FaultProxy] = []

    def make(
        upstream: str, registry_server: registry.RegistryServer | None = None
    ) -> registry.FaultProxy:
        made.append(registry.FaultProxy(upstream, registry_server))
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture
def proxied(
    registry_open: registry.RegistryServer,
    repo_name: str,
    fault_proxy: Callable[..., registry.FaultProxy],
) -> tuple[registry.FaultProxy, str]:
    """A fault proxy in front of the open registry, and a repository there tagged 1.0.0, 1.1.0."""
    registry_open.push_image(repo_name, tags=["1.0.0", "1.1.0"])
    return fault_proxy(registry_open.url), repo_name


@pytest.fixture
def registry_scratch(tmp_path: Path) -> Iterator[registry.RegistryServer]:
    """A private open registry for tests that damage or fill its storage."""
    server = need_server(lambda: registry.start(tmp_path / "registry"))
    try:
        yield server
    finally:
        server.stop()


class PacedScanner(Scanner):
    """A Scanner on a fake clock that only its `sleep` moves: rate-limit waits cost no time.

    `.sleeps` then holds every wait the token bucket (and any retry) asked for, in order, so a
    test can check the pacing exactly; `.now` is the fake clock, `advance` moves it by hand.
    """

    def __init__(self, **options: Any) -> None:
        self.now = 1000.0
        options.setdefault("clock", lambda: self.now)
        super().__init__(**options)

    async def _record_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def paced_scanner() -> AsyncIterator[Callable[..., PacedScanner]]:
    """Like `scanner`, but PacedScanners: give `requests_per_second` to test the pacing."""
    made: list[PacedScanner] = []

    def make(**options: Any) -> PacedScanner:
        made.append(PacedScanner(**options))
        return made[-1]

    yield make
    for one in made:
        await one.aclose()


@pytest.fixture
def counted(registry_open: registry.RegistryServer) -> Iterator[registry.CountingProxy]:
    """A counting proxy in front of the open registry: it sees every request on the wire."""
    proxy = registry.CountingProxy(registry_open.url)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def counting_proxy() -> Iterator[Callable[[str], registry.CountingProxy]]:
    """`counting_proxy(upstream_url)`: a pass-through on another port (another host name)."""
    made: list[registry.CountingProxy] = []

    def make(upstream: str) -> registry.CountingProxy:
        made.append(registry.CountingProxy(upstream))
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry.RegistryServer]:
    """An open docker-registry serving HTTPS only, with a self-signed certificate (`.tls`)."""
    yield from _session_registry(tmp_path_factory, "registry-tls", tls=True)


@pytest.fixture
def compressing_proxy() -> Iterator[Callable[..., registry.CompressingProxy]]:
    """`compressing_proxy(upstream_url, force=False)`: gzips JSON and manifests (nginx-style)."""
    made: list[registry.CompressingProxy] = []

    def make(upstream: str, **options: Any) -> registry.CompressingProxy:
        made.append(registry.CompressingProxy(upstream, **options))
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture
def hostile_proxy() -> Iterator[Callable[..., registry.HostilePagingProxy]]:
    """`hostile_proxy(upstream_url, mode="empty" | "one_new")`: a tag list that links for ever."""
    made: list[registry.HostilePagingProxy] = []

    def make(upstream: str, **options: Any) -> registry.HostilePagingProxy:
        made.append(registry.HostilePagingProxy(upstream, **options))
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()
