"""Holds, minAge and stages in the operator: Kopf against the kmock emulator, real registry and git.

The operator runs with an injected clock (`handlers.operate(now=...)`), so "an hour later" is a
step of the clock, not a wait; Kopf's own timer ticks every 0.1 s of real time and the schedule
asks the injected clock whether a pass is due. Waiting is `eventually` (poll until true or fail),
never a sleep. The fixtures and helpers are those of tests/operator_harness.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imagepromoter import holds, scans
from imagepromoter.kube import handlers
from imagepromoter.kube import stages as kube_stages
from tests.kmock_emulator import Emulator
from tests.operator_harness import (
    VALUES,
    Cluster,
    Running,
    credentials,
    eventually,
    reason_is,
    start_operator,
    stop_operator,
)
from tests.servers import git_http

pytestmark = pytest.mark.servers


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Stage:
    running: Running
    cluster: Cluster
    registry: Any
    repository: str
    repo: Path
    url: str
    clock: Clock

    async def push(self, *tags: str, created: datetime | None = None) -> None:
        await asyncio.to_thread(
            self.registry.push_image, self.repository, tags=list(tags), created=created
        )

    def tag(self, env: str) -> str:
        text = git_http.read_file(self.repo, "main", f"environments/{env}/values.yaml").decode()
        return text.split("tag: ", 1)[1].split()[0]

    def human(self, env: str, tag: str, message: str) -> str:
        text = VALUES.format(tag=tag)
        path = f"environments/{env}/values.yaml"
        return git_http.push_commit(self.repo, "main", {path: text}, message)

    async def trigger(self, name: str, value: str) -> None:
        patch = {"metadata": {"annotations": {handlers.REQUESTED_AT: value}}}
        await self.cluster.patch(name, patch)

    def cr(self, name: str, env: str, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "image": f"{self.registry.host}/{self.repository}",
            "insecure": True,
            "imagePullSecret": "ghcr-pull",
            "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
            "interval": "1h",
            "git": {
                "url": self.url,
                "insecure": True,
                "branch": "main",
                "secretRef": "gitops-write",
            },
            "targets": [{"path": f"environments/{env}/values.yaml", "key": "image.tag"}],
            **spec,
        }
        return {
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "ImagePromotion",
            "metadata": {"name": name, "namespace": "gitops"},
            "spec": body,
        }


@pytest.fixture
async def stage(
    api: Emulator,
    git_http_server: Any,
    git_repo: Any,
    registry_htpasswd: Any,
    repo_name: str,
    tmp_path: Path,
) -> AsyncIterator[Stage]:
    from imagepromoter.git import history, writer
    from imagepromoter.registry import client

    url, repo = git_repo(
        {
            "environments/dev/values.yaml": VALUES.format(tag="0.9.0-dev"),
            "environments/prod/values.yaml": VALUES.format(tag="0.9.0-dev"),
        }
    )
    old = datetime.now(UTC) - timedelta(days=3)
    await asyncio.to_thread(
        registry_htpasswd.push_image, repo_name, tags=["1.0.0-dev", "1.1.0-dev"], created=old
    )
    git = writer.GitWriter(tmp_path / "work", retries=3, sleep=lambda seconds: None)

    def registry() -> scans.SharedScans:
        return scans.SharedScans(client.RegistryClient(requests_per_second=10_000.0), max_age=0)

    clock = Clock()
    adapters = handlers.Adapters(registry_factory=registry, git=git, history=history.History(git))
    running = await start_operator(api, adapters, now=clock)
    cluster = running.cluster
    await credentials(cluster, git_http_server, registry_htpasswd)
    yield Stage(running, cluster, registry_htpasswd, repo_name, repo, url, clock)
    await stop_operator(running)


async def test_a_human_rollback_is_held_and_the_annotation_releases_it(stage: Stage) -> None:
    cluster = stage.cluster
    await cluster.apply(stage.cr("app-prod", "prod"))
    await eventually(reason_is(cluster, "app-prod", "Promoted"), "prod Promoted")
    assert stage.tag("prod") == "1.1.0-dev"
    sha = stage.human("prod", "1.0.0-dev", "prod: roll back to 1.0.0")
    await stage.push("1.2.0-dev", created=datetime.now(UTC) - timedelta(days=1))
    await stage.trigger("app-prod", "after-rollback")
    await eventually(reason_is(cluster, "app-prod", "Held"), "prod Held")
    message = cluster.ready("app-prod")["message"]
    assert f"changed in {sha[:7]} by Test Seeder <seeder@example.com>" in message
    assert "'prod: roll back to 1.0.0'" in message
    assert stage.tag("prod") == "1.0.0-dev"
    await eventually(  # Kopf posts events from a queue, after the status patch may have landed
        lambda: [e["reason"] for e in cluster.events("app-prod")][-1:] == ["Held"], "Held event"
    )
    await cluster.patch("app-prod", {"metadata": {"annotations": {holds.RELEASE_ANNOTATION: "1"}}})
    await eventually(lambda: stage.tag("prod") == "1.2.0-dev", "promoted again after release")
    await eventually(reason_is(cluster, "app-prod", "Promoted"), "prod Promoted again")
    assert "hold" not in cluster.status("app-prod")


async def test_a_pin_rolls_back_and_unpinning_resumes(stage: Stage) -> None:
    cluster = stage.cluster
    await cluster.apply(stage.cr("app-prod", "prod"))
    await eventually(reason_is(cluster, "app-prod", "Promoted"), "prod Promoted")
    await cluster.patch("app-prod", {"spec": {"pin": "1.0.0-dev"}})
    await eventually(reason_is(cluster, "app-prod", "Pinned"), "prod Pinned")
    assert stage.tag("prod") == "1.0.0-dev"
    assert cluster.ready("app-prod")["status"] == "True"
    await eventually(lambda: len(cluster.events("app-prod")) >= 2, "the pin's event")
    assert [e["type"] for e in cluster.events("app-prod")] == ["Normal", "Normal"]
    await cluster.patch("app-prod", {"spec": {"pin": None}})
    await eventually(reason_is(cluster, "app-prod", "Promoted"), "prod Promoted after unpinning")
    assert stage.tag("prod") == "1.1.0-dev"


async def test_a_young_tag_is_promoted_when_it_comes_of_age_without_a_trigger(
    stage: Stage,
) -> None:
    cluster = stage.cluster
    await stage.push("1.5.0-dev", created=datetime.now(UTC) + timedelta(days=365))  # future
    await cluster.apply(stage.cr("app-dev", "dev", minAge="2h"))
    await eventually(reason_is(cluster, "app-dev", "Promoted"), "dev Promoted meanwhile")
    assert stage.tag("dev") == "1.1.0-dev"
    status = cluster.status("app-dev")
    assert [e["tag"] for e in status["firstSeen"]] == ["1.5.0-dev"]  # the future date is ignored
    assert "1.5.0-dev is younger than minAge 2h" in cluster.ready("app-dev")["message"]
    stage.clock.offset = timedelta(hours=2, seconds=1)  # the interval is 1h, and no trigger
    await eventually(
        lambda: cluster.status("app-dev").get("promotedTag") == "1.5.0-dev",
        "promoted when it came of age",
    )
    assert stage.tag("dev") == "1.5.0-dev" and "firstSeen" not in cluster.status("app-dev")


async def test_prod_follows_dev_after_the_delay_and_not_while_dev_is_held(stage: Stage) -> None:
    cluster = stage.cluster
    await cluster.apply(stage.cr("app-dev", "dev"))
    await eventually(reason_is(cluster, "app-dev", "Promoted"), "dev Promoted")
    follow = {"from": {"imagePromotion": "app-dev", "after": "1h"}}
    await cluster.apply(stage.cr("app-prod", "prod", **follow))
    await eventually(reason_is(cluster, "app-prod", "Waiting"), "prod Waiting")
    assert "1.1.0-dev has been promoted there since" in cluster.ready("app-prod")["message"]
    assert stage.tag("prod") == "0.9.0-dev" and cluster.status("app-prod")["waitingUntil"]
    stage.clock.offset = timedelta(hours=1, seconds=1)
    await eventually(lambda: stage.tag("prod") == "1.1.0-dev", "prod followed dev after 1h")
    # a new dev tag reaches prod's status at once (prod's interval is 1h): Waiting again
    await stage.push("1.2.0-dev", created=datetime.now(UTC) - timedelta(days=1))
    await stage.trigger("app-dev", "new-tag")
    await eventually(
        lambda: "1.2.0-dev has been promoted there" in cluster.ready("app-prod").get("message", ""),
        "prod told of dev's new tag",
    )
    annotations = cluster.ipr("app-prod")["metadata"]["annotations"]
    assert annotations[kube_stages.UPSTREAM_CHANGED].startswith("app-dev ")
    # dev rolled back by hand and held: prod does not follow, even once the delay has passed
    stage.human("dev", "1.0.0-dev", "dev: roll back")
    await stage.push("1.3.0-dev", created=datetime.now(UTC) - timedelta(days=1))
    await stage.trigger("app-dev", "after-rollback")
    await eventually(reason_is(cluster, "app-dev", "Held"), "dev Held")
    await eventually(
        lambda: "which is not Ready (Held" in cluster.ready("app-prod").get("message", ""),
        "prod waits for a held dev",
    )
    scanned = cluster.status("app-prod")["lastScanTime"]
    stage.clock.offset = timedelta(hours=3)
    await stage.trigger("app-prod", "later")
    await eventually(
        lambda: cluster.status("app-prod").get("lastScanTime") != scanned, "another prod pass"
    )
    assert "which is not Ready (Held" in cluster.ready("app-prod")["message"]
    assert stage.tag("prod") == "1.1.0-dev"


def made_by_the_operator(emulator: Emulator) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every resource request Kopf's session made."""
    made = set()
    for request in list(emulator.history):
        if not str(request.headers.get("User-Agent", "")).startswith("kopf/"):
            continue
        if request.resource is None or not request.resource.plural:
            continue
        method = str(getattr(request.method, "value", request.method)).upper()
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
            method, "get"
        )
        if verb == "get" and request.name is None:
            verb = "watch" if request.params.get("watch") == "true" else "list"
        resource = request.resource.plural
        if request.subresource:
            resource = f"{resource}/{request.subresource}"
        made.add((request.resource.group or "", resource, verb))
    return made


async def test_rbac_allows_reading_upstreams_and_telling_followers(
    stage: Stage,
    api: Emulator,
) -> None:
    from tests.test_deploy_manifests import RULES, SECRETS_ROLE, allows

    cluster = stage.cluster
    await cluster.apply(stage.cr("app-dev", "dev"))
    await cluster.apply(stage.cr("app-prod", "prod", **{"from": {"imagePromotion": "app-dev"}}))
    await eventually(
        lambda: cluster.status("app-prod").get("promotedTag") == "1.1.0-dev", "prod followed dev"
    )
    made = made_by_the_operator(api)
    assert ("imagepromoter.dev", "imagepromotions", "get") in made  # the upstream read
    assert ("imagepromoter.dev", "imagepromotions", "patch") in made  # upstream-changed
    rules = RULES + SECRETS_ROLE["rules"]
    assert {m for m in made if not allows(rules, *m)} == set()
