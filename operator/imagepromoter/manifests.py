"""Reading ImagePromotion and Secret manifests from YAML text, for the cluster-less CLI.

Pure: the CLI reads the files and hands the text here. Multi-document YAML and `kind: List`
are accepted, as `kubectl apply -f` takes them. A Secret is keyed by (namespace, name), with the
namespace defaulting as kubectl does to `default`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from imagepromoter import credentials

API_GROUP = "imagepromoter.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "ImagePromotion"
DEFAULT_NAMESPACE = "default"


class ManifestError(ValueError):
    """A file the user named cannot be read as manifests (a usage error: exit 2)."""


@dataclass(frozen=True)
class Manifests:
    """What a set of files holds: ImagePromotions, and Secrets by (namespace, name)."""

    promotions: tuple[Mapping[str, Any], ...] = ()
    secrets: Mapping[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # "kind/name" of documents that are neither


def load(sources: Mapping[str, str]) -> Manifests:
    """Parse every document of every source (name -> text)."""
    promotions: list[Mapping[str, Any]] = []
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    ignored: list[str] = []
    for source, text in sources.items():
        for doc in _documents(source, text):
            kind = doc.get("kind")
            meta = doc.get("metadata") or {}
            if not isinstance(meta, Mapping) or not meta.get("name"):
                raise ManifestError(f"{source}: a {kind or 'document'} without metadata.name")
            namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE)
            if kind == KIND and str(doc.get("apiVersion", "")).startswith(f"{API_GROUP}/"):
                promotions.append(doc)
            elif kind == "Secret" and doc.get("apiVersion") == "v1":
                try:
                    values = credentials.decode_data(doc.get("data"), doc.get("stringData"))
                except ValueError as exc:
                    raise ManifestError(f"{source}: Secret {meta['name']}: {exc}") from None
                secrets[(namespace, str(meta["name"]))] = values
            else:
                ignored.append(f"{kind}/{meta.get('name')}")
    return Manifests(promotions=tuple(promotions), secrets=secrets, ignored=tuple(ignored))


def _documents(source: str, text: str) -> Iterator[Mapping[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: not valid YAML: {exc}") from None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ManifestError(f"{source}: a document is not a mapping (a Kubernetes object)")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from (item for item in doc["items"] if isinstance(item, Mapping))
        else:
            yield doc
