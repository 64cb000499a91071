"""The operator end to end: Kopf with our handlers against the kmock API emulator.

No real API server can be had on these machines, so Kopf talks to `tests.kmock_emulator.Emulator`
(kmock's emulator plus the fixes Kopf needs) over real HTTP on 127.0.0.1. The registry and the git
server are the real ones from tests/servers/. Each test starts its own emulator and operator in
the test's event loop and stops them after; waiting is "until a condition holds, or fail after a
timeout", never a fixed sleep. The harness for all that is tests/operator_harness.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from imagepromoter import scans
from imagepromoter.kube import handlers, metrics
from imagepromoter.pipeline import freshness
from tests.kmock_emulator import Emulator
from tests.operator_harness import (
    EVENTS,
    NS,
    ROOT,
    TIMEOUT,
    VALUES,
    Cluster,
    Running,
    credentials,
    eventually,
    handled,
    promotion,
    reason_is,
    secret,
    start_operator,
    stop_operator,
)

SCAN_MAX_AGE = 0.5  # SharedScans cache age: short, so a new tag is seen within a second

pytestmark = pytest.mark.servers  # the kmock emulator, and the real registry and git server


class NoRegistry:
    """For passes that must fail before any registry call (InvalidSpec): calling it is a bug."""

    async def list_tags(self, access: Any) -> list[str]:
        raise AssertionError("the registry must not be read")

    async def digest(self, access: Any, tag: str) -> str:
        raise AssertionError("the registry must not be read")

    async def created(self, access: Any, tags: Any) -> dict[str, Any]:
        raise AssertionError("the registry must not be read")


class NoGit:
    """For passes that must fail before any git write."""

    def write(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("git must not be written")


@pytest.fixture
async def offline(api: Emulator) -> AsyncIterator[Running]:
    """The operator with adapters that must never be reached."""
    running = await start_operator(api, handlers.Adapters(registry_factory=NoRegistry, git=NoGit()))
    yield running
    await stop_operator(running)


# --- the emulator itself: each gap of the stock emulator, fixed -------------------------------


async def test_emulator_stamps_identity_and_versions(api: Emulator) -> None:
    cluster = Cluster(api)
    created = await cluster.apply(promotion("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    first = int(meta["resourceVersion"])
    await cluster.patch("a", {"metadata": {"labels": {"x": "y"}}})
    after_label = cluster.ipr("a")["metadata"]
    assert int(after_label["resourceVersion"]) > first
    assert after_label["generation"] == 1, "metadata changes do not bump generation"
    await cluster.patch("a", {"spec": {"interval": "2m"}})
    assert cluster.ipr("a")["metadata"]["generation"] == 2


async def test_emulator_answers_failed_json_patch_test_with_422(api: Emulator) -> None:
    cluster = Cluster(api)
    await cluster.apply(promotion("a"))
    resp = await api.patch(
        f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/a",
        json=[{"op": "test", "path": "/metadata/resourceVersion", "value": "stale"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert resp.status == 422


async def test_emulator_names_generate_name_objects(api: Emulator) -> None:
    for _ in range(2):
        resp = await api.post(
            f"/api/v1/namespaces/{NS}/events",
            json={"metadata": {"generateName": "ev-", "namespace": NS}, "reason": "X"},
        )
        assert resp.status in (200, 201)
    names = {e["metadata"]["name"] for e in api.list_objects(EVENTS, NS)}
    assert len(names) == 2 and all(n.startswith("ev-") for n in names)


async def test_emulator_status_subresource_changes_only_status(api: Emulator) -> None:
    cluster = Cluster(api)
    await cluster.apply(promotion("a"))
    resp = await api.patch(
        f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions/a/status",
        json={"status": {"latestTag": "1.0.0-dev"}, "spec": {"suspend": True}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 200
    obj = cluster.ipr("a")
    assert obj["status"] == {"latestTag": "1.0.0-dev"}
    assert "suspend" not in obj["spec"] and obj["metadata"]["generation"] == 1


# --- the operator without servers ---------------------------------------------------------------


async def test_bad_regex_is_invalid_spec_with_an_event(offline: Running) -> None:
    cluster = offline.cluster
    await cluster.apply(promotion("bad", tagRegex="^(unclosed$"))
    ready = await eventually(lambda: cluster.ready("bad"), "a Ready condition")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.tagRegex" in ready["message"]
    assert cluster.status("bad")["observedGeneration"] == 1
    events = await eventually(lambda: cluster.events("bad"), "an event")
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "InvalidSpec")]
    assert not (cluster.ipr("bad")["metadata"].get("finalizers")), "no finalizers, ever"


async def test_fixing_the_spec_reconciles_at_once(offline: Running) -> None:
    cluster = offline.cluster
    await cluster.apply(promotion("fix", tagRegex="^(unclosed$", interval="1h"))
    await eventually(lambda: cluster.ready("fix").get("reason") == "InvalidSpec", "InvalidSpec")
    await cluster.patch("fix", {"spec": {"suspend": True}})
    # suspend is a spec change: it acts at once, even though the regex is still bad
    await eventually(
        lambda: cluster.status("fix").get("observedGeneration") == 2, "generation 2 observed"
    )
    assert cluster.ready("fix")["reason"] == "InvalidSpec"  # the spec is parsed first
    await cluster.patch("fix", {"spec": {"tagRegex": "^x$"}})
    ready = await eventually(
        lambda: cluster.ready("fix") if cluster.ready("fix").get("reason") == "Suspended" else None,
        "Suspended",
    )
    assert ready["status"] == "False"
    assert "set it to false" in ready["message"]


async def test_repeated_failure_posts_one_event(offline: Running) -> None:
    cluster = offline.cluster
    await cluster.apply(promotion("loop", tagRegex="^(unclosed$"))
    await eventually(lambda: cluster.events("loop"), "the first event")
    # the manual trigger makes a second pass with the same failure: no second event
    await cluster.patch("loop", {"metadata": {"annotations": {handlers.REQUESTED_AT: "1"}}})
    await eventually(
        lambda: offline.metrics.failures.labels(reason="InvalidSpec")._value.get() >= 2,
        "a second failing pass",
    )
    assert len(cluster.events("loop")) == 1


class DownRegistry(NoRegistry):
    """A registry that is always down: every pass fails with RegistryError (BACKOFF)."""

    def __init__(self) -> None:
        self.calls = 0

    async def list_tags(self, access: Any) -> list[str]:
        from imagepromoter import errors

        self.calls += 1
        raise errors.RegistryError("registry down; will retry")


async def test_a_failed_pass_is_retried_by_the_timer_alone(
    api: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Kopf re-running the create handler while our timer also retried: two passes a failure."""
    caplog.set_level("INFO", logger="imagepromoter.kube.passes")
    down = DownRegistry()
    running = await start_operator(
        api, handlers.Adapters(registry_factory=lambda: down, git=NoGit())
    )
    try:
        cluster = running.cluster
        await cluster.apply(promotion("down", interval="1h"))
        # backoff 0.2 s, 0.4 s, 0.8 s, ...: wait for four failing passes in all
        await eventually(lambda: down.calls >= 4, "four failing passes")
        whys = [
            r.args[2]
            for r in caplog.records
            if r.name == "imagepromoter.kube.passes" and isinstance(r.args, tuple)
        ]
        assert whys.count("created") == 1, whys
        assert whys[1:] == ["interval"] * (len(whys) - 1), whys
    finally:
        await stop_operator(running)


# --- the seed scenario with the real registry and the real git server --------------------------
#
# The registry is `docker-registry` with Basic auth (tests/fixtures_registry.py), read by the real
# RegistryClient through the pull Secret; git is the real smart-HTTP server with Basic auth.

GIT_USER_PASSWORD_MARKER = "s3cr3t-git-password"


@dataclass
class Seed:
    running: Running
    metrics: metrics.Metrics  # shared by the operator runs of one test (restarts too)
    registry: Any  # tests.servers.registry.RegistryServer
    repository: str
    repo: Path
    url: str
    workdir: Path

    def adapters(self) -> handlers.Adapters:
        """A registry client per operator run (made in its loop) and a git writer."""
        from imagepromoter.git import writer
        from imagepromoter.registry import client

        def registry() -> scans.SharedScans:  # composed as `imagepromoter run` composes it
            return scans.SharedScans(
                client.RegistryClient(
                    requests_per_second=10_000.0, on_request=self.metrics.on_request
                ),
                max_age=SCAN_MAX_AGE,
            )

        git = writer.GitWriter(self.workdir, retries=3, sleep=lambda seconds: None)
        return handlers.Adapters(registry_factory=registry, git=git)

    async def push(self, *tags: str) -> None:
        """Push an image under `tags`, as CI would."""
        await asyncio.to_thread(self.registry.push_image, self.repository, tags=list(tags))


def seed_cr(name: str, seed: Seed, **spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    doc["spec"]["git"]["url"] = seed.url
    doc["spec"]["git"]["insecure"] = True  # the local git server speaks plain HTTP
    doc["spec"]["image"] = f"{seed.registry.host}/{seed.repository}"
    doc["spec"]["insecure"] = True  # the local registry speaks plain HTTP
    doc["spec"].update(spec)
    return dict(doc)


def commits(seed: Seed) -> list[str]:
    from tests.servers import git_http

    return git_http.log(seed.repo, "main", "%s")


def file_tag(seed: Seed, env: str) -> str:
    from tests.servers import git_http

    text = git_http.read_file(seed.repo, "main", f"environments/{env}/values.yaml").decode()
    return text.split("tag: ", 1)[1].split()[0]


@pytest.fixture
async def seed(
    api: Emulator,
    git_http_server: Any,
    git_repo: Any,
    registry_htpasswd: Any,
    repo_name: str,
    tmp_path: Path,
) -> AsyncIterator[Seed]:
    url, repo = git_repo(
        {
            "environments/dev/values.yaml": VALUES.format(tag="0.9.0-dev"),
            "environments/prod/values.yaml": VALUES.format(tag="0.9.0-stable"),
        }
    )
    state = Seed(
        running=None,  # type: ignore[arg-type]
        metrics=metrics.Metrics(prometheus_client.CollectorRegistry()),
        registry=registry_htpasswd,
        repository=repo_name,
        repo=repo,
        url=url,
        workdir=tmp_path / "work",
    )
    await state.push("0.9.0-dev", "1.0.0-dev", "1.1.0-dev", "1.0.0-stable", "1.0.1-debug")
    state.running = await start_operator(api, state.adapters(), metrics_=state.metrics)
    await credentials(state.running.cluster, git_http_server, registry_htpasswd)
    yield state
    await stop_operator(state.running)  # the restart test replaces it


async def apply_seed(seed: Seed, dev_interval: str = "1h") -> None:
    cluster = seed.running.cluster
    await cluster.apply(seed_cr("dev", seed, interval=dev_interval))
    await cluster.apply(seed_cr("prod", seed, interval="1h"))
    await eventually(reason_is(cluster, "myapp-dev", "Promoted"), "dev Promoted")
    await eventually(reason_is(cluster, "myapp-prod", "Promoted"), "prod Promoted")


async def test_seed_promotes_dev_and_prod_with_events(seed: Seed) -> None:
    cluster = seed.running.cluster
    await apply_seed(seed)
    dev, prod = cluster.status("myapp-dev"), cluster.status("myapp-prod")
    assert (dev["latestTag"], dev["promotedTag"]) == ("1.1.0-dev", "1.1.0-dev")
    assert (prod["latestTag"], prod["promotedTag"]) == ("1.0.0-stable", "1.0.0-stable")
    assert cluster.ready("myapp-dev")["status"] == "True"
    assert file_tag(seed, "dev") == "1.1.0-dev" and file_tag(seed, "prod") == "1.0.0-stable"
    shas = {dev["lastCommit"], prod["lastCommit"]}
    assert len(shas) == 2 and all(len(s) == 40 for s in shas)
    assert len(commits(seed)) == 3, "the seed commit and one per CR"
    for name in ("myapp-dev", "myapp-prod"):
        events = await eventually(lambda n=name: cluster.events(n), f"{name} event")
        assert [(e["type"], e["reason"]) for e in events] == [("Normal", "Promoted")]
    assert seed.running.metrics.promotions._value.get() == 2
    host = seed.registry.host
    ok = seed.running.metrics.registry_requests.labels(host=host, status="200")._value.get()
    # Both CRs name one image: its tags may be listed once for both (SharedScans), and each CR
    # reads the digest of its own tag, so at least 1 + 2 successful requests were counted.
    assert ok >= 3, "tags and digests of both CRs were read and counted by host and status"
    for name in ("myapp-dev", "myapp-prod"):
        assert not cluster.ipr(name)["metadata"].get("finalizers")


async def test_new_tag_promotes_only_dev_at_its_interval(seed: Seed) -> None:
    cluster = seed.running.cluster
    await apply_seed(seed, dev_interval="1s")
    before = len(commits(seed))
    await seed.push("1.2.0-dev")
    await eventually(
        lambda: cluster.status("myapp-dev").get("promotedTag") == "1.2.0-dev", "1.2.0-dev promoted"
    )
    assert file_tag(seed, "dev") == "1.2.0-dev" and file_tag(seed, "prod") == "1.0.0-stable"
    assert len(commits(seed)) == before + 1
    assert cluster.status("myapp-prod")["promotedTag"] == "1.0.0-stable"


async def test_bad_regex_makes_no_commit(seed: Seed) -> None:
    cluster = seed.running.cluster
    before = len(commits(seed))
    await cluster.apply(seed_cr("dev", seed, tagRegex="^(bad$"))
    await eventually(reason_is(cluster, "myapp-dev", "InvalidSpec"), "InvalidSpec")
    events = await eventually(lambda: cluster.events("myapp-dev"), "an event")
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "InvalidSpec")]
    assert len(commits(seed)) == before


async def test_wrong_git_password_is_git_error_without_the_password(
    seed: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = seed.running.cluster
    caplog.set_level("DEBUG")
    await cluster.apply(
        secret("wrong-git", username="imagepromoter", password=GIT_USER_PASSWORD_MARKER)
    )
    doc = seed_cr("dev", seed)
    doc["spec"]["git"]["secretRef"] = "wrong-git"
    await cluster.apply(doc)
    await eventually(reason_is(cluster, "myapp-dev", "GitError"), "GitError")
    events = await eventually(lambda: cluster.events("myapp-dev"), "an event")
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "GitError")]
    seen = repr(cluster.status("myapp-dev")) + repr(events) + caplog.text
    assert GIT_USER_PASSWORD_MARKER not in seen
    assert file_tag(seed, "dev") == "0.9.0-dev"


async def test_suspend_and_resume(seed: Seed) -> None:
    cluster = seed.running.cluster
    await apply_seed(seed)
    await cluster.patch("myapp-dev", {"spec": {"suspend": True}})
    await eventually(reason_is(cluster, "myapp-dev", "Suspended"), "Suspended")
    await seed.push("1.2.0-dev")
    await cluster.patch("myapp-dev", {"metadata": {"annotations": {handlers.REQUESTED_AT: "1"}}})
    await eventually(lambda: handled(seed.running, "myapp-dev", "1"), "the trigger handled")
    assert cluster.ready("myapp-dev")["reason"] == "Suspended"
    assert file_tag(seed, "dev") == "1.1.0-dev"
    await cluster.patch("myapp-dev", {"spec": {"suspend": False}})
    await eventually(
        lambda: cluster.status("myapp-dev").get("promotedTag") == "1.2.0-dev", "resumed promotion"
    )
    assert file_tag(seed, "dev") == "1.2.0-dev"


async def test_manual_trigger_annotation(seed: Seed) -> None:
    cluster = seed.running.cluster
    await apply_seed(seed)  # interval 1h: nothing more would happen on its own
    await seed.push("1.3.0-dev")
    await cluster.patch(
        "myapp-dev", {"metadata": {"annotations": {handlers.REQUESTED_AT: "2026-01-01T00:00:00Z"}}}
    )
    await eventually(
        lambda: cluster.status("myapp-dev").get("promotedTag") == "1.3.0-dev", "triggered pass"
    )
    assert file_tag(seed, "dev") == "1.3.0-dev"
    assert cluster.status("myapp-prod")["promotedTag"] == "1.0.0-stable"


async def test_delete_leaves_nothing_behind(seed: Seed, api: Emulator) -> None:
    cluster = seed.running.cluster
    await apply_seed(seed, dev_interval="1s")
    history = len(commits(seed))
    await cluster.delete("myapp-dev")
    assert cluster.ipr("myapp-dev") is None, "no finalizer holds it"
    deleted_at = len(list(api.history))
    # a later pass of the other CR proves the operator kept running after the deletion
    await cluster.patch("myapp-prod", {"metadata": {"annotations": {handlers.REQUESTED_AT: "x"}}})
    await eventually(lambda: handled(seed.running, "myapp-prod", "x"), "prod's trigger handled")
    assert cluster.ready("myapp-prod")["reason"] == "Promoted", "a quiet pass keeps the reason"
    later = list(api.history)[deleted_at:]
    assert not [r for r in later if r.name == "myapp-dev" and r.method == "PATCH"]
    assert len(commits(seed)) == history


async def test_restart_does_not_repromote(seed: Seed, api: Emulator) -> None:
    cluster = seed.running.cluster
    await apply_seed(seed)
    history = commits(seed)
    await stop_operator(seed.running)
    seed.running = await start_operator(api, seed.adapters(), metrics_=seed.metrics)
    await cluster.patch("myapp-dev", {"metadata": {"annotations": {handlers.REQUESTED_AT: "r"}}})
    await eventually(lambda: handled(seed.running, "myapp-dev", "r"), "the trigger after restart")
    assert cluster.ready("myapp-dev")["reason"] == "Promoted", "nothing new: condition kept"
    assert commits(seed) == history
    assert cluster.status("myapp-dev")["promotedTag"] == "1.1.0-dev"
    assert len(cluster.events("myapp-dev")) == 1, "no second Promoted event"


async def test_a_request_made_while_the_operator_was_stopped_is_answered_at_start(
    seed: Seed, api: Emulator
) -> None:
    cluster = seed.running.cluster
    await apply_seed(seed)
    await stop_operator(seed.running)
    await seed.push("1.2.0-dev")
    scanned = freshness.parse_time(cluster.status("myapp-dev")["lastScanTime"])
    assert scanned is not None
    stamp = f"{max(time.time(), scanned.timestamp() + 1):.3f}"  # after its last scan
    await cluster.patch("myapp-dev", {"metadata": {"annotations": {handlers.REQUESTED_AT: stamp}}})
    seed.running = await start_operator(api, seed.adapters(), metrics_=seed.metrics)
    await eventually(lambda: handled(seed.running, "myapp-dev", stamp), "the request at start")
    assert cluster.status("myapp-dev")["promotedTag"] == "1.2.0-dev"
    assert file_tag(seed, "dev") == "1.2.0-dev"


async def test_rbac_allows_every_request_the_operator_made(seed: Seed, api: Emulator) -> None:
    """Each API request Kopf and the handlers really made is allowed by manifests/rbac.yaml."""
    from tests.test_deploy_manifests import RULES, SECRETS_ROLE, allows

    await apply_seed(seed)
    await eventually(lambda: seed.running.cluster.events("myapp-dev"), "an event")
    made = set()
    for request in list(api.history):
        if not str(request.headers.get("User-Agent", "")).startswith("kopf/"):
            continue  # the test's own kubectl-like calls
        if request.resource is None or not request.resource.plural:
            continue  # discovery: non-resource URLs every authenticated user may read
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
            str(getattr(request.method, "value", request.method)).upper(), "get"
        )
        if verb == "get":
            verb = (
                "watch"
                if request.params.get("watch") == "true"
                else ("list" if request.name is None else "get")
            )
        resource = request.resource.plural
        if request.subresource:
            resource = f"{resource}/{request.subresource}"
        made.add((request.resource.group or "", resource, verb))
    assert ("", "secrets", "get") in made and ("", "events", "create") in made
    assert ("imagepromoter.dev", "imagepromotions/status", "patch") in made
    rules = RULES + SECRETS_ROLE["rules"]
    assert {m for m in made if not allows(rules, *m)} == set()


# --- one slow remote never holds up the others -------------------------------------------------
#
# Four CRs whose git server trickles one byte every 10 s (our StallingProxy in front of the real
# git server), four whose registries accept connections and never answer, and one healthy CR. The
# healthy one is promoted while the eight are still inside their passes; the eight end at the
# pass deadline naming the phase and the host; /healthz is healthy throughout; then a blocked
# event loop makes it unhealthy. Every wait is "until a condition holds, or fail after a bound".

STALL_DEADLINE = 12.0  # generous: the healthy pass must finish well inside it on a busy machine


def probe(url: str) -> tuple[int, str]:
    """GET the liveness URL: (HTTP status, body)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


async def test_stalled_remotes_hold_up_no_one_and_healthz_tells_a_blocked_loop(
    api: Emulator,
    git_http_server: Any,
    git_repo: Any,
    registry_htpasswd: Any,
    repo_name: str,
    tmp_path: Path,
) -> None:
    from imagepromoter.git import writer
    from imagepromoter.registry import client
    from tests.servers import free_port, git_http

    await asyncio.to_thread(registry_htpasswd.push_image, repo_name, tags=["1.0.0-dev"])
    values = {"environments/dev/values.yaml": VALUES.format(tag="0.9.0-dev")}
    repos = [git_repo(values) for _ in range(5)]
    trickle = git_http.StallingProxy(("127.0.0.1", git_http_server.port), mode="trickle")
    # four silent registries (four hosts): the registry client tries HTTPS first and shares one
    # HTTP/2 connection per host, so CRs on one silent host would all wait on one connection
    # (fine, but then there is nothing to observe per pass)
    silents = [git_http.StallingProxy(None, mode="silent") for _ in range(4)]
    loops: list[asyncio.AbstractEventLoop] = []
    metrics_ = metrics.Metrics(prometheus_client.CollectorRegistry())

    def registry() -> scans.SharedScans:
        loops.append(asyncio.get_running_loop())
        return scans.SharedScans(client.RegistryClient(requests_per_second=10_000.0))

    healthz = f"http://127.0.0.1:{free_port()}/healthz"
    options = handlers.Options(
        tick=0.1,
        base_backoff=timedelta(minutes=10),  # the stalled CRs are not retried within the test
        pass_deadline=STALL_DEADLINE,
        blocked_after=1.0,
        heartbeat=0.1,
        start_after=60.0,
    )
    adapters = handlers.Adapters(registry_factory=registry, git=writer.GitWriter(tmp_path / "w"))
    running = await start_operator(
        api, adapters, options=options, metrics_=metrics_, liveness=healthz
    )
    release = threading.Event()
    try:
        cluster = running.cluster
        await credentials(cluster, git_http_server, registry_htpasswd, pull="pull")

        def cr(name: str, image: str, git_url: str, pull: bool) -> dict[str, Any]:
            extra: dict[str, Any] = {"imagePullSecret": "pull"} if pull else {}
            return promotion(
                name,
                image=image,
                insecure=True,
                git={
                    "url": git_url,
                    "branch": "main",
                    "secretRef": "gitops-write",
                    "insecure": True,
                },  # the local git server speaks plain HTTP
                **extra,
            )

        good_image = f"{registry_htpasswd.host}/{repo_name}"
        stalled_git = [f"trickle-{i}" for i in range(4)]
        stalled_registry = [f"silent-{i}" for i in range(4)]
        for i, name in enumerate(stalled_git):
            path = "/" + repos[i][0].split("/", 3)[3]
            await cluster.apply(cr(name, good_image, trickle.url(path), pull=True))
        for i, name in enumerate(stalled_registry):
            await cluster.apply(
                cr(name, f"127.0.0.1:{silents[i].port}/myorg/app", repos[4][0], False)
            )
        await eventually(
            lambda: trickle.open >= 4 and all(s.open >= 1 for s in silents),
            "eight passes stalled",
        )
        assert (await asyncio.to_thread(probe, healthz))[0] == 200, "waiting on remotes is healthy"

        healthy_url, healthy_repo = repos[4]
        await cluster.apply(cr("healthy", good_image, healthy_url, pull=True))
        await eventually(reason_is(cluster, "healthy", "Promoted"), "the healthy CR promoted")
        stalled = stalled_git + stalled_registry
        assert [n for n in stalled if cluster.ready(n)] == [], "promoted while the others wait"
        assert b"tag: 1.0.0-dev" in git_http.read_file(healthy_repo, "main",
                                                       "environments/dev/values.yaml")  # fmt: skip

        bound = STALL_DEADLINE + 30
        for name in stalled_git:
            await eventually(reason_is(cluster, name, "GitError"), f"{name} GitError", bound)
            message = cluster.ready(name)["message"]
            assert "pass deadline ran out during git fetch" in message, message
            assert f"127.0.0.1:{trickle.port}" in message
        for name, silent in zip(stalled_registry, silents, strict=True):
            await eventually(reason_is(cluster, name, "RegistryError"), f"{name} failed", bound)
            message = cluster.ready(name)["message"]
            assert "listing the tags" in message and f"127.0.0.1:{silent.port}" in message, message
        assert (await asyncio.to_thread(probe, healthz))[0] == 200

        # a blocked event loop: the operator's loop runs a callback that waits on `release`
        (loop,) = loops
        loop.call_soon_threadsafe(release.wait, TIMEOUT * 3)

        def unhealthy() -> str | None:
            status, body = probe(healthz)
            return body if status == 503 else None

        body = await eventually_in_thread(unhealthy, "/healthz unhealthy")
        assert "event loop has been blocked" in body
        release.set()
        await eventually_in_thread(lambda: probe(healthz)[0] == 200, "/healthz healthy again")
    finally:
        release.set()
        await stop_operator(running)
        trickle.stop()
        for silent in silents:
            silent.stop()


async def eventually_in_thread(check: Callable[[], Any], what: str) -> Any:
    """`eventually` for a check that blocks (an HTTP probe): each try runs in a thread."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
