"""Webhook payload parsers, table-driven over the real payloads in ../shared/fixtures/webhooks.

The fixtures are third-party examples read in place (never copied into the repository); NOTES.md
there lists where they differ from the senders' docs, and each quirk is a row here: GitHub's
container examples with an empty tag name, the distribution push envelope with no tagged
manifest, Harbor's digest in `tag`, Harbor's CloudEvents doc example with // comments. When the
folder is absent the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from imagepromoter.webhooks import distribution, generic, github, github_dispatch, hosted, model

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "webhooks"


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing (CI must have ../shared beside the clone)")
        pytest.skip(f"{path} is not here")
    return path.read_bytes()


def headers_of(name: str) -> dict[str, str]:
    """A .headers fixture as a dict (one `Name: value` per line)."""
    lines = fixture(name).decode().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def without_comments(text: bytes) -> bytes:
    """Harbor's docs example minus its whole-line // comments (Harbor itself sends JSON)."""
    return b"\n".join(line for line in text.splitlines() if not line.strip().startswith(b"//"))


def events(*pairs: tuple[str, str | None]) -> list[model.Event]:
    return [model.Event(image=image, tag=tag) for image, tag in pairs]


GITHUB_CASES = [
    # (fixture, X-GitHub-Event, expected)
    ("github-ping.json", "ping", model.Ignored("ping")),
    ("github-ping-with-app_id.json", "ping", model.Ignored("ping")),
    # GitHub's own examples: the tag name is "" (NOTES.md) -> the image, no tag
    (
        "github-package-published-docker.json",
        "package",
        events(("ghcr.io/codertocat/hello-world", None)),
    ),
    (
        "github-registry_package-published-docker.json",
        "registry_package",
        events(("ghcr.io/codertocat/hello-world", None)),
    ),
    # Argo CD's smaller fixture: no package_url, so ghcr.io/{owner.login}/{name}, tag 5.5.9
    (
        "argocd-ghcr-package-published.json",
        None,  # from its .headers file
        events(("ghcr.io/nitishfy/guestbook", "5.5.9")),
    ),
    ("github-push-tag-deleted.json", "push", model.Ignored("event push is not a package event")),
    ("github-push-new-branch.json", "push", model.Ignored("event push is not a package event")),
    (
        "argocd-github-push-commit.json",
        None,
        model.Ignored("event push is not a package event"),
    ),
    (
        "github-repository_dispatch.json",
        "repository_dispatch",
        model.Ignored("event repository_dispatch is not a package event"),
    ),
]


@pytest.mark.parametrize(
    ("name", "kind", "expected"), GITHUB_CASES, ids=[c[0] for c in GITHUB_CASES]
)
def test_github_fixtures(name: str, kind: str | None, expected: Any) -> None:
    headers = (
        {"X-GitHub-Event": kind} if kind else headers_of(name.removesuffix(".json") + ".headers")
    )
    assert github.parse(fixture(name), headers) == expected


def test_github_package_action_and_type_filters() -> None:
    doc = json.loads(fixture("argocd-ghcr-package-published.json"))
    doc["action"] = "deleted"
    assert isinstance(github.parse(json.dumps(doc).encode(), {"X-GitHub-Event": "package"}),
                      model.Ignored)  # fmt: skip
    doc["action"] = "updated"
    doc["package"]["package_type"] = "npm"
    assert github.parse(json.dumps(doc).encode(), {"x-github-event": "package"}) == model.Ignored(
        "not a container package"
    )


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (b"{}", {}, "X-GitHub-Event header is missing"),
        (b"{not json", {"X-GitHub-Event": "package"}, "not JSON"),
        (b"[1]", {"X-GitHub-Event": "package"}, "must be a JSON object"),
        (b'{"action":"published"}', {"X-GitHub-Event": "package"}, "package must be a JSON"),
    ],
    ids=["no-event-header", "bad-json", "not-object", "no-package"],
)
def test_github_malformed(body: bytes, headers: dict[str, str], problem: str) -> None:
    with pytest.raises(model.Malformed, match=re.escape(problem)):
        github.parse(body, headers)


def test_distribution_envelope_from_the_docs_has_no_tagged_manifest() -> None:
    # NOTES.md: the docs' push example carries a manifest without a tag and two blobs; its
    # headers example even puts the media type in Host. Nothing to announce: Ignored.
    headers = headers_of("distribution-push-envelope-v2.headers")
    assert headers["Content-Type"] == "application/vnd.docker.distribution.events.v2+json"
    parsed = distribution.parse(fixture("distribution-push-envelope-v2.json"), headers)
    assert parsed == model.Ignored("no push of a tagged manifest")


def test_distribution_pull_is_ignored() -> None:
    parsed = distribution.parse(fixture("distribution-pull-manifest-with-tag.json"), {})
    assert parsed == model.Ignored("no push of a tagged manifest")


def test_distribution_multi_arch_push_is_one_event_per_tag() -> None:
    """One event per manifest of a multi-arch push: the tagged index counts, once."""
    pull = json.loads(fixture("distribution-pull-manifest-with-tag.json"))["events"][0]
    push = json.loads(fixture("distribution-push-envelope-v2.json"))["events"]

    def manifest(tag: str | None, digest: str) -> dict[str, Any]:
        event = json.loads(json.dumps(pull))
        event["action"], event["target"]["digest"] = "push", digest
        event["target"].pop("tag")
        if tag:
            event["target"]["tag"] = tag
        return event

    envelope = {
        "events": [
            manifest(None, "sha256:" + "a" * 64),  # linux/amd64, untagged
            manifest(None, "sha256:" + "b" * 64),  # linux/arm64, untagged
            *push[1:],  # blobs
            manifest("1.2.0", "sha256:" + "c" * 64),  # the index, tagged
            manifest("1.2.0", "sha256:" + "c" * 64),  # a repeat (retried notification)
        ]
    }
    parsed = distribution.parse(
        json.dumps(envelope).encode(),
        {"Content-Type": "application/vnd.docker.distribution.events.v1+json"},
    )
    assert parsed == events(("192.168.100.227:5000/hello-world", "1.2.0"))


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (b'{"events": 1}', {}, "no events list"),
        (b'{"events": [{"action": "push"}]}', {}, "target and request"),
        (b"{}", {"Content-Type": "text/plain"}, "not a registry notification envelope"),
    ],
    ids=["events-not-list", "push-without-target", "wrong-media-type"],
)
def test_distribution_malformed(body: bytes, headers: dict[str, str], problem: str) -> None:
    with pytest.raises(model.Malformed, match=re.escape(problem)):
        distribution.parse(body, headers)


HOSTED_CASES = [
    ("dockerhub", "dockerhub-push.json", events(("docker.io/svendowideit/testhook", "latest"))),
    # Harbor puts the digest in `tag` (NOTES.md): the image, no tag
    ("harbor", "harbor-push-artifact-default.json", events(("localhost/harbor/alpine", None))),
]


@pytest.mark.parametrize(
    ("kind", "name", "expected"), HOSTED_CASES, ids=[c[1] for c in HOSTED_CASES]
)
def test_hosted_fixtures(kind: str, name: str, expected: Any) -> None:
    assert hosted.parse(kind, fixture(name)) == expected


def test_harbor_cloudevents_doc_example() -> None:
    raw = fixture("harbor-push-artifact-cloudevents.jsonc")
    with pytest.raises(model.Malformed, match="not JSON"):  # the docs' comments are not JSON
        hosted.parse("harbor", raw)
    parsed = hosted.parse("harbor", without_comments(raw))
    assert parsed == events(("localhost/harbor/alpine", None))


def test_harbor_with_a_real_tag_and_other_event_types() -> None:
    doc = json.loads(fixture("harbor-push-artifact-default.json"))
    doc["event_data"]["resources"][0]["tag"] = "1.4.0"
    assert hosted.parse("harbor", json.dumps(doc).encode()) == events(
        ("localhost/harbor/alpine", "1.4.0")
    )
    doc["type"] = "PULL_ARTIFACT"
    assert isinstance(hosted.parse("harbor", json.dumps(doc).encode()), model.Ignored)


def test_quay_push() -> None:
    # Quay's documented push payload (no fixture was collected for it)
    body = {
        "name": "repository",
        "repository": "mynamespace/repository",
        "namespace": "mynamespace",
        "docker_url": "quay.io/mynamespace/repository",
        "homepage": "https://quay.io/repository/mynamespace/repository",
        "updated_tags": ["latest", "1.2.0", "latest"],
    }
    assert hosted.parse("quay", json.dumps(body).encode()) == events(
        ("quay.io/mynamespace/repository", "latest"),
        ("quay.io/mynamespace/repository", "1.2.0"),
    )


@pytest.mark.parametrize(
    ("kind", "body", "problem"),
    [
        ("dockerhub", b'{"push_data": {}, "repository": {}}', "repo_name is missing"),
        ("harbor", b'{"type": "PUSH_ARTIFACT", "event_data": {}}', "repository must be"),
        ("quay", b'{"docker_url": "quay.io/a/b"}', "updated_tags"),
    ],
    ids=["dockerhub", "harbor", "quay"],
)
def test_hosted_malformed(kind: str, body: bytes, problem: str) -> None:
    with pytest.raises(model.Malformed, match=re.escape(problem)):
        hosted.parse(kind, body)


SEED_PAYLOAD = {
    "event_type": "update-gitops-repo",
    "client_payload": {
        "docker_image_tag": "1.4.2-dev",
        "git_branch": "feature/login",
        "commit_message": "Fix the login form",
    },
}


def test_dispatch_seed_payload() -> None:
    event = github_dispatch.parse(json.dumps(SEED_PAYLOAD).encode(), owner="myorg", repo="gitops")
    assert event == model.Event(
        image=None,
        tag="1.4.2-dev",
        fields=SEED_PAYLOAD["client_payload"],
        repository="myorg/gitops",
        event_type="update-gitops-repo",
    )


def openapi_dispatch() -> dict[str, Any]:
    spec = json.loads(fixture("github-openapi-subset.json"))
    return dict(spec["paths"]["/repos/{owner}/{repo}/dispatches"]["post"])


def test_dispatch_rules_are_githubs() -> None:
    """Our limits are the ones in GitHub's OpenAPI description of the endpoint."""
    operation = openapi_dispatch()
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["event_type"]
    assert schema["properties"]["client_payload"]["maxProperties"] == model.MAX_FIELDS
    assert schema["properties"]["event_type"]["maxLength"] == 100
    assert "204" in operation["responses"]
    # GitHub's example body (booleans in client_payload): no tag, fields as JSON text
    example = operation["requestBody"]["content"]["application/json"]["example"]
    event = github_dispatch.parse(json.dumps(example).encode(), owner="o", repo="r")
    assert event.tag is None and event.fields == {"unit": "false", "integration": "true"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "not JSON"),
        (b'{"client_payload": {}}', "event_type is required"),
        (b'{"event_type": ""}', "event_type is required"),
        (json.dumps({"event_type": "x" * 101}).encode(), "longer than 100"),
        (
            json.dumps({"event_type": "e",
                        "client_payload": {f"k{i}": "v" for i in range(11)}}).encode(),
            "11 top-level keys",
        ),
        (json.dumps({"event_type": "e", "client_payload": []}).encode(), "JSON object"),
        (
            json.dumps({"event_type": "e", "client_payload": {"docker_image_tag": "a b"}}).encode(),
            "is not an image tag",
        ),
        (
            json.dumps({"event_type": "e", "client_payload": {"x": "y" * 4097}}).encode(),
            "longer than 4096",
        ),
        (b"\xff\xfe", "not UTF-8"),
    ],
    ids=["bad-json", "no-event-type", "empty-event-type", "long-event-type", "eleven-keys",
         "payload-not-object", "bad-tag", "long-value", "not-utf8"],
)  # fmt: skip
def test_dispatch_malformed(body: bytes, problem: str) -> None:
    with pytest.raises(model.Malformed, match=re.escape(problem)):
        github_dispatch.parse(body, owner="o", repo="r")


def test_dispatch_fields_keep_strings_and_scalars_only() -> None:
    payload = {"event_type": "e", "client_payload": {
        "tag": "1.0.0", "n": 3, "nested": {"a": 1}, "list": [1], "none": None, "bad-name": "x",
    }}  # fmt: skip
    event = github_dispatch.parse(json.dumps(payload).encode(), owner="o", repo="r")
    assert event.tag == "1.0.0" and event.fields == {"tag": "1.0.0", "n": "3"}


def test_generic() -> None:
    body = {"image": "registry.example/app", "tag": "2.0.0", "git_commit": "abc", "n": 1}
    assert generic.parse(json.dumps(body).encode()) == [
        model.Event(
            image="registry.example/app", tag="2.0.0", fields={"git_commit": "abc", "n": "1"}
        )
    ]
    with pytest.raises(model.Malformed, match="image is required"):
        generic.parse(fixture("aws-ecr-image-action-push.json"))  # not our shape
    with pytest.raises(model.Malformed, match="tag is not an image tag"):
        generic.parse(b'{"image": "a/b", "tag": "sha256:abc"}')


# Every payload fixture is read by some test above; a new one must be added to a table.
COVERED = (
    {c[0] for c in GITHUB_CASES}
    | {c[1] for c in HOSTED_CASES}
    | {
        "distribution-push-envelope-v2.json",
        "distribution-pull-manifest-with-tag.json",
        "harbor-push-artifact-cloudevents.jsonc",
        "aws-ecr-image-action-push.json",
        "github-openapi-subset.json",
    }
)
NOT_PAYLOADS = {"gitea-swagger-subset.json"}  # Gitea's pull request API, for another issue


def test_every_fixture_is_covered() -> None:
    fixture("NOTES.md")
    present = {p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".jsonc")}
    assert present - COVERED - NOT_PAYLOADS == set()


def test_trigger_round_trip_and_bounds() -> None:
    trigger = model.Trigger(
        tag="1.0.0-dev", source="upstream-ci", type="github-dispatch", delivery="d1",
        received_at="2026-12-01T00:00:00Z", fields={"git_branch": "main"},
    )  # fmt: skip
    assert model.decode(trigger.encode()) == trigger
    assert trigger.status() == {
        "tag": "1.0.0-dev", "source": "upstream-ci", "receivedAt": "2026-12-01T00:00:00Z",
        "fields": {"git_branch": "main"},
    }  # fmt: skip
    assert model.decode("not json") is None and model.decode(None) is None
    biggest = {f"k{i}": "x" * model.MAX_VALUE for i in range(model.MAX_FIELDS)}
    size = len(model.Trigger("t", "s", "generic-hmac", "d" * 64, "now", biggest).encode())
    assert size < 64 * 1024, "fits the annotation limit with room for others"
