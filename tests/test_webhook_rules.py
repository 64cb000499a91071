"""Webhook authentication, replay and rate guards, and routing (API.md's table), table-driven."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from imagepromoter.webhooks import auth, guards, model, routing


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("token abc", "abc"),
        ("Basic abc", None),
        ("Bearer ", None),
        ("", None),
    ],
    ids=["bearer", "case-and-space", "github-token-form", "basic", "empty-token", "none"],
)
def test_bearer(header: str, token: str | None) -> None:
    assert auth.bearer({"Authorization": header} if header else {}) == token


def test_same_is_exact_and_never_empty() -> None:
    assert auth.same("s3cret", "s3cret")
    assert not auth.same("s3cre", "s3cret") and not auth.same("", "") and not auth.same(None, "x")


BODY = b'{"zen": "Design for failure."}'
GOOD = "sha256=" + hmac.new(b"key", BODY, hashlib.sha256).hexdigest()
SHA1 = "sha1=" + hmac.new(b"key", BODY, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (GOOD, True),
        (GOOD.upper().replace("SHA256=", "sha256="), True),
        (SHA1, False),
        (GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1"), False),
        ("sha256=", False),
        (GOOD.removeprefix("sha256="), False),
        (None, False),
    ],
    ids=["good", "upper-hex", "sha1-only", "wrong", "empty-digest", "no-algorithm", "missing"],
)
def test_signed(header: str | None, ok: bool) -> None:
    assert auth.signed(BODY, "key", header) is ok
    assert auth.sign(BODY, "key") == GOOD


def test_secret_path_depends_on_token_name_and_namespace() -> None:
    base = auth.secret_path("t", "hub", "gitops")
    assert base.startswith("/hook/") and len(base) == len("/hook/") + 64
    others = {auth.secret_path("u", "hub", "gitops"), auth.secret_path("t", "hub2", "gitops"),
              auth.secret_path("t", "hub", "other")}  # fmt: skip
    assert base not in others and len(others) == 3
    assert "t" not in base.removeprefix("/hook/").replace("t", "")  # hex only, no token


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_deliveries_bounded_and_expiring() -> None:
    clock = Clock()
    seen = guards.Deliveries(max_entries=3, ttl=10, clock=clock)
    assert not seen.seen("h", "d1")
    seen.remember("h", "d1")
    assert seen.seen("h", "d1") and not seen.seen("other-hook", "d1")
    for i in range(2, 6):
        seen.remember("h", f"d{i}")
    assert len(seen) == 3 and not seen.seen("h", "d1"), "oldest dropped past max_entries"
    clock.now = 11
    assert not seen.seen("h", "d5") and len(seen) == 0, "expired after ttl"
    seen.remember("h", "")
    assert not seen.seen("h", "") and len(seen) == 0, "an empty id is never a replay"


def test_rate_limit_per_address_refills_and_is_bounded() -> None:
    clock = Clock()
    limit = guards.RateLimit(rate=1, burst=2, max_addresses=2, clock=clock)
    assert [limit.allow("a") for _ in range(3)] == [True, True, False]
    assert limit.allow("b"), "another address has its own bucket"
    clock.now = 1.0
    assert limit.allow("a") and not limit.allow("a")
    limit.allow("c")
    assert len(limit) == 2


def spec(
    image: str = "ghcr.io/myorg/myapp",
    regex: str = r"^\d+\.\d+\.\d+-dev$",
    url: str = "https://github.com/myorg/gitops.git",
    **extra: Any,
) -> dict[str, Any]:
    return {"image": image, "tagRegex": regex, "git": {"url": url}, **extra}


DEV = routing.Candidate("myapp-dev", "gitops", spec(), {"env": "dev"})
PROD = routing.Candidate(
    "myapp-prod", "gitops", spec(regex=r"^\d+\.\d+\.\d+-(stable|prod)$"), {"env": "prod"}
)
OTHER_NS = routing.Candidate("myapp-dev", "elsewhere", spec())
OTHER_REPO = routing.Candidate("other", "gitops", spec(url="git@github.com:myorg/infra.git"))
DEBUG_EXCLUDED = routing.Candidate(
    "nodebug",
    "gitops",
    spec(regex=r"^.*$", excludeTags=[".*-debug$"], git={"url": "https://h/o/x"}),
)
HUB = routing.Candidate("hub", "gitops", spec(image="nginx", regex=r"^.*$", url="https://h/o/hub"))
BROKEN = routing.Candidate("broken", "gitops", spec(regex="^(unclosed$"))
ALL = [DEV, PROD, OTHER_NS, OTHER_REPO, DEBUG_EXCLUDED, HUB, BROKEN]


def hook(type_: str = "github-dispatch", **kw: Any) -> routing.Hook:
    return routing.Hook(name="h", namespace="gitops", type=type_, **kw)


def dispatch(tag: str | None, *, repo: str = "myorg/gitops", image: str | None = None,
             event_type: str = "update-gitops-repo") -> model.Event:  # fmt: skip
    return model.Event(image=image, tag=tag, repository=repo, event_type=event_type)


ROUTES = [
    ("dev-tag", hook(), dispatch("1.4.2-dev"), ["myapp-dev"]),
    ("stable-tag", hook(), dispatch("1.4.2-stable"), ["myapp-prod"]),
    ("repo-case-and-dotgit", hook(), dispatch("1.0.0-dev", repo="MyOrg/GitOps"), ["myapp-dev"]),
    ("unknown-repo", hook(), dispatch("1.0.0-dev", repo="myorg/nope"), []),
    ("regex-refuses", hook(), dispatch("1.0.0-rc1"), []),
    ("no-tag-reaches-by-repo", hook(), dispatch(None), ["myapp-dev", "myapp-prod"]),
    ("image-must-match", hook(), dispatch("1.0.0-dev", image="ghcr.io/myorg/other"), []),
    ("image-matches", hook(), dispatch("1.0.0-dev", image="GHCR.io/myorg/myapp"), ["myapp-dev"]),
    ("scp-url", hook(), dispatch("1.0.0-dev", repo="myorg/infra"), ["other"]),
    ("event-type-listed", hook(event_types=("update-gitops-repo",)), dispatch("1.0.0-dev"),
     ["myapp-dev"]),
    ("event-type-not-listed", hook(event_types=("deploy",)), dispatch("1.0.0-dev"), []),
    ("selector", hook(selector={"matchLabels": {"env": "prod"}}), dispatch(None), ["myapp-prod"]),
    ("selector-expression",
     hook(selector={"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}),
     dispatch(None), ["myapp-prod"]),
    ("registry-image", hook("distribution"), model.Event("ghcr.io/myorg/myapp", "2.0.0-dev"),
     ["myapp-dev", "other", "nodebug"]),
    ("registry-excluded", hook("distribution"), model.Event("ghcr.io/myorg/myapp", "2.0-debug"),
     []),
    ("docker-hub-aliases", hook("dockerhub"), model.Event("docker.io/library/nginx", "1.27"),
     ["hub"]),
    ("digest-only", hook("harbor"), model.Event("ghcr.io/myorg/myapp", None),
     ["myapp-dev", "myapp-prod", "other", "nodebug"]),
    ("unknown-image", hook("generic-hmac"), model.Event("ghcr.io/x/y", "1.0.0-dev"), []),
    ("unparsable-image", hook("generic-hmac"), model.Event("::", "1.0.0-dev"), []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("hook_", "event", "names"), [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES]
)
def test_routes(hook_: routing.Hook, event: model.Event, names: list[str]) -> None:
    reached = routing.reached(event, hook_, ALL)
    assert [c.name for c in reached] == names
    assert all(c.namespace == "gitops" for c in reached)


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("https://github.com/MyOrg/GitOps.git", "myorg/gitops"),
        ("http://127.0.0.1:8080/git/myorg/gitops", "myorg/gitops"),
        ("ssh://git@host:22/a/b/c.git", "b/c"),
        ("git@github.com:myorg/gitops.git", "myorg/gitops"),
        ("https://host/onlyone.git", None),
        ("not a url", None),
    ],
    ids=["https", "http-subpath", "ssh", "scp", "one-segment", "garbage"],
)
def test_repository_of(url: str, repo: str | None) -> None:
    assert routing.repository_of(url) == repo


def test_unknown_selector_operator_selects_nothing() -> None:
    selector = {"matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]}
    assert not routing.selects(selector, {"env": "2"})
