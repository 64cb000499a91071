"""Notifications after a push: the payloads (against Argo CD's own fixture) and the sender
(against a real HTTP stand-in; retries on a fake clock)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from imagepromoter.notify import events, sending
from imagepromoter.webhooks import auth
from tests.argocd_standin import ArgoCD
from tests.test_webhook_parsers import fixture

PUSHED = events.Pushed(
    name="myapp-dev", namespace="gitops", image="ghcr.io/myorg/myapp", tag="1.2.0-dev",
    digest="sha256:" + "a" * 64, repository="git@github.com:myorg/gitops.git", branch="main",
    before="b" * 40, commit="c" * 40, message="Promote 1.2.0-dev",
    files=("environments/dev/values.yaml",), author_name="build", author_email="build@internal",
    timestamp="2026-12-01T00:00:00Z",
)  # fmt: skip


@pytest.mark.parametrize(
    ("url", "web"),
    [
        ("https://github.com/myorg/gitops.git", "https://github.com/myorg/gitops"),
        ("https://github.com/myorg/gitops", "https://github.com/myorg/gitops"),
        ("git@github.com:myorg/gitops.git", "https://github.com/myorg/gitops"),
        ("ssh://git@git.example:2222/team/gitops.git", "https://git.example/team/gitops"),
        ("http://127.0.0.1:8080/git/gitops.git/", "http://127.0.0.1:8080/git/gitops"),
        ("https://user:pw@host/a/b.git", "https://host/a/b"),
    ],
    ids=["https", "no-dotgit", "scp", "ssh-port", "http-trailing-slash", "userinfo-dropped"],
)
def test_web_url(url: str, web: str) -> None:
    assert events.web_url(url) == web


def shape(value: Any) -> Any:
    """The JSON types of a document, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_argocd_payload_has_the_shape_argo_cds_fixture_has() -> None:
    theirs = json.loads(fixture("argocd-github-push-commit.json"))
    ours = json.loads(events.argocd(PUSHED, "https://argocd/api/webhook", "k").body)
    # what Argo CD's GitHub push handler reads, with the fixture's types
    for key in ("ref", "before", "after"):
        assert type(ours[key]) is type(theirs[key])
    assert ours["ref"] == "refs/heads/main" and ours["after"] == "c" * 40
    assert ours["repository"]["html_url"] == "https://github.com/myorg/gitops"
    assert ours["repository"]["default_branch"] == "main"
    for key in ("added", "modified", "removed", "id", "message", "timestamp"):
        assert type(ours["commits"][0][key]) is type(theirs["commits"][0][key])
    assert ours["commits"][0]["modified"] == ["environments/dev/values.yaml"]
    # every top-level key we send is one the real event has
    assert set(ours) <= set(theirs)
    headers = dict(events.argocd(PUSHED, "u", "k").headers)
    assert headers["X-GitHub-Event"] == "push"
    assert (
        headers["X-GitHub-Event"]
        == fixture("argocd-github-push-commit.headers").decode().split(": ")[1].strip()
    )


def test_signatures() -> None:
    note = events.argocd(PUSHED, "u", "k")
    assert auth.signed(note.body, "k", note.headers["X-Hub-Signature-256"])
    assert "X-Hub-Signature-256" not in events.argocd(PUSHED, "u", None).headers
    generic = events.generic(PUSHED, "u", "k")
    assert auth.signed(generic.body, "k", generic.headers["X-Signature"])
    assert json.loads(generic.body) == {
        "name": "myapp-dev", "namespace": "gitops", "image": "ghcr.io/myorg/myapp",
        "tag": "1.2.0-dev", "digest": "sha256:" + "a" * 64, "commit": "c" * 40,
        "repository": "git@github.com:myorg/gitops.git", "branch": "main",
        "files": ["environments/dev/values.yaml"],
    }  # fmt: skip


@pytest.fixture
async def argo() -> AsyncIterator[ArgoCD]:
    standin = await ArgoCD(secret="argo-s3cret").start()
    yield standin
    await standin.stop()


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_sender_delivers_once_per_url_and_commit(argo: ArgoCD) -> None:
    sender = sending.Sender(sleep=Sleeps())
    note = events.argocd(PUSHED, argo.url, "argo-s3cret")
    assert await sender.send(note) is None
    assert await sender.send(events.argocd(PUSHED, argo.url, "argo-s3cret")) is None
    assert len(argo.received) == 1 and argo.requests == 1
    assert argo.received[0]["after"] == PUSHED.commit
    await sender.aclose()


async def test_sender_retries_5xx_with_backoff_then_reports(argo: ArgoCD) -> None:
    sleeps = Sleeps()
    sender = sending.Sender(sleep=sleeps, backoff=(0.5, 1.0, 2.0))
    argo.answer = 503
    problem = await sender.send(events.argocd(PUSHED, argo.url, "argo-s3cret"))
    assert problem is not None and "HTTP 503" in problem and argo.url.split("/api")[0] in problem
    assert sleeps.delays == [0.5, 1.0, 2.0] and argo.requests == 4
    argo.answer = None  # it failed, so the same push may be sent again (a later pass)
    assert await sender.send(events.argocd(PUSHED, argo.url, "argo-s3cret")) is None
    await sender.aclose()


async def test_sender_does_not_retry_a_4xx_and_names_a_bad_signature(argo: ArgoCD) -> None:
    sleeps = Sleeps()
    sender = sending.Sender(sleep=sleeps)
    problem = await sender.send(events.argocd(PUSHED, argo.url, "wrong-secret"))
    assert problem is not None and "HTTP 400" in problem and sleeps.delays == []
    assert argo.rejected == ["signature mismatch"]
    await sender.aclose()


async def test_sender_unreachable_is_retried_and_reported() -> None:
    from tests.servers import free_port

    sleeps = Sleeps()
    sender = sending.Sender(sleep=sleeps, backoff=(0.1,))
    url = f"http://user:pw@127.0.0.1:{free_port()}/hook?token=x"
    problem = await sender.send(events.generic(PUSHED, url, None))
    assert problem is not None and "could not connect" in problem
    assert "pw" not in problem and "token" not in problem and sleeps.delays == [0.1]
    await sender.aclose()
