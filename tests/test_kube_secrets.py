"""kube/secrets.py against the kmock API emulator over real HTTP: 403, 404, 5xx, base64, slowness.

Kopf's API client needs its credentials vault in the context (the operator sets it up at login);
the fixture does the same with the emulator's URL, so `KopfSecrets.read` runs exactly as in the
operator. The emulator's reactions (`api[...] << 403`) answer ahead of its stored objects.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import kmock
import kopf
import pytest
from kopf._cogs.clients import auth
from kopf._cogs.structs import credentials as kopf_credentials

from imagepromoter import errors, reconcile
from imagepromoter.kube import secrets
from tests.kmock_emulator import Emulator

NS = "gitops"


@pytest.fixture
async def api() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        emulator.resources.load_bundled()
        vault = kopf_credentials.Vault()
        await vault.populate({"emulator": kopf.ConnectionInfo(server=str(server.url).rstrip("/"))})
        token = auth.vault_var.set(vault)
        try:
            yield emulator
        finally:
            auth.vault_var.reset(token)
            await vault.close()


async def put_secret(api: Emulator, name: str, data: dict[str, str]) -> None:
    resp = await api.post(
        f"/api/v1/namespaces/{NS}/secrets",
        json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data},
    )
    assert resp.status in (200, 201), await resp.text()


def reader() -> secrets.KopfSecrets:
    return secrets.KopfSecrets(kopf.OperatorSettings())


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_reads_and_decodes(api: Emulator) -> None:
    await put_secret(api, "git", {"username": b64("promoter"), "password": b64("pässword")})
    assert await reader().read(NS, "git") == {"username": "promoter", "password": "pässword"}


async def test_missing_secret_is_none(api: Emulator) -> None:
    assert await reader().read(NS, "absent") is None


async def test_base64_with_line_breaks(api: Emulator) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "A" * 200 + "\n-----END-----\n"
    encoded = base64.encodebytes(key.encode()).decode()  # wrapped every 76 characters
    assert "\n" in encoded.strip()
    await put_secret(api, "ssh", {"identity": encoded, "known_hosts": b64("host ssh-ed25519 AAA")})
    assert (await reader().read(NS, "ssh"))["identity"] == key


async def test_not_base64_names_the_key_not_the_value(api: Emulator) -> None:
    await put_secret(api, "bad", {"password": "not base64 at all!"})
    with pytest.raises(errors.SecretReadError) as caught:
        await reader().read(NS, "bad")
    assert "key password" in caught.value.message and "at all" not in caught.value.message


def requests_to(api: Emulator, path: str) -> int:
    return sum(1 for r in list(api.history) if str(getattr(r, "url", "")).endswith(path))


async def test_forbidden_says_which_grant_is_missing(api: Emulator) -> None:
    api[f"get /api/v1/namespaces/{NS}/secrets/locked"] << 403
    with pytest.raises(errors.SecretReadError) as caught:
        await reader().read(NS, "locked")
    assert "grant it `get` on secrets" in caught.value.message
    assert isinstance(caught.value, errors.PromotionError), "in the error tree"
    assert requests_to(api, "/secrets/locked") == 1, "Kopf's own retries (a minute) are off"


async def test_an_upstream_read_forbidden_is_waiting_at_once(api: Emulator) -> None:
    """kube/stages.py reads spec.from's upstream the same way: one request, then Waiting."""
    from imagepromoter import gates
    from imagepromoter.kube import stages as kube_stages

    path = f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/dev"
    api[f"get {path}"] << 403
    upstreams = kube_stages.KopfUpstreams()
    upstreams.settings = kopf.OperatorSettings()
    with pytest.raises(gates.Waiting) as caught:
        await upstreams.read(NS, "dev")
    assert "HTTP 403" in caught.value.message and "RBAC" in caught.value.message
    assert requests_to(api, path) == 1


async def test_server_error_is_temporary(api: Emulator) -> None:
    api[f"get /api/v1/namespaces/{NS}/secrets/flaky"] << 503
    with pytest.raises(errors.SecretReadError) as caught:
        await reader().read(NS, "flaky")
    assert "HTTP 503" in caught.value.message and caught.value.retry is errors.Retry.BACKOFF


async def test_an_answer_that_is_not_json_is_a_secret_read_error(api: Emulator) -> None:
    api[f"get /api/v1/namespaces/{NS}/secrets/garbage"] << b"<html>proxy error</html>"
    with pytest.raises(errors.SecretReadError) as caught:
        await reader().read(NS, "garbage")
    assert "answered nonsense" in caught.value.message


# --- through reconcile: the message reaches the status under the phase's reason ---------------


class NoRegistry:
    async def list_tags(self, access: Any) -> list[str]:
        raise AssertionError("the registry must not be read")

    async def digest(self, access: Any, tag: str) -> str:
        raise AssertionError("the registry must not be read")

    async def created(self, access: Any, tags: Any) -> dict[str, Any]:
        raise AssertionError("the registry must not be read")


class NoGit:
    def write(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("git must not be written")


def resource(**spec: Any) -> reconcile.Resource:
    base: dict[str, Any] = {
        "image": "registry.example/myorg/myapp",
        "tagRegex": r"^\d+\.\d+\.\d+$",
        "git": {"url": "https://git.example/gitops.git", "branch": "main"},
        "targets": [{"path": "values.yaml", "key": "image.tag"}],
    }
    base.update(spec)
    return reconcile.Resource(name="app", namespace=NS, spec=base, generation=1)


async def run(res: reconcile.Resource, deadline: float | None = 30.0) -> reconcile.Result:
    return await reconcile.reconcile(
        res,
        registry=NoRegistry(),
        git=NoGit(),
        secrets=reader(),
        now=lambda: datetime(2026, 12, 1, tzinfo=UTC),
        deadline=deadline,
    )


async def test_forbidden_pull_secret_reaches_the_status_as_auth_error(api: Emulator) -> None:
    api[f"get /api/v1/namespaces/{NS}/secrets/pull"] << 403
    result = await run(resource(imagePullSecret="pull"))
    assert result.outcome.reason == "AuthError"
    assert "grant it `get` on secrets" in result.outcome.message
    assert "unexpected" not in result.outcome.message


async def test_a_secret_read_that_never_answers_ends_at_the_deadline(api: Emulator) -> None:
    never = asyncio.Event()
    api[f"get /api/v1/namespaces/{NS}/secrets/slow"] << never.wait
    result = await run(resource(imagePullSecret="slow"), deadline=0.5)
    assert result.outcome.reason == "AuthError"
    message = result.outcome.message
    assert "deadline (0.5s)" in message and "reading Secret slow in namespace gitops" in message
    assert "Kubernetes API" in message
