"""kube/secrets.py against the kmock API emulator over real HTTP: 403, 404, 5xx, base64, slowness,
and one request per Secret per cycle (single-flight, the short cache, what it never remembers).

Kopf's API client needs its credentials vault in the context (the operator sets it up at login);
the fixture (operator_harness.emulated) does the same with the emulator's URL, so
`KopfSecrets.read` runs exactly as in the operator. The emulator's reactions (`api[...] << 403`)
answer ahead of its stored objects.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest

from imagepromoter import errors, reconcile
from imagepromoter.kube import secrets
from tests.kmock_emulator import Emulator
from tests.operator_harness import emulated

NS = "gitops"


@pytest.fixture
async def api() -> AsyncIterator[Emulator]:
    async with emulated(vault=True) as emulator:
        yield emulator


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


# --- one read per Secret per cycle: single-flight and a short cache ---------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cached(clock: Clock, max_age: float = 10.0) -> secrets.KopfSecrets:
    return secrets.KopfSecrets(kopf.OperatorSettings(), max_age=max_age, clock=clock)


async def test_twenty_passes_naming_one_secret_read_it_once(api: Emulator) -> None:
    await put_secret(api, "git", {"password": b64("pw")})
    clock = Clock()
    reader_ = cached(clock)
    got = await asyncio.gather(*(reader_.read(NS, "git") for _ in range(20)))
    assert got == [{"password": "pw"}] * 20
    assert requests_to(api, "/secrets/git") == 1, "one request in flight for all twenty"
    clock.now += 9.9
    assert await reader_.read(NS, "git") == {"password": "pw"}
    assert requests_to(api, "/secrets/git") == 1, "served from memory within max_age"
    clock.now += 0.1
    await reader_.read(NS, "git")
    assert requests_to(api, "/secrets/git") == 2, "read again once max_age has passed"


async def test_an_edited_secret_takes_effect_after_max_age(api: Emulator) -> None:
    await put_secret(api, "git", {"password": b64("old")})
    clock = Clock()
    reader_ = cached(clock)
    assert await reader_.read(NS, "git") == {"password": "old"}
    resp = await api.patch(
        f"/api/v1/namespaces/{NS}/secrets/git",
        json={"data": {"password": b64("new")}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 200
    assert await reader_.read(NS, "git") == {"password": "old"}, "within the same cycle"
    clock.now += 10.0
    assert await reader_.read(NS, "git") == {"password": "new"}, "at the next cycle"


async def test_a_caller_changing_the_values_does_not_change_the_cache(api: Emulator) -> None:
    await put_secret(api, "git", {"password": b64("pw")})
    reader_ = cached(Clock())
    first = await reader_.read(NS, "git")
    assert first is not None
    first["password"] = "changed"
    assert await reader_.read(NS, "git") == {"password": "pw"}


async def test_a_missing_secret_is_remembered_too(api: Emulator) -> None:
    reader_ = cached(Clock())
    assert await reader_.read(NS, "absent") is None
    assert await reader_.read(NS, "absent") is None
    assert requests_to(api, "/secrets/absent") == 1


@pytest.mark.parametrize("code", [403, 500, 503], ids=str)
async def test_a_refusal_or_a_server_error_is_not_remembered(api: Emulator, code: int) -> None:
    api[f"get /api/v1/namespaces/{NS}/secrets/locked"] << code
    reader_ = cached(Clock())
    for _ in range(2):
        with pytest.raises(errors.SecretReadError):
            await reader_.read(NS, "locked")
    assert requests_to(api, "/secrets/locked") == 2


async def test_without_max_age_only_concurrent_reads_are_shared(api: Emulator) -> None:
    await put_secret(api, "git", {"password": b64("pw")})
    reader_ = reader()  # the default: max_age 0
    await asyncio.gather(reader_.read(NS, "git"), reader_.read(NS, "git"))
    assert requests_to(api, "/secrets/git") == 1
    await reader_.read(NS, "git")
    assert requests_to(api, "/secrets/git") == 2


async def test_a_flight_ends_when_its_last_waiter_gives_up(api: Emulator) -> None:
    never = asyncio.Event()
    api[f"get /api/v1/namespaces/{NS}/secrets/slow"] << never.wait
    reader_ = cached(Clock())
    waiters = [asyncio.create_task(reader_.read(NS, "slow")) for _ in range(2)]
    await asyncio.wait_for(arrived(api, "/secrets/slow"), 10)
    (flight,) = reader_._flights.values()
    waiters[0].cancel()
    await asyncio.gather(waiters[0], return_exceptions=True)
    assert not flight.task.done(), "another pass still waits for it"
    waiters[1].cancel()
    await asyncio.gather(waiters[1], return_exceptions=True)
    await asyncio.gather(flight.task, return_exceptions=True)
    assert flight.task.cancelled() and reader_._flights == {}
    assert requests_to(api, "/secrets/slow") + requests_to_in_flight(api, "/secrets/slow") == 1


async def arrived(api: Emulator, path: str) -> None:
    """Until the emulator holds a request to `path` (yielding to the loop, no sleeping)."""
    while requests_to_in_flight(api, path) < 1:
        await asyncio.sleep(0)


def requests_to_in_flight(api: Emulator, path: str) -> int:
    return sum(1 for r in list(api._requests) if str(getattr(r, "url", "")).endswith(path))


async def test_values_are_never_logged(api: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    await put_secret(api, "git", {"password": b64("s3cr3t-value")})
    reader_ = cached(Clock())
    await asyncio.gather(*(reader_.read(NS, "git") for _ in range(3)))
    assert "s3cr3t-value" not in caplog.text and b64("s3cr3t-value") not in caplog.text
