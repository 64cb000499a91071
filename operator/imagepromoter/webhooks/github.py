"""GitHub webhooks: `package` and `registry_package` events of container images, and `ping`.

GitHub's examples differ from its docs, and the parser follows what is really sent:
- the tag is `package_version.container_metadata.tag.name`, which is empty in GitHub's own
  container examples (a push by digest, or one manifest of a multi-arch push): such an event
  names the image but no tag, so it starts a fresh pass without payload fields;
- the image is `package_version.package_url` without its `:tag` (`ghcr.io/Owner/name:`), else
  `ghcr.io/{owner.login}/{name}` (Argo CD's smaller fixture has only those), lowercased, since
  GitHub spells owners as typed and OCI names are lowercase;
- `package_type` is not reliable (`npm` next to `ecosystem: docker` and a CONTAINER registry in
  the examples): any of the three saying container/docker is a container.
Every other event (`push`, `repository_dispatch`, ...) and action is Ignored, answered 2xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagepromoter.webhooks import model

EVENTS = ("package", "registry_package")
ACTIONS = ("published", "updated")
_CONTAINER_WORDS = frozenset({"container", "docker"})


def parse(body: bytes, headers: Mapping[str, str]) -> list[model.Event] | model.Ignored:
    """A GitHub webhook delivery into Events; `headers` must carry X-GitHub-Event."""
    kind = _header(headers, "X-GitHub-Event")
    if not kind:
        raise model.Malformed("the X-GitHub-Event header is missing")
    doc = model.mapping(model.load_json(body), "the body")
    if kind == "ping":
        return model.Ignored("ping")
    if kind not in EVENTS:
        return model.Ignored(f"event {kind[:40]} is not a package event")
    action = doc.get("action")
    if action not in ACTIONS:
        return model.Ignored(f"action {str(action)[:40]} of {kind}")
    package = model.mapping(doc.get(kind), f"{kind}")
    if not _is_container(package):
        return model.Ignored("not a container package")
    version = package.get("package_version")
    version = version if isinstance(version, Mapping) else {}
    image = _image(package, version)
    if image is None:
        raise model.Malformed(f"{kind} names no image (package_url or owner.login and name)")
    return [model.Event(image=image, tag=_tag(version))]


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value.strip()
    return ""


def _is_container(package: Mapping[str, Any]) -> bool:
    registry = package.get("registry")
    words = {
        str(package.get("package_type") or "").lower(),
        str(package.get("ecosystem") or "").lower(),
        str(registry.get("type") or "").lower() if isinstance(registry, Mapping) else "",
    }
    return bool(words & _CONTAINER_WORDS)


def _image(package: Mapping[str, Any], version: Mapping[str, Any]) -> str | None:
    url = version.get("package_url")
    if isinstance(url, str) and "/" in url:
        name = url.strip()
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name = name[: len(name) - len(last)] + last.split(":", 1)[0]
        return name.lower()
    owner = package.get("owner")
    login = owner.get("login") if isinstance(owner, Mapping) else None
    package_name = package.get("name")
    if isinstance(login, str) and login and isinstance(package_name, str) and package_name:
        return f"ghcr.io/{login}/{package_name}".lower()
    return None


def _tag(version: Mapping[str, Any]) -> str | None:
    metadata = version.get("container_metadata")
    if isinstance(metadata, Mapping):
        tag = metadata.get("tag")
        if isinstance(tag, Mapping):
            return model.tag_or_none(tag.get("name"))
    return None
