"""The receiver over real HTTP (aiohttp on 127.0.0.1) with an in-memory Directory.

The Directory is the Kubernetes side (kube/webhooks.py, exercised end to end in
test_webhook_e2e.py); here it is the simplest honest implementation, so these rows pin down the
HTTP contract of API.md: each bad input's answer, nothing recorded unless authenticated and
well-formed, a replayed delivery ignored, the record written before the 2xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import prometheus_client
import pytest

from imagepromoter.webhooks import auth, guards, model, receiver, routing
from tests.test_webhook_parsers import SEED_PAYLOAD, fixture

TOKEN = "t0ken-never-logged"
HUB_PATH = auth.secret_path(TOKEN, "hub", "gitops")


def candidate(
    name: str, regex: str, image: str = "ghcr.io/myorg/myapp", repo: str = "myorg/gitops"
) -> routing.Candidate:
    return routing.Candidate(
        name, "gitops", {"image": image, "tagRegex": regex,
                         "git": {"url": f"https://github.com/{repo}.git"}},
    )  # fmt: skip


@dataclass
class MemoryDirectory:
    hooks: list[receiver.Webhook]
    candidates: list[routing.Candidate]
    recorded: list[tuple[str, model.Trigger]] = field(default_factory=list)
    notes: list[tuple[str, str, int]] = field(default_factory=list)
    fail: bool = False

    async def webhooks(self, types: Sequence[str]) -> list[receiver.Webhook]:
        return [w for w in self.hooks if w.hook.type in types]

    async def promotions(self, namespace: str) -> list[routing.Candidate]:
        return [c for c in self.candidates if c.namespace == namespace]

    async def record(self, candidate: routing.Candidate, trigger: model.Trigger) -> None:
        if self.fail:
            raise RuntimeError("API down")
        self.recorded.append((candidate.name, trigger))

    async def noted(
        self, webhook: receiver.Webhook, delivery: str, promotions: int, at: str
    ) -> None:
        self.notes.append((webhook.hook.name, delivery, promotions))


def hook(name: str, type_: str, **kw: Any) -> receiver.Webhook:
    path = HUB_PATH if type_ in model.PATH_TYPES else None
    return receiver.Webhook(routing.Hook(name, "gitops", type_, **kw), TOKEN, path)


@dataclass
class Server:
    url: str
    directory: MemoryDirectory
    receiver: receiver.Receiver
    client: httpx.AsyncClient

    async def post(self, path: str, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post(self.url + path, content=data, headers=headers)

    def count(self, type_: str, outcome: str) -> float:
        return self.receiver.metrics.value(type_, outcome)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    directory = MemoryDirectory(
        hooks=[hook("upstream-ci", "github-dispatch"), hook("gh", "github"),
               hook("reg", "distribution"), hook("hub", "dockerhub"), hook("gen", "generic-hmac")],
        candidates=[candidate("myapp-dev", r"^\d+\.\d+\.\d+-dev$"),
                    candidate("myapp-prod", r"^\d+\.\d+\.\d+-(stable|prod)$"),
                    candidate("hub", r"^.*$", image="svendowideit/testhook", repo="o/hub")],
    )  # fmt: skip
    recv = receiver.Receiver(
        directory,
        metrics=receiver.Metrics(prometheus_client.CollectorRegistry()),
        limit=guards.RateLimit(rate=1000, burst=1000),
    )
    port = await recv.start(0, host="127.0.0.1")
    async with httpx.AsyncClient(timeout=10) as client:
        yield Server(f"http://127.0.0.1:{port}", directory, recv, client)
    await recv.stop()


DISPATCH = "/repos/myorg/gitops/dispatches"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def test_seed_dispatch_is_recorded_then_204(server: Server) -> None:
    resp = await server.post(DISPATCH, SEED_PAYLOAD, **BEARER, **{"X-GitHub-Delivery": "d1"})
    assert resp.status_code == 204 and resp.content == b""
    [(name, trigger)] = server.directory.recorded
    assert name == "myapp-dev" and trigger.tag == "1.4.2-dev"
    assert trigger.fields == SEED_PAYLOAD["client_payload"]
    assert (trigger.source, trigger.type, trigger.delivery) == (
        "upstream-ci",
        "github-dispatch",
        "d1",
    )
    assert server.directory.notes == [("upstream-ci", "d1", 1)]
    assert server.count("github-dispatch", "accepted") == 1


async def test_github_token_scheme_works_too(server: Server) -> None:
    resp = await server.post(DISPATCH, SEED_PAYLOAD, Authorization=f"token {TOKEN}")
    assert resp.status_code == 204 and len(server.directory.recorded) == 1


BIG = b'{"event_type": "e", "client_payload": {"x": "' + b"y" * auth.MAX_BODY + b'"}}'
ELEVEN = {"event_type": "e", "client_payload": {f"k{i}": "v" for i in range(11)}}

BAD = [
    # (id, path, body, headers, status, outcome)
    ("wrong-token", DISPATCH, SEED_PAYLOAD, {"Authorization": "Bearer x"}, 401, "unauthenticated"),
    ("missing-token", DISPATCH, SEED_PAYLOAD, {}, 401, "unauthenticated"),
    ("basic-auth", DISPATCH, SEED_PAYLOAD, {"Authorization": f"Basic {TOKEN}"}, 401,
     "unauthenticated"),
    ("oversized", DISPATCH, BIG, BEARER, 413, "malformed"),
    ("malformed-json", DISPATCH, b"{nope", BEARER, 400, "malformed"),
    ("eleven-keys", DISPATCH, ELEVEN, BEARER, 400, "malformed"),
    ("unknown-repository", "/repos/myorg/other/dispatches", SEED_PAYLOAD, BEARER, 204, "unmatched"),
    ("tag-fails-every-regex", DISPATCH,
     {"event_type": "e", "client_payload": {"docker_image_tag": "1.0.0-rc1"}}, BEARER, 204,
     "unmatched"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "outcome"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
async def test_bad_dispatch_inputs(
    server: Server, path: str, body: Any, headers: dict[str, str], status: int, outcome: str
) -> None:
    resp = await server.post(path, body, **headers)
    assert resp.status_code == status, resp.text
    assert server.directory.recorded == []
    assert server.count("github-dispatch", outcome) == 1


def signed(body: bytes, header: str = "X-Hub-Signature-256", **extra: str) -> dict[str, str]:
    return {header: auth.sign(body, TOKEN), **extra}


async def test_github_package_signed_sha256_only(server: Server) -> None:
    body = fixture("argocd-ghcr-package-published.json")
    doc = json.loads(body)
    doc["package"]["owner"]["login"], doc["package"]["name"] = "myorg", "myapp"
    doc["package"]["package_version"]["container_metadata"]["tag"]["name"] = "2.0.0-dev"
    body = json.dumps(doc).encode()
    sha1 = {"X-Hub-Signature": "sha1=" + "0" * 40, "X-GitHub-Event": "package"}
    assert (await server.post("/hook/github", body, **sha1)).status_code == 401
    wrong = {"X-Hub-Signature-256": auth.sign(body + b" ", TOKEN), "X-GitHub-Event": "package"}
    assert (await server.post("/hook/github", body, **wrong)).status_code == 401
    assert server.directory.recorded == []
    good = signed(body, **{"X-GitHub-Event": "package", "X-GitHub-Delivery": "g1"})
    resp = await server.post("/hook/github", body, **good)
    assert resp.status_code == 202
    assert [(n, t.tag) for n, t in server.directory.recorded] == [("myapp-dev", "2.0.0-dev")]
    # the same delivery again: acknowledged, ignored
    again = await server.post("/hook/github", body, **good)
    assert again.status_code == 202 and len(server.directory.recorded) == 1
    assert (
        server.count("github", "replayed") == 1 and server.count("github", "unauthenticated") == 2
    )


async def test_github_ping(server: Server) -> None:
    body = fixture("github-ping.json")
    resp = await server.post("/hook/github", body, **signed(body, **{"X-GitHub-Event": "ping"}))
    assert resp.status_code == 202 and "ping" in resp.json()["message"]
    assert server.count("github", "unmatched") == 1


async def test_distribution_bearer(server: Server) -> None:
    envelope = {"events": [{"action": "push", "target": {"repository": "myorg/myapp",
                 "tag": "3.0.0-stable", "mediaType": "application/vnd.oci.image.index.v1+json"},
                 "request": {"host": "ghcr.io"}}]}  # fmt: skip
    resp = await server.post("/hook/distribution", envelope, **BEARER)
    assert resp.status_code == 202
    assert [(n, t.tag) for n, t in server.directory.recorded] == [("myapp-prod", "3.0.0-stable")]
    assert (await server.post("/hook/distribution", envelope)).status_code == 401


async def test_dockerhub_secret_path(server: Server) -> None:
    body = fixture("dockerhub-push.json")
    assert (await server.post("/hook/" + "0" * 64, body)).status_code == 401
    resp = await server.post(HUB_PATH, body)
    assert resp.status_code == 202
    assert [(n, t.tag) for n, t in server.directory.recorded] == [("hub", "latest")]


async def test_generic_hmac(server: Server) -> None:
    body = json.dumps(
        {"image": "ghcr.io/myorg/myapp", "tag": "1.0.0-dev", "git_commit": "abc"}
    ).encode()
    assert (
        await server.post("/hook/generic", body, **{"X-Signature": "sha256=00"})
    ).status_code == 401
    resp = await server.post("/hook/generic", body, **signed(body, "X-Signature"))
    assert resp.status_code == 202
    [(name, trigger)] = server.directory.recorded
    assert name == "myapp-dev" and trigger.fields == {"git_commit": "abc"}


async def test_unknown_path_method_and_rate_limit(server: Server) -> None:
    assert (await server.post("/nope", b"{}")).status_code == 404
    assert (await server.client.get(server.url + DISPATCH)).status_code == 405
    server.receiver.limit = guards.RateLimit(rate=0.0001, burst=1)
    assert (await server.post(DISPATCH, SEED_PAYLOAD, **BEARER)).status_code == 204
    assert (await server.post(DISPATCH, SEED_PAYLOAD, **BEARER)).status_code == 429


async def test_failed_record_is_503_and_redelivery_works(server: Server) -> None:
    server.directory.fail = True
    headers = {**BEARER, "X-GitHub-Delivery": "d2"}
    assert (await server.post(DISPATCH, SEED_PAYLOAD, **headers)).status_code == 503
    assert server.count("github-dispatch", "failed") == 1
    server.directory.fail = False
    assert (await server.post(DISPATCH, SEED_PAYLOAD, **headers)).status_code == 204
    assert len(server.directory.recorded) == 1, "the failed delivery was not remembered"


async def test_no_secret_or_payload_in_logs(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_payload = {"event_type": "e", "client_payload": {"docker_image_tag": "1.0.0-dev",
                      "commit_message": "payload-secret-text"}}  # fmt: skip
    await server.post(DISPATCH, secret_payload, **BEARER)
    await server.post(DISPATCH, secret_payload, Authorization="Bearer wrong-" + TOKEN)
    await asyncio.sleep(0)
    assert caplog.text and TOKEN not in caplog.text and "payload-secret-text" not in caplog.text
    assert TOKEN not in repr(server.directory.hooks)


async def test_tls_from_a_certificate_and_key(tmp_path: Any) -> None:
    """--webhook-tls-cert/--webhook-tls-key: the receiver speaks TLS with that certificate."""
    from imagepromoter import cli
    from tests.servers.registry import TlsFiles

    tls = TlsFiles.self_signed(tmp_path / "tls")
    context = cli._webhook_tls(tls.certificate, tls.key)
    assert context is not None
    dev = candidate("myapp-dev", r"^\d+\.\d+\.\d+-dev$")
    directory = MemoryDirectory(hooks=[hook("upstream-ci", "github-dispatch")], candidates=[dev])
    recv = receiver.Receiver(
        directory, metrics=receiver.Metrics(prometheus_client.CollectorRegistry())
    )
    port = await recv.start(0, host="127.0.0.1", ssl_context=context)
    try:
        url = f"https://127.0.0.1:{port}{DISPATCH}"
        async with httpx.AsyncClient(verify=tls.client_context()) as client:
            resp = await client.post(url, content=json.dumps(SEED_PAYLOAD), headers=BEARER)
        assert resp.status_code == 204 and len(directory.recorded) == 1
        async with httpx.AsyncClient(verify=True) as client:  # the system CAs do not know it
            with pytest.raises(httpx.ConnectError):
                await client.post(url, content=b"{}", headers=BEARER)
    finally:
        await recv.stop()
    with pytest.raises(SystemExit, match="go together"):
        cli._webhook_tls(tls.certificate, None)


def test_cli_webhook_options() -> None:
    from imagepromoter import cli

    args = cli.build_parser().parse_args(["run"])
    assert args.webhook_port == 9443 and args.webhook_tls_cert is None
    args = cli.build_parser().parse_args(["run", "--webhook-port", "0"])
    assert args.webhook_port == 0  # no receiver


async def chunks(data: bytes, size: int = 10_000) -> Any:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_chunked_bodies_are_read_whole_and_capped(server: Server) -> None:
    """No Content-Length: the body arrives in pieces; read to the end, or 413 past 1 MiB."""
    long_message = "m" * 4000
    payload = {"event_type": "e", "client_payload": {"docker_image_tag": "1.0.0-dev",
               "commit_message": long_message, "padding": "p" * 4000}}  # fmt: skip
    data = json.dumps(payload).encode() + b" " * 200_000  # trailing whitespace is still JSON
    resp = await server.client.post(server.url + DISPATCH, content=chunks(data), headers=BEARER)
    assert resp.status_code == 204, resp.text
    [(_, trigger)] = server.directory.recorded
    assert trigger.fields["commit_message"] == long_message
    big = b'{"event_type": "e", "x": "' + b"y" * (auth.MAX_BODY + 10) + b'"}'
    resp = await server.client.post(server.url + DISPATCH, content=chunks(big, 100_000),
                                    headers=BEARER)  # fmt: skip
    assert resp.status_code == 413 and len(server.directory.recorded) == 1


async def test_a_malformed_value_is_not_echoed(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payload = {"event_type": "e", "client_payload": {"docker_image_tag": "secret value!"}}
    resp = await server.post(DISPATCH, payload, **BEARER)
    assert resp.status_code == 400 and "docker_image_tag" in resp.text
    assert "secret value" not in resp.text and "secret value" not in caplog.text


# Each sender's real payload (shared/fixtures/webhooks), routed through the receiver.
ROUTED = [
    # (fixture or body, path, headers builder, CRs, expected reached -> tag)
    ("dockerhub-push.json", "dockerhub",
     [candidate("hub", r"^.*$", image="svendowideit/testhook", repo="o/hub")], {"hub": "latest"}),
    ("harbor-push-artifact-default.json", "harbor",
     [candidate("alpine", r"^.*$", image="localhost/harbor/alpine", repo="o/a")], {"alpine": None}),
    ("argocd-ghcr-package-published.json", "github",
     [candidate("guestbook", r"^\d+\.\d+\.\d+$", image="ghcr.io/nitishfy/guestbook", repo="o/g")],
     {"guestbook": "5.5.9"}),
    ("github-package-published-docker.json", "github",
     [candidate("hello", r"^.*$", image="ghcr.io/codertocat/hello-world", repo="o/h")],
     {"hello": None}),
    ("distribution-push-envelope-v2.json", "distribution",
     [candidate("test", r"^.*$", image="registrycluster.local/library/test", repo="o/t")], {}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "type_", "crs", "expected"), ROUTED, ids=[r[0] for r in ROUTED])
async def test_real_payloads_route(
    name: str, type_: str, crs: list[routing.Candidate], expected: dict[str, str | None]
) -> None:
    directory = MemoryDirectory(hooks=[hook("h", type_)], candidates=crs)
    recv = receiver.Receiver(
        directory, metrics=receiver.Metrics(prometheus_client.CollectorRegistry())
    )
    port = await recv.start(0, host="127.0.0.1")
    data = fixture(name)
    headers: dict[str, str] = {}
    path = {"github": "/hook/github", "distribution": "/hook/distribution"}.get(type_, HUB_PATH)
    if type_ == "github":
        headers = {"X-GitHub-Event": "package", "X-Hub-Signature-256": auth.sign(data, TOKEN)}
    if type_ == "distribution":
        headers = {**BEARER, "Content-Type": "application/vnd.docker.distribution.events.v2+json"}
    try:
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"http://127.0.0.1:{port}{path}", content=data, headers=headers
            )
        assert resp.status_code == 202, resp.text
        assert {n: t.tag for n, t in directory.recorded} == expected
        outcome = "accepted" if expected else "unmatched"
        assert recv.metrics.value(type_, outcome) == 1
    finally:
        await recv.stop()
