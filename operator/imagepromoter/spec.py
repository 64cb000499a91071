"""The ImagePromotion spec as typed, immutable objects, or a list of errors naming fields.

`parse` is the only way from a CR's `spec` dict to a `Promotion`: the reconcile never reads the
raw dict. Everything the OpenAPI schema cannot check (regexes compile, ranges parse, paths stay in
the repository, templates name known variables) is checked here, and every problem is reported at
once, each naming its field, so a user fixes the CR in one edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from imagepromoter import reference

DEFAULT_INTERVAL = timedelta(minutes=5)
DEFAULT_AUTHOR_NAME = "imagepromoter"
DEFAULT_AUTHOR_EMAIL = "imagepromoter@localhost"
DEFAULT_COMMIT_MESSAGE = "Promote ${image}:${tag} to ${path}"
POLICIES = ("semver", "numerical", "alphabetical", "newest")


@dataclass(frozen=True)
class Target:
    """One value in one file: by dotted `key`, or by `regex` (exactly one of them is set)."""

    path: str
    key: str | None
    regex: str | None
    value: str = "${tag}"


@dataclass(frozen=True)
class Author:
    name: str = DEFAULT_AUTHOR_NAME
    email: str = DEFAULT_AUTHOR_EMAIL


@dataclass(frozen=True)
class GitSpec:
    url: str
    branch: str | None = None  # None: the remote's default branch (its HEAD)
    push_branch: str | None = None
    secret_ref: str | None = None
    author: Author = Author()
    commit_message: str = DEFAULT_COMMIT_MESSAGE


@dataclass(frozen=True)
class Promotion:
    """A validated ImagePromotion spec."""

    image: reference.ImageReference
    image_text: str  # as the user wrote it, for messages and the ${image} variable
    tag_regex: str
    policy: str = "semver"
    semver_range: str | None = None
    exclude_tags: tuple[str, ...] = ()
    image_pull_secret: str | None = None
    insecure: bool = False
    interval: timedelta = DEFAULT_INTERVAL
    suspend: bool = False
    git: GitSpec = GitSpec(url="")
    targets: tuple[Target, ...] = ()
