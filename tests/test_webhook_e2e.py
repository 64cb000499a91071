"""Webhooks end to end: the operator (Kopf on the kmock emulator) serving its webhook port, the
real docker-registry and the real git server, as in test_operator_e2e.py.

- The seed's curl command line (tests/fixtures/seed-dispatch.sh, only host and token changed)
  run by the real curl promotes the dispatched -dev tag into environments/dev/values.yaml, with
  git_branch written by a seed-style regex target, the seed's commit message and author, and
  prod left alone; a -stable dispatch promotes prod only.
- docker-registry with notifications.endpoints pointing at the receiver: a push is promoted
  without waiting for the interval (1h here).
- Each bad input gets its documented HTTP answer and makes no commit; the last, good, request
  is the barrier (Kopf handles one CR's changes in order), never a sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import kmock
import kopf
import prometheus_client
import pytest
import yaml

from imagepromoter import scans
from imagepromoter.kube import handlers, metrics
from imagepromoter.webhooks import auth, model
from tests.conftest import need_server
from tests.kmock_emulator import Emulator
from tests.operator_harness import (
    CRD,
    NS,
    Cluster,
    Running,
    emulated,
    eventually,
    secret,
    start_operator,
    stop_operator,
)
from tests.servers import free_port, git_http
from tests.servers import registry as registry_server

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parent.parent
IWH_CRD = yaml.safe_load((ROOT / "crds" / "imagewebhook.yaml").read_text())
CURL = (ROOT / "tests" / "fixtures" / "seed-dispatch.sh").read_text().strip()
DISPATCH_TOKEN = "dispatch-t0ken-" + os.urandom(4).hex()
REGISTRY_TOKEN = "registry-t0ken-" + os.urandom(4).hex()
GITHUB_SECRET = "github-s3cret-" + os.urandom(4).hex()
SEED_VALUES = 'imageTag: "{tag}"\ngit_branch: "main"\nreplicas: 2\n'
SEED_MESSAGE = (
    "Branch ${git_branch:-main} led to updated Docker image '${tag}': ${commit_message:-}"
)
_repos = iter(range(10_000))


@dataclass
class Hooked:
    running: Running
    registry: registry_server.RegistryServer
    repository: str
    repo: Path
    port: int
    adapters: handlers.Adapters
    options: handlers.Options
    metrics: metrics.Metrics

    @property
    def cluster(self) -> Cluster:
        return self.running.cluster

    async def push(self, *tags: str) -> None:
        await asyncio.to_thread(self.registry.push_image, self.repository, tags=list(tags))

    def values(self, env: str) -> str:
        path = f"environments/{env}/values.yaml"
        return git_http.read_file(self.repo, "main", path).decode()

    def commits(self, fmt: str = "%s") -> list[str]:
        return git_http.log(self.repo, "main", fmt)

    def count(self, type_: str, outcome: str) -> float:
        value = self.running.metrics.registry.get_sample_value(
            "imagepromoter_webhook_requests_total", {"type": type_, "outcome": outcome}
        )
        return float(value or 0)

    async def curl(self, tag: str, branch: str, message: str, token: str = DISPATCH_TOKEN) -> str:
        """The seed's command line, host changed; returns the HTTP status curl saw."""
        command = CURL.replace("https://promoter.example.com", f"http://127.0.0.1:{self.port}")
        assert command.count("127.0.0.1") == 1 and "$TOKEN" in command
        home = Path(self.registry.base_dir) / "curl-home"
        home.mkdir(exist_ok=True)
        (home / ".curlrc").write_text('silent\nwrite-out = "%{http_code}"\n')  # not the command
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "TOKEN": token,
               "DOCKER_IMAGE_TAG": tag, "GIT_BRANCH": branch,
               "COMMIT_MESSAGE": message}  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], env=env, capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()[-3:]


def seed_cr(name: str, env: str, regex: str, hooked_url: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": name, "namespace": NS, "labels": {"env": env}},
        "spec": {
            "image": image,
            "imagePullSecret": "ghcr-pull",
            "insecure": True,
            "tagRegex": regex,
            "interval": "1h",
            "git": {
                "url": hooked_url,
                "insecure": True,  # the local git server speaks plain HTTP
                "branch": "main",
                "secretRef": "gitops-write",
                "author": {"name": "build", "email": "build@internal"},
                "commitMessage": SEED_MESSAGE,
            },
            "targets": [
                {"path": f"environments/{env}/values.yaml", "regex": 'imageTag: "(?P<value>.*)"'},
                {
                    "path": f"environments/{env}/values.yaml",
                    "regex": 'git_branch: "(?P<value>.*)"',
                    "value": "${git_branch:-main}",
                },
            ],
        },
    }


def webhook(name: str, type_: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImageWebhook",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"type": type_, "secretRef": name, **spec},
    }


async def create(api: Emulator, doc: dict[str, Any]) -> None:
    plural = {"Secret": "secrets", "ImagePromotion": "imagepromotions",
              "ImageWebhook": "imagewebhooks"}[doc["kind"]]  # fmt: skip
    prefix = "/api/v1" if doc["kind"] == "Secret" else "/apis/imagepromoter.dev/v1alpha1"
    resp = await api.post(f"{prefix}/namespaces/{NS}/{plural}", json=doc)
    assert resp.status in (200, 201), await resp.text()


def iwh(api: Emulator, name: str) -> dict[str, Any]:
    resource = kmock.resource("imagepromoter.dev", "v1alpha1", "imagewebhooks")
    return api.read_object(resource, NS, name) or {}


@pytest.fixture
async def api() -> AsyncIterator[Emulator]:
    async with emulated(CRD, IWH_CRD) as emulator:
        yield emulator


Start = Callable[..., Awaitable[Hooked]]


@pytest.fixture
async def hooked(
    api: Emulator, git_http_server: Any, repo_name: str, tmp_path: Path
) -> AsyncIterator[Start]:
    """`await hooked(notify=False)`: servers, operator, Secrets, ImageWebhooks and the two CRs."""
    made: list[Hooked] = []

    async def start(*, notify: bool = False) -> Hooked:
        port = free_port()
        endpoints = [(f"http://127.0.0.1:{port}/hook/distribution", REGISTRY_TOKEN)]
        reg = need_server(
            lambda: registry_server.start(
                tmp_path / "registry", auth="htpasswd", notify=endpoints if notify else ()
            )
        )
        name = f"w{next(_repos)}/myorg/gitops"  # ends in myorg/gitops, as the curl names it
        url = git_http_server.create_repo(name, {
            "environments/dev/values.yaml": SEED_VALUES.format(tag="1.0.0-dev"),
            "environments/prod/values.yaml": SEED_VALUES.format(tag="1.0.0-stable"),
        })  # fmt: skip
        repository = repo_name
        await asyncio.to_thread(reg.push_image, repository, tags=["1.0.0-dev", "1.0.0-stable"])
        collector = metrics.Metrics(prometheus_client.CollectorRegistry())

        def registry() -> scans.SharedScans:
            from imagepromoter.registry import client

            return scans.SharedScans(client.RegistryClient(requests_per_second=10_000.0))

        from imagepromoter.git import writer

        adapters = handlers.Adapters(
            registry_factory=registry,
            git=writer.GitWriter(tmp_path / "work", retries=3, sleep=lambda s: None),
        )
        options = handlers.Options(
            tick=0.1, base_backoff=timedelta(seconds=0.2), webhook_port=port,
            webhook_host="127.0.0.1",
        )  # fmt: skip
        running = await start_operator(api, adapters, options=options, metrics_=collector)
        state = Hooked(running, reg, repository, git_http_server.repo_path(name), port,
                       adapters, options, collector)  # fmt: skip
        made.append(state)
        auths = {reg.host: {"username": reg.username, "password": reg.password}}
        for doc in (
            secret("gitops-write", username=git_http_server.username,
                   password=git_http_server.password),
            secret("ghcr-pull", **{".dockerconfigjson": json.dumps({"auths": auths})}),
            secret("upstream-ci", token=DISPATCH_TOKEN),
            secret("registry", token=REGISTRY_TOKEN),
            secret("gh", token=GITHUB_SECRET),
            webhook("upstream-ci", "github-dispatch", eventTypes=["update-gitops-repo"]),
            webhook("registry", "distribution"),
            webhook("gh", "github"),
            seed_cr("myapp-dev", "dev", r"^(?P<version>\d+\.\d+\.\d+)-dev$", url,
                    f"{reg.host}/{repository}"),
            seed_cr("myapp-prod", "prod", r"^(?P<version>\d+\.\d+\.\d+)-(stable|prod)$", url,
                    f"{reg.host}/{repository}"),
        ):  # fmt: skip
            await create(api, doc)
        cluster = running.cluster
        for name_ in ("myapp-dev", "myapp-prod"):
            await eventually(lambda n=name_: cluster.ready(n).get("reason") == "UpToDate",
                             f"{name_} UpToDate")  # fmt: skip
        await eventually(
            lambda: (iwh(api, "upstream-ci").get("status") or {}).get("path"), "webhook path"
        )
        return state

    yield start
    for state in made:
        await stop_operator(state.running)
        state.registry.stop()


def handled(running: Running, name: str, delivery: str) -> bool:
    """Whether the operator answered the trigger of `delivery` on the CR (its pass ended)."""
    uid = ((running.cluster.ipr(name) or {}).get("metadata") or {}).get("uid")
    answered = running.state().triggers.last_answered(uid) if uid else None
    trigger = model.decode(answered)
    return trigger is not None and trigger.delivery == delivery


def dev_tag(hooked: Hooked) -> str:
    return hooked.cluster.status("myapp-dev").get("promotedTag", "")


async def test_seed_curl_promotes_dev_only(hooked: Start) -> None:
    h = await hooked()
    before = h.commits()
    await h.push("1.1.0-dev")
    status = await h.curl("1.1.0-dev", "feature/login", "Fix the login form")
    assert status == "204"
    await eventually(lambda: dev_tag(h) == "1.1.0-dev", "1.1.0-dev promoted by the dispatch")
    assert h.values("dev") == 'imageTag: "1.1.0-dev"\ngit_branch: "feature/login"\nreplicas: 2\n'
    assert h.values("prod") == SEED_VALUES.format(tag="1.0.0-stable")
    assert h.commits() == [
        "Branch feature/login led to updated Docker image '1.1.0-dev': Fix the login form",
        *before,
    ]
    assert h.commits("%an <%ae>")[0] == "build <build@internal>"
    status_dev = h.cluster.status("myapp-dev")
    assert status_dev["trigger"]["fields"]["git_branch"] == "feature/login"
    assert status_dev["trigger"]["source"] == "upstream-ci"

    def reasons() -> list[tuple[str, str]]:
        return [(e["type"], e["reason"]) for e in h.cluster.events("myapp-dev")]

    # Kopf posts events from a queue: the Promoted one may land after the status patch
    await eventually(lambda: ("Normal", "Promoted") in reasons(), "the Promoted event")
    assert ("Normal", "Webhook") in reasons()
    webhook_event = next(e for e in h.cluster.events("myapp-dev") if e["reason"] == "Webhook")
    assert "upstream-ci" in webhook_event["message"] and "delivery" in webhook_event["message"]
    assert h.cluster.status("myapp-prod")["promotedTag"] == "1.0.0-stable"
    assert h.count("github-dispatch", "accepted") == 1


async def test_stable_dispatch_promotes_prod_only(hooked: Start) -> None:
    h = await hooked()
    await h.push("1.1.0-stable", "1.1.0-dev")
    assert await h.curl("1.1.0-stable", "release/1.1", "Release 1.1") == "204"
    await eventually(
        lambda: h.cluster.status("myapp-prod").get("promotedTag") == "1.1.0-stable",
        "prod promoted",
    )
    assert 'git_branch: "release/1.1"' in h.values("prod")
    assert h.values("dev") == SEED_VALUES.format(tag="1.0.0-dev"), "dev was not reached"
    assert dev_tag(h) == "1.0.0-dev"


async def test_registry_notification_promotes_without_waiting(hooked: Start) -> None:
    h = await hooked(notify=True)
    before = len(h.commits())
    await h.push("1.2.0-dev")  # the registry POSTs its envelope to /hook/distribution
    await eventually(lambda: dev_tag(h) == "1.2.0-dev", "1.2.0-dev promoted by the registry")
    assert len(h.commits()) == before + 1
    assert 'imageTag: "1.2.0-dev"' in h.values("dev") and 'git_branch: "main"' in h.values("dev")
    assert h.cluster.status("myapp-prod")["promotedTag"] == "1.0.0-stable"
    assert h.count("distribution", "accepted") >= 1
    assert (iwh(h.running.cluster.api, "registry").get("status") or {}).get("lastEvent")


def body(tag: str, **payload: str) -> bytes:
    payload = {"docker_image_tag": tag, **payload}
    return json.dumps({"event_type": "update-gitops-repo", "client_payload": payload}).encode()


BEARER = {"Authorization": f"Bearer {DISPATCH_TOKEN}"}
DISPATCH = "/repos/myorg/gitops/dispatches"
PACKAGE = json.dumps({"action": "published", "package": {"name": "app", "package_type": "container",
                      "owner": {"login": "t"}, "package_version": {"container_metadata": {
                          "tag": {"name": "1.5.0-dev"}}}}}).encode()  # fmt: skip


async def test_bad_inputs_get_their_answer_and_make_no_commit(hooked: Start) -> None:
    h = await hooked()
    await h.push("1.1.0-debug")
    before = h.commits()
    eleven = json.dumps({"event_type": "e", "client_payload": {f"k{i}": "v" for i in range(11)}})
    sha1_only = {"X-GitHub-Event": "package", "X-Hub-Signature": "sha1=" + "0" * 40}
    cases = [
        # (what, path, body, headers, HTTP status)
        ("wrong token", DISPATCH, body("1.1.0-dev"), {"Authorization": "Bearer nope"}, 401),
        ("missing token", DISPATCH, body("1.1.0-dev"), {}, 401),
        ("wrong signature", "/hook/github", PACKAGE,
         {"X-GitHub-Event": "package", "X-Hub-Signature-256": auth.sign(PACKAGE, "nope")}, 401),
        ("missing signature", "/hook/github", PACKAGE, {"X-GitHub-Event": "package"}, 401),
        ("SHA-1-only signature", "/hook/github", PACKAGE, sha1_only, 401),
        ("oversized body", DISPATCH, b"{" + b" " * auth.MAX_BODY + b"}", BEARER, 413),
        ("malformed JSON", DISPATCH, b'{"event_type": ', BEARER, 400),
        ("11 top-level payload keys", DISPATCH, eleven.encode(), BEARER, 400),
        ("unknown repository", "/repos/myorg/unknown/dispatches", body("1.1.0-dev"), BEARER, 204),
        ("tag failing the regex", DISPATCH, body("1.1.0-debug"), BEARER, 204),
        ("tag the registry lacks", DISPATCH, body("9.9.9-dev", git_branch="x"), BEARER, 204),
        ("older tag", DISPATCH, body("0.1.0-dev", git_branch="old"),
         {**BEARER, "X-GitHub-Delivery": "last-bad"}, 204),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{h.port}", timeout=30) as client:
        for what, path, data, headers, expected in cases:
            resp = await client.post(path, content=data, headers=headers)
            assert resp.status_code == expected, f"{what}: {resp.status_code} {resp.text}"
        # The barrier: the operator answers one CR's triggers in order, so once it has answered
        # the last request's, every earlier one has had its pass (or was folded into it).
        await eventually(lambda: handled(h.running, "myapp-dev", "last-bad"), "last handled")
        assert h.commits() == before and h.cluster.ready("myapp-dev")["reason"] == "UpToDate"
        await h.push("1.1.0-dev")
        good = {**BEARER, "X-GitHub-Delivery": "delivery-1"}
        data = body("1.1.0-dev", git_branch="good", commit_message="ok")
        assert (await client.post(DISPATCH, content=data, headers=good)).status_code == 204
        await eventually(lambda: dev_tag(h) == "1.1.0-dev", "the good dispatch promoted")
        assert h.commits() == ["Branch good led to updated Docker image '1.1.0-dev': ok", *before]
        # a replayed delivery is acknowledged and ignored
        again = await client.post(DISPATCH, content=data, headers=good)
        assert again.status_code == 204 and h.count("github-dispatch", "replayed") == 1
    assert h.values("dev") == 'imageTag: "1.1.0-dev"\ngit_branch: "good"\nreplicas: 2\n'
    assert h.values("prod") == SEED_VALUES.format(tag="1.0.0-stable")
    assert h.count("github-dispatch", "unauthenticated") == 2
    assert h.count("github", "unauthenticated") == 3
    assert h.count("github-dispatch", "malformed") == 3
    assert h.count("github-dispatch", "unmatched") == 2
    assert h.count("github-dispatch", "accepted") == 3


async def test_rbac_allows_every_request_the_webhooks_made(hooked: Start) -> None:
    from tests.test_deploy_manifests import RULES, SECRETS_ROLE, allows

    h = await hooked()
    await h.push("1.1.0-dev")
    assert await h.curl("1.1.0-dev", "b", "m") == "204"
    await eventually(lambda: dev_tag(h) == "1.1.0-dev", "promoted")
    api = h.running.cluster.api
    made = set()
    for request in list(api.history):
        if not str(request.headers.get("User-Agent", "")).startswith("kopf/"):
            continue
        if request.resource is None or not request.resource.plural:
            continue
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
            str(getattr(request.method, "value", request.method)).upper(), "get"
        )
        if verb == "get":
            verb = "watch" if request.params.get("watch") == "true" else (
                "list" if request.name is None else "get")  # fmt: skip
        resource = request.resource.plural
        if request.subresource:
            resource = f"{resource}/{request.subresource}"
        made.add((request.resource.group or "", resource, verb))
    assert ("imagepromoter.dev", "imagepromotions", "patch") in made
    assert ("imagepromoter.dev", "imagewebhooks", "list") in made
    assert ("imagepromoter.dev", "imagewebhooks/status", "patch") in made
    rules = RULES + SECRETS_ROLE["rules"]
    assert {m for m in made if not allows(rules, *m)} == set()


def test_the_curl_fixture_is_the_seed_command() -> None:
    words = shlex.split(CURL)
    assert words[:4] == [
        "curl",
        "-X",
        "POST",
        "https://promoter.example.com/repos/myorg/gitops/dispatches",
    ]
    assert "Authorization: Bearer $TOKEN" in words
    payload = words[words.index("--data") + 1]
    assert payload.startswith('{"event_type": "update-gitops-repo", "client_payload": {')
    for key in ("docker_image_tag", "git_branch", "commit_message"):
        assert f'"{key}"' in payload


async def test_an_event_recorded_while_the_operator_is_down_is_acted_on_at_start(
    hooked: Start,
) -> None:
    """The receiver's record is the durable part: a restart between the answer and the pass."""
    h = await hooked()
    api, before = h.running.cluster.api, h.running
    await h.push("1.1.0-dev")
    await stop_operator(h.running)  # as if it crashed right after answering 204
    # received now, as the receiver stamps it: after the CR's last recorded scan
    received = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    trigger = model.Trigger(
        tag="1.1.0-dev", source="upstream-ci", type="github-dispatch", delivery="before-crash",
        received_at=received, fields={"git_branch": "hotfix", "commit_message": "m"},
    )  # fmt: skip
    await h.cluster.patch(
        "myapp-dev", {"metadata": {"annotations": {model.TRIGGER_ANNOTATION: trigger.encode()}}}
    )
    assert dev_tag(h) == "1.0.0-dev"
    h.running = await start_operator(api, h.adapters, options=h.options, metrics_=h.metrics)
    assert before is not h.running
    await eventually(lambda: dev_tag(h) == "1.1.0-dev", "promoted after the restart")
    assert 'git_branch: "hotfix"' in h.values("dev")
    assert h.commits()[0] == "Branch hotfix led to updated Docker image '1.1.0-dev': m"


async def test_image_webhook_status(hooked: Start) -> None:
    h = await hooked()
    api = h.running.cluster.api
    ready = (iwh(api, "upstream-ci")["status"]["conditions"])[0]
    assert (ready["status"], ready["reason"]) == ("True", "Ready")
    assert iwh(api, "upstream-ci")["status"]["path"] == "/repos/{owner}/{repo}/dispatches"
    await create(api, secret("hub", token="hub-token"))
    await create(api, webhook("hub", "dockerhub"))
    await create(api, webhook("orphan", "quay"))
    path = await eventually(lambda: (iwh(api, "hub").get("status") or {}).get("path"), "hub path")
    assert path == auth.secret_path("hub-token", "hub", NS)
    orphan = await eventually(
        lambda: (iwh(api, "orphan").get("status") or {}).get("conditions"), "orphan status"
    )
    assert (orphan[0]["status"], orphan[0]["reason"]) == ("False", "SecretMissing")
    assert "kubectl create secret generic orphan" in orphan[0]["message"]
    assert "path" not in iwh(api, "orphan")["status"], "no path without a token"
    assert "hub-token" not in json.dumps(iwh(api, "hub"))


async def start_peer(
    api: Emulator, h: Hooked, *, port: int, priority: int
) -> tuple[threading.Event, threading.Thread, list[BaseException], metrics.Metrics]:
    """Another replica of the operator, in Kopf peering `imagepromoter` with `priority`."""
    stop, ready = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    counters = metrics.Metrics(prometheus_client.CollectorRegistry())
    options = dataclasses.replace(h.options, webhook_port=port)
    server = str(api.servers[0].url).rstrip("/")

    def run() -> None:
        try:
            asyncio.run(handlers.operate(
                h.adapters, options=options, connection=kopf.ConnectionInfo(server=server),
                metrics_=counters,
                standalone=False, peering="imagepromoter", priority=priority,
                stop_flag=stop, ready_flag=ready,
            ))  # fmt: skip
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name=f"peer-{priority}", daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 20), failures
    return stop, thread, failures, counters


async def test_a_paused_standby_records_events_for_the_active_one(
    api: Emulator, hooked: Start
) -> None:
    """Every replica serves the port: the standby (lower priority, paused) writes the trigger,
    the active replica does the pass."""
    peering = [d for d in yaml.safe_load_all((ROOT / "manifests" / "peering.yaml").read_text())]
    api.register_crd(peering[0])
    resp = await api.post("/apis/kopf.dev/v1/clusterkopfpeerings", json=peering[1])
    assert resp.status in (200, 201), await resp.text()
    h = await hooked()
    await stop_operator(h.running)  # replaced by two peers (stopping it again later is a no-op)
    active = await start_peer(api, h, port=free_port(), priority=100)
    standby_port = free_port()
    standby = await start_peer(api, h, port=standby_port, priority=1)
    try:
        await h.push("1.1.0-dev")
        h.port = standby_port
        assert await h.curl("1.1.0-dev", "from-standby", "m") == "204"
        await eventually(lambda: dev_tag(h) == "1.1.0-dev", "promoted by the active replica")
        assert 'git_branch: "from-standby"' in h.values("dev")
        standby_counts, active_counts = standby[3].registry, active[3].registry
        webhook = {"type": "github-dispatch", "outcome": "accepted"}
        assert standby_counts.get_sample_value("imagepromoter_webhook_requests_total", webhook)
        assert not standby_counts.get_sample_value("imagepromoter_scans_total"), "it is paused"
        assert active_counts.get_sample_value("imagepromoter_scans_total")
        assert not active_counts.get_sample_value("imagepromoter_webhook_requests_total", webhook)
    finally:
        for stop, thread, failures, _ in (standby, active):
            stop.set()
            await asyncio.to_thread(thread.join, 20)
            assert not failures


class GatedGit:
    """The real git writer, with the first write held until the test releases it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes = 0
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        if self.writes == 1:
            self.entered.set()
            assert self.release.wait(30), "never released"
        return self.inner.write(*args, **kwargs)


async def test_a_burst_during_a_pass_makes_one_more_pass(hooked: Start) -> None:
    """Events arriving while a pass runs fold into one more pass, on the latest event."""
    h = await hooked()
    await stop_operator(h.running)
    gated = GatedGit(h.adapters.git)
    adapters = dataclasses.replace(h.adapters, git=gated)
    h.running = await start_operator(
        h.running.cluster.api, adapters, options=h.options, metrics_=h.metrics
    )
    await h.push("1.1.0-dev")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{h.port}", timeout=30) as client:

        async def dispatch(n: int) -> None:
            headers = {**BEARER, "X-GitHub-Delivery": f"burst-{n}"}
            data = body("1.1.0-dev", git_branch=f"b{n}", commit_message=f"m{n}")
            assert (await client.post(DISPATCH, content=data, headers=headers)).status_code == 204

        await dispatch(1)
        assert await asyncio.to_thread(gated.entered.wait, 20), "the first pass reached git"
        for n in range(2, 7):
            await dispatch(n)  # recorded while the first pass is held
        gated.release.set()
        await eventually(lambda: handled(h.running, "myapp-dev", "burst-6"), "the last handled")
    assert gated.writes == 2, "one pass for the first event, one for the five that followed"
    assert 'git_branch: "b6"' in h.values("dev"), "the latest event's fields"
    webhook_events = [e for e in h.cluster.events("myapp-dev") if e["reason"] == "Webhook"]
    assert len(webhook_events) == 2
