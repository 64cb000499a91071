"""`insecure` over TLS, and where credentials may go, against a real docker-registry on HTTPS.

The registry serves a self-signed certificate (tests/servers/registry.py `TlsFiles`). A client
verifies it only when told about it: `SSL_CERT_FILE` (which httpx honours) stands in for an
operator given the registry's CA. Token realms are ours (`TokenServer` on plain HTTP, or a
`FakeRealm` on HTTPS that forwards to it or redirects elsewhere) so each test can count exactly
which host saw which credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagepromoter import errors
from tests.conftest import need_server
from tests.fixtures_registry import Scanner, access, reader
from tests.servers import registry

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def tls_token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[registry.RegistryServer]:
    """HTTPS registry whose token realm is our TokenServer on plain HTTP (another port)."""
    server = need_server(
        lambda: registry.start(
            tmp_path_factory.mktemp("tls-token"),
            auth="token",
            tls=True,
            public_repos=["public/app"],
        )
    )
    try:
        server.push_image("org/app", tags=["1.0"])
        server.push_image("public/app", tags=["1.0"])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fake_realm_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[registry.RegistryServer, registry.FakeRealm]]:
    """HTTPS registry whose realm is a FakeRealm on HTTPS (another port, same certificate)."""
    base = tmp_path_factory.mktemp("fake-realm")
    tls = registry.TlsFiles.self_signed(base / "realm-tls")
    realm = registry.FakeRealm(tls=tls)
    server = registry.RegistryServer(base / "registry", auth="token", tls=True, realm=realm.realm)
    try:
        need_server(server.start)
        assert server.tokens is not None
        realm.forward_to = server.tokens.realm
        server.push_image("org/app", tags=["1.0"])
        yield server, realm
    finally:
        server.stop()
        realm.stop()


def trust(monkeypatch: pytest.MonkeyPatch, *certificates: Path) -> None:
    """Make new httpx clients trust exactly `certificates` (what an operator given a CA does)."""
    bundle = certificates[0].parent.parent / "trusted-bundle.pem"
    bundle.write_bytes(b"".join(c.read_bytes() for c in certificates))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


# 1. insecure over TLS -------------------------------------------------------------------------


async def test_insecure_reads_tags_from_a_self_signed_registry(
    registry_tls: registry.RegistryServer, repo_name: str, scanner: Callable[..., Scanner]
) -> None:
    registry_tls.push_image(repo_name, tags=["1.0", "2.0"])
    scan = scanner()
    tags = await scan.list_tags(access(registry_tls.host, repo_name, insecure=True))
    assert sorted(tags) == ["1.0", "2.0"]
    # Docker's order: HTTPS without verification first, and it answers; no plain-HTTP probe.
    assert scan.requests == [(registry_tls.host, 200)]
    assert await scan.digest(access(registry_tls.host, repo_name), "1.0")
    assert scan.requests[-1] == (registry_tls.host, 200)  # the scheme stays settled


@pytest.mark.parametrize(
    "operation",
    ["list_tags", "digest", "created"],
    ids=["tags", "digest", "created"],
)
async def test_verified_tls_refuses_a_self_signed_certificate_at_once(
    registry_tls: registry.RegistryServer,
    repo_name: str,
    scanner: Callable[..., Scanner],
    operation: str,
) -> None:
    registry_tls.push_image(repo_name, tags=["1.0"])
    scan = scanner()
    target = access(registry_tls.host, repo_name, insecure=False)
    with pytest.raises(errors.RegistryError) as caught:
        if operation == "list_tags":
            await scan.list_tags(target)
        elif operation == "digest":
            await scan.digest(target, "1.0")
        else:
            await scan.created(target, ["1.0"])
    message = str(caught.value)
    assert type(caught.value) is errors.RegistryError
    assert f"{registry_tls.host} presented a TLS certificate that could not be verified" in message
    assert "self-signed certificate" in message
    assert "set spec.insecure: true" in message and "CA" in message
    assert "_ssl.c" not in message
    assert scan.sleeps == []  # not retried: waiting cannot make a certificate trusted
    assert scan.requests == [(registry_tls.host, None)]


async def test_insecure_applies_to_that_registry_only(
    registry_tls: registry.RegistryServer,
    tmp_path: Path,
    repo_name: str,
    scanner: Callable[..., Scanner],
) -> None:
    # Another host with its own self-signed certificate, read by the same client.
    with registry.serve(tmp_path / "other", tls=True) as other:
        registry_tls.push_image(repo_name, tags=["1.0"])
        other.push_image(repo_name, tags=["9.0"])
        scan = scanner()
        assert await scan.list_tags(access(registry_tls.host, repo_name, insecure=True)) == ["1.0"]
        for host in (other.host, registry_tls.host):  # neither this host nor the one above
            with pytest.raises(errors.RegistryError, match="could not be verified"):
                await scan.list_tags(access(host, repo_name, insecure=False))
        assert await scan.list_tags(access(other.host, repo_name, insecure=True)) == ["9.0"]


async def test_a_trusted_ca_reads_without_insecure(
    registry_tls: registry.RegistryServer,
    repo_name: str,
    scanner: Callable[..., Scanner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert registry_tls.tls is not None
    trust(monkeypatch, registry_tls.tls.certificate)
    registry_tls.push_image(repo_name, tags=["1.0"])
    scan = scanner()
    assert await scan.list_tags(access(registry_tls.host, repo_name, insecure=False)) == ["1.0"]
    assert scan.requests == [(registry_tls.host, 200)]  # straight to HTTPS, verified


# 3. where credentials go ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("insecure", "with_credentials", "repository", "outcome"),
    [
        (False, True, "org/app", "refused"),
        (False, False, "public/app", "anonymous"),
        (True, True, "org/app", "sent"),
    ],
    ids=["verified-with-credentials-refused", "anonymous-allowed", "insecure-sends"],
)
async def test_a_plain_http_realm_never_gets_credentials_unless_insecure(
    tls_token_registry: registry.RegistryServer,
    scanner: Callable[..., Scanner],
    monkeypatch: pytest.MonkeyPatch,
    insecure: bool,
    with_credentials: bool,
    repository: str,
    outcome: str,
) -> None:
    server = tls_token_registry
    assert server.tls is not None and server.tokens is not None
    assert server.tokens.realm.startswith("http://")
    trust(monkeypatch, server.tls.certificate)
    before = len(server.tokens.issued())
    creds = reader(server) if with_credentials else None
    target = access(server.host, repository, creds, "pull-secret", insecure=insecure)
    scan = scanner()
    if outcome == "refused":
        with pytest.raises(errors.AuthError) as caught:
            await scan.list_tags(target)
        message = str(caught.value)
        assert "plain-HTTP token service" in message and "spec.insecure" in message
        assert server.password not in message
        assert server.tokens.issued()[before:] == []  # the realm never heard from us
        return
    assert await scan.list_tags(target) == ["1.0"]
    asked = server.tokens.issued()[before:]
    assert [r.account for r in asked] == (["reader"] if with_credentials else [None])


async def test_a_realm_on_another_https_host_gets_the_credentials(
    fake_realm_registry: tuple[registry.RegistryServer, registry.FakeRealm],
    scanner: Callable[..., Scanner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, realm = fake_realm_registry
    assert server.tls is not None and realm.tls_files is not None
    trust(monkeypatch, server.tls.certificate, realm.tls_files.certificate)
    realm.redirect_to = None
    before = len(realm.seen())
    target = access(server.host, "org/app", reader(server), "pull-secret", insecure=False)
    assert await scanner().list_tags(target) == ["1.0"]
    assert [r.account for r in realm.seen()[before:]] == ["reader"]


async def test_a_realm_redirect_to_a_third_host_is_not_followed(
    fake_realm_registry: tuple[registry.RegistryServer, registry.FakeRealm],
    scanner: Callable[..., Scanner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, realm = fake_realm_registry
    assert server.tls is not None and realm.tls_files is not None
    trust(monkeypatch, server.tls.certificate, realm.tls_files.certificate)
    third = registry.FakeRealm()
    try:
        realm.redirect_to = f"{third.url}/collect"
        target = access(server.host, "org/app", reader(server), "pull-secret", insecure=False)
        with pytest.raises(errors.RegistryError) as caught:
            await scanner().list_tags(target)
        assert "answered 307 to the token request" in str(caught.value)
        assert server.password not in str(caught.value)
        assert third.seen() == []
    finally:
        realm.redirect_to = None
        third.stop()
