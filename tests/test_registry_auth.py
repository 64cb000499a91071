"""Registry auth against a real docker-registry: htpasswd Basic and ghcr.io-style Bearer tokens.

Every refusal is a distinct AuthError a user can act on, and none of them (str, repr, args)
carries the password, its base64 form, a token, or an Authorization header.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest

from imagepromoter import credentials, errors
from tests.fixtures_registry import Scanner, access, reader
from tests.servers import registry

pytestmark = pytest.mark.servers

MakeScanner = Callable[..., Scanner]

PRIVATE = "the image is private and no imagePullSecret is set"


def _creds(reg: registry.RegistryServer, who: str) -> credentials.BasicCredentials | None:
    return {
        "none": None,
        "wrong": credentials.BasicCredentials(reg.username, "wrong-" + reg.password),
        "right": reader(reg),
        "outsider": credentials.BasicCredentials(reg.outsider, reg.outsider_password),
    }[who]


CASES = [
    ("htpasswd", "none", "{host} answered 401 for {repo}: " + PRIVATE),
    (
        "htpasswd",
        "wrong",
        "{host} answered 401 for {repo}: the credentials in Secret ghcr-pull were refused; "
        "check the username and password (or token)",
    ),
    ("htpasswd", "right", None),
    ("token", "none", "{host} answered 401 for {repo}: " + PRIVATE),
    (
        "token",
        "wrong",
        "{realm} answered 401 to the token request for {repo}: the credentials in Secret "
        "ghcr-pull were refused; check the username and password (or token)",
    ),
    (
        "token",
        "outsider",
        "{host} answered 401 for {repo}: the credentials in Secret ghcr-pull cannot read it",
    ),
    ("token", "right", None),
]


def _secrets_in(exc: BaseException, reg: registry.RegistryServer) -> list[str]:
    text = " ".join([str(exc), repr(exc), *map(str, exc.args), *map(repr, exc.args)])
    secrets = [reg.password, reg.outsider_password, reg.pusher_password]
    secrets += [base64.b64encode(f"{reg.username}:{p}".encode()).decode() for p in secrets]
    if reg.tokens is not None:
        secrets += [r.token for r in reg.tokens.issued() if r.token]
    found = [s for s in secrets if s and s in text]
    return found + [w for w in ("Authorization", "Bearer ey", "Basic ") if w in text]


@pytest.mark.parametrize(
    ("mode", "who", "message"),
    CASES,
    ids=[f"{mode}-{who}" for mode, who, _ in CASES],
)
async def test_private_image(
    registry_htpasswd: registry.RegistryServer,
    registry_token: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    mode: str,
    who: str,
    message: str | None,
) -> None:
    reg = registry_htpasswd if mode == "htpasswd" else registry_token
    pushed = reg.push_image(repo_name, tags=["1.0.0", "1.1.0"])
    where = access(reg.host, repo_name, _creds(reg, who), "ghcr-pull")
    client = scanner()
    if message is None:
        assert sorted(await client.list_tags(where)) == ["1.0.0", "1.1.0"]
        assert await client.digest(where, "1.1.0") == pushed.digest
        return
    with pytest.raises(errors.AuthError) as caught:
        await client.list_tags(where)
    realm = reg.tokens.host if reg.tokens else ""
    assert str(caught.value).startswith(message.format(host=reg.host, repo=repo_name, realm=realm))
    assert _secrets_in(caught.value, reg) == []
    assert caught.value.__cause__ is None  # httpx errors (holding the request headers) stay out
    assert not caught.value.permanent


async def test_public_image_with_an_anonymous_token(
    registry_token: registry.RegistryServer, scanner: MakeScanner
) -> None:
    reg = registry_token
    assert reg.tokens is not None
    reg.push_image("public/app", tags=["2.0.0"])
    before = len(reg.tokens.issued())
    assert "2.0.0" in await scanner().list_tags(access(reg.host, "public/app"))
    (request,) = reg.tokens.issued()[before:]
    assert request.account is None
    assert request.scopes == ["repository:public/app:pull"]


async def test_one_token_per_scope_and_identity(
    registry_token: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    reg = registry_token
    assert reg.tokens is not None
    first = reg.push_image(repo_name, tags=["1.0.0"], created="2026-01-01T00:00:00Z")
    reg.seed_tags(repo_name, [f"1.0.{i}" for i in range(1, 30)], first.digest)
    reg.push_image(repo_name, tags=["2.0.0"], created="2026-02-01T00:00:00Z")
    where = access(reg.host, repo_name, reader(reg), "pull")
    client = scanner()
    before = len(reg.tokens.issued())

    # A fresh client's first requests all meet a 401 at once; only one of them fetches a token.
    created = await client.created(where, [f"1.0.{i}" for i in range(30)] + ["2.0.0"])
    assert len(created) == 31
    tags = await client.list_tags(where)
    await client.digest(where, tags[0])
    await client.created(where, tags)
    assert len(reg.tokens.issued()) - before == 1

    # Another identity (anonymous) on the same repository gets its own token, which fails here.
    with pytest.raises(errors.AuthError):
        await client.list_tags(access(reg.host, repo_name))
    assert [r.account for r in reg.tokens.issued()[before:]] == [reg.username, None]


async def test_token_refused_later_is_fetched_again_once(
    registry_token: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    fault_proxy: Callable[..., registry.FaultProxy],
) -> None:
    """ghcr.io gives no expires_in: a token is used until a 401, then replaced once."""
    reg = registry_token
    assert reg.tokens is not None
    reg.push_image(repo_name, tags=["1.0.0"])
    proxy = fault_proxy(reg.url)
    where = access(proxy.host, repo_name, reader(reg), "pull")
    client = scanner()
    await client.list_tags(where)
    before = len(reg.tokens.issued())
    challenge = (
        f'Bearer realm="{reg.tokens.realm}",service="{registry.SERVICE}",'
        f'scope="repository:{repo_name}:pull"'
    )
    proxy.add("status", path="/tags/list", status=401, headers={"WWW-Authenticate": challenge})
    proxy.clear()
    assert await client.list_tags(where) == ["1.0.0"]
    assert len(reg.tokens.issued()) - before == 1
    assert [(r.path.split("?")[0], r.authorized) for r in proxy.seen()] == [
        (f"/v2/{repo_name}/tags/list", True),
        (f"/v2/{repo_name}/tags/list", True),
    ]


async def test_a_401_after_a_fresh_token_is_not_retried_forever(
    registry_token: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    fault_proxy: Callable[..., registry.FaultProxy],
) -> None:
    reg = registry_token
    assert reg.tokens is not None
    reg.push_image(repo_name, tags=["1.0.0"])
    proxy = fault_proxy(reg.url)
    challenge = f'Bearer realm="{reg.tokens.realm}",service="{registry.SERVICE}"'
    proxy.add(
        "status", path="/tags/list", status=401, times=99, headers={"WWW-Authenticate": challenge}
    )
    with pytest.raises(errors.AuthError, match="cannot read it"):
        await scanner().list_tags(access(proxy.host, repo_name, reader(reg), "pull"))
    assert len(proxy.seen("/tags/list")) == 2


@pytest.mark.parametrize(
    ("status", "who", "words"),
    [
        (403, "right", "answered 403 for {repo}: the credentials in Secret pull cannot read it"),
        (403, "none", "answered 403 for {repo}: " + PRIVATE),
    ],
    ids=["403-with-credentials", "403-anonymous"],
)
async def test_forbidden(
    registry_htpasswd: registry.RegistryServer,
    repo_name: str,
    scanner: MakeScanner,
    fault_proxy: Callable[..., registry.FaultProxy],
    status: int,
    who: str,
    words: str,
) -> None:
    reg = registry_htpasswd
    reg.push_image(repo_name, tags=["1.0.0"])
    proxy = fault_proxy(reg.url)
    proxy.add(
        "status", path="/tags/list", status=status, times=9, body=b'{"errors":[{"code":"DENIED"}]}'
    )
    with pytest.raises(errors.AuthError) as caught:
        await scanner().list_tags(access(proxy.host, repo_name, _creds(reg, who), "pull"))
    assert words.format(repo=repo_name) in str(caught.value)
    assert "(registry says: DENIED)" in str(caught.value)
    assert _secrets_in(caught.value, reg) == []


async def test_concurrent_scans_share_the_token(
    registry_token: registry.RegistryServer, repo_name: str, scanner: MakeScanner
) -> None:
    reg = registry_token
    assert reg.tokens is not None
    reg.push_image(repo_name, tags=["1.0.0"])
    where = access(reg.host, repo_name, reader(reg), "pull")
    client = scanner()
    before = len(reg.tokens.issued())
    results = await asyncio.gather(*(client.list_tags(where) for _ in range(8)))
    assert results == [["1.0.0"]] * 8
    assert len(reg.tokens.issued()) - before == 1
