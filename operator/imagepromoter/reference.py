"""Image references as `docker pull` reads them, without a tag or digest.

`spec.image` names a repository, not an image version: the policy picks the tag. The rules
follow the distribution reference grammar: the first path component is a registry host when it
contains a `.` or `:` or is `localhost`; otherwise the image lives on Docker Hub, whose API host is
`registry-1.docker.io` and whose one-part names live under `library/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagepromoter import errors
from imagepromoter.credentials import BasicCredentials

DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = re.compile(rf"^(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_MAX_NAME = 255  # the distribution spec's limit on host/repository
_FIELD = "spec.image"


@dataclass(frozen=True)
class ImageReference:
    """A repository on a registry: `host` is what we talk HTTP to, `repository` the v2 name."""

    host: str
    repository: str

    @property
    def is_docker_hub(self) -> bool:
        return self.host == DOCKER_HUB_API

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}"


def parse(image: str) -> ImageReference:
    """Parse `spec.image`; raise InvalidSpec naming the fix for what `docker pull` would refuse."""
    text = image.strip()
    if not text:
        raise errors.InvalidSpec(_FIELD, "must name an image such as ghcr.io/org/app")
    if "://" in text:
        raise errors.InvalidSpec(_FIELD, f"{text!r} has a URL scheme; write host/repository only")
    if "@" in text:
        raise errors.InvalidSpec(
            _FIELD, f"{text!r} pins a digest; give the repository only, the policy picks the tag"
        )
    parts = text.split("/")
    if len(parts) == 1 and _looks_like_host(parts[0].rsplit(":", 1)[0]) and ":" in parts[0]:
        raise errors.InvalidSpec(
            _FIELD, f"{text!r} names a registry but no repository; write {text}/<repository>"
        )
    if len(parts) > 1 and _looks_like_host(parts[0]):
        host, path = parts[0], parts[1:]
    else:
        host, path = "docker.io", parts
    if ":" in path[-1]:
        bare = "/".join([*([] if host == "docker.io" else [host]), *path]).rsplit(":", 1)[0]
        raise errors.InvalidSpec(
            _FIELD, f"{text!r} has a tag; write {bare!r} and choose tags with tagRegex and policy"
        )
    if not _HOST.match(host):
        raise errors.InvalidSpec(_FIELD, f"{host!r} is not a valid registry host")
    if "" in path:
        raise errors.InvalidSpec(
            _FIELD, f"{text!r} has an empty path component (a doubled or trailing /)"
        )
    if len(text) > _MAX_NAME:
        raise errors.InvalidSpec(_FIELD, f"is longer than {_MAX_NAME} characters")
    for component in path:
        if not _COMPONENT.match(component):
            raise errors.InvalidSpec(
                _FIELD,
                f"{component!r} in {text!r} is not a valid repository name component "
                "(lowercase letters, digits and . _ - separators)",
            )
    if host.lower() in _DOCKER_HUB_ALIASES:
        host = DOCKER_HUB_API
        if len(path) == 1:
            path = ["library", *path]
    return ImageReference(host=host, repository="/".join(path))


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True)
class RegistryAccess:
    """How to reach one repository: where, as whom, and over which transport.

    Lives in the pure core so that `reconcile` can build it without importing the HTTP adapter.
    """

    image: ImageReference
    credentials: BasicCredentials | None = None
    secret_name: str | None = (
        None  # named in messages: "the credentials in Secret X cannot read it"
    )
    insecure: bool = False
    # How fresh an answer must be: one whose request started at or after this wall-clock instant
    # (epoch seconds), shared with any other CR (scans.py); None: any answer still kept will do.
    not_before: float | None = None
