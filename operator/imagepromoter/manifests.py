"""Reading ImagePromotion and Secret manifests from YAML text, for the cluster-less CLI.

Pure: the CLI reads the files and hands the bytes here. Multi-document YAML and `kind: List`
are accepted, as `kubectl apply -f` takes them. A Secret is keyed by (namespace, name), with the
namespace defaulting as kubectl does to `default`.

Every file is outside input: it is read through `bounded` (size, depth, alias expansion, UTF-8),
names must be Kubernetes names (they reach messages and commit templates), an ImagePromotion
must be `imagepromoter.dev/v1alpha1` and appear once per run (two copies would be two passes
flip-flopping one value), and no message quotes a line of a file (a Secret's line is a secret):
problems name the file, the line and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagepromoter import bounded, credentials, sanitise

API_GROUP = "imagepromoter.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "ImagePromotion"
DEFAULT_NAMESPACE = "default"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII)
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}", re.ASCII)


class ManifestError(ValueError):
    """A file the user named cannot be read as manifests (a usage error: exit 2)."""


@dataclass(frozen=True)
class Manifests:
    """What a set of files holds: ImagePromotions, and Secrets by (namespace, name)."""

    promotions: tuple[Mapping[str, Any], ...] = ()
    secrets: Mapping[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # "kind/name" of documents that are neither


def load(sources: Mapping[str, str | bytes]) -> Manifests:
    """Parse every document of every source (name -> text or bytes); ManifestError if unusable."""
    promotions: list[Mapping[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    ignored: list[str] = []
    for source, text in sources.items():
        for doc in _documents(source, text):
            kind = doc.get("kind")
            name, namespace = _identity(source, doc)
            api_version = doc.get("apiVersion")
            if kind == KIND and str(api_version).startswith(f"{API_GROUP}/"):
                if api_version != API_VERSION:
                    raise ManifestError(
                        f"{source}: ImagePromotion {namespace}/{name} has apiVersion "
                        f"{sanitise.shown(str(api_version))}; this imagepromoter understands "
                        f"{API_VERSION} only"
                    )
                if (namespace, name) in seen:
                    raise ManifestError(
                        f"{source}: ImagePromotion {namespace}/{name} is also defined in "
                        f"{seen[(namespace, name)]}; each one may appear once per run"
                    )
                seen[(namespace, name)] = source
                promotions.append(doc)
            elif kind == "Secret" and api_version == "v1":
                secrets[(namespace, name)] = _secret(source, name, doc)
            else:
                ignored.append(f"{sanitise.one_line(str(kind), 80)}/{name}")
    return Manifests(promotions=tuple(promotions), secrets=secrets, ignored=tuple(ignored))


def _identity(source: str, doc: Mapping[str, Any]) -> tuple[str, str]:
    """(name, namespace) of a document, each a valid Kubernetes name; ManifestError if not."""
    kind = doc.get("kind")
    what = kind if isinstance(kind, str) and _NAME.fullmatch(kind) else "document"
    meta = doc.get("metadata") or {}
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise ManifestError(f"{source}: a {what} without metadata.name")
    name, namespace = meta.get("name"), meta.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(name, str) or len(name) > 253 or not _NAME.fullmatch(name):
        raise ManifestError(
            f"{source}: a {what} whose metadata.name is not a Kubernetes name (lowercase "
            "letters, digits, - and ., at most 253)"
        )
    if not isinstance(namespace, str) or len(namespace) > 63 or not _LABEL.fullmatch(namespace):
        raise ManifestError(
            f"{source}: {what} {name} has a metadata.namespace that is not a Kubernetes "
            "namespace name (lowercase letters, digits and -, at most 63)"
        )
    return name, namespace


def _secret(source: str, name: str, doc: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's values; a problem names the file, Secret and key, never a value."""
    data, string_data = doc.get("data"), doc.get("stringData")
    for field_name, part in (("data", data), ("stringData", string_data)):
        if part is not None and not isinstance(part, Mapping):
            raise ManifestError(f"{source}: Secret {name}: {field_name} must be a mapping")
        for key in part or {}:
            if not isinstance(key, str) or not _SECRET_KEY.fullmatch(key):
                raise ManifestError(
                    f"{source}: Secret {name}: a key in {field_name} is not a valid Secret key "
                    "(letters, digits, -, _ and .)"
                )
    try:
        return credentials.decode_data(data, string_data)
    except ValueError as exc:
        raise ManifestError(f"{source}: Secret {name}: {exc}") from None


def _documents(source: str, text: str | bytes) -> Iterator[Mapping[str, Any]]:
    try:
        if isinstance(text, bytes):
            text = bounded.decode(text, source, max_bytes=bounded.MANIFESTS.max_bytes)
        docs = bounded.yaml_documents(text, source)
    except bounded.LimitError as exc:
        raise ManifestError(str(exc)) from None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ManifestError(f"{source}: a document is not a mapping (a Kubernetes object)")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from (item for item in doc["items"] if isinstance(item, Mapping))
        else:
            yield doc
