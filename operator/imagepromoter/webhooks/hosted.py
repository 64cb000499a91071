"""Docker Hub, Harbor and Quay: the senders that cannot sign, so the URL path is the secret.

Each posts its own push payload to `status.path` of the ImageWebhook (see auth.secret_path):
- Docker Hub: `repository.repo_name` (a Docker Hub name, `library/` implied for one part) and
  `push_data.tag`.
- Harbor, default and CloudEvents formats: `event_data` (or `data`) `.resources[]`, image from
  `resource_url`'s host + `repository.repo_full_name`. Harbor puts the digest in `tag` when an
  artifact is pushed by digest: that names the image but no tag (a fresh pass, no fields).
  Only PUSH_ARTIFACT / harbor.artifact.pushed announces anything.
- Quay: `docker_url` (or quay.io + `repository`) and `updated_tags[]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagepromoter.webhooks import model

HARBOR_PUSH = frozenset({"PUSH_ARTIFACT", "harbor.artifact.pushed"})


def parse(kind: str, body: bytes) -> list[model.Event] | model.Ignored:
    """A push payload of `kind` (dockerhub, harbor, quay) into Events."""
    doc = model.mapping(model.load_json(body), "the body")
    if kind == "dockerhub":
        return _dockerhub(doc)
    if kind == "harbor":
        return _harbor(doc)
    if kind == "quay":
        return _quay(doc)
    raise ValueError(f"not a secret-path sender: {kind}")


def _dockerhub(doc: Mapping[str, Any]) -> list[model.Event]:
    repository = model.mapping(doc.get("repository"), "repository")
    push = model.mapping(doc.get("push_data"), "push_data")
    name = repository.get("repo_name")
    if not isinstance(name, str) or not name:
        raise model.Malformed("repository.repo_name is missing")
    return [model.Event(image=f"docker.io/{name}", tag=model.tag_or_none(push.get("tag")))]


def _harbor(doc: Mapping[str, Any]) -> list[model.Event] | model.Ignored:
    kind = doc.get("type")
    if kind not in HARBOR_PUSH:
        return model.Ignored(f"Harbor event {str(kind)[:40]} is not a push")
    data = model.mapping(doc.get("event_data", doc.get("data")), "event_data")
    repository = model.mapping(data.get("repository"), "event_data.repository")
    full_name = repository.get("repo_full_name")
    resources = data.get("resources")
    if not isinstance(full_name, str) or not full_name or not isinstance(resources, list):
        raise model.Malformed("a Harbor push needs repository.repo_full_name and resources")
    events: dict[tuple[str, str | None], model.Event] = {}
    for item in resources:
        resource = model.mapping(item, "each resource")
        url = resource.get("resource_url")
        if not isinstance(url, str) or "/" not in url:
            raise model.Malformed("a Harbor resource needs resource_url (host/project/name...)")
        image = f"{url.split('/', 1)[0]}/{full_name}"
        tag = model.tag_or_none(resource.get("tag"))
        events.setdefault((image, tag), model.Event(image=image, tag=tag))
    return list(events.values())


def _quay(doc: Mapping[str, Any]) -> list[model.Event]:
    url = doc.get("docker_url")
    repository = doc.get("repository")
    if isinstance(url, str) and url:
        image = url
    elif isinstance(repository, str) and repository:
        image = f"quay.io/{repository}"
    else:
        raise model.Malformed("a Quay push needs docker_url or repository")
    tags = doc.get("updated_tags")
    if not isinstance(tags, list):
        raise model.Malformed("a Quay push needs updated_tags")
    named = [model.tag_or_none(tag) for tag in tags]
    events = [model.Event(image=image, tag=tag) for tag in dict.fromkeys(named) if tag]
    return events or [model.Event(image=image)]
