"""The `oci.*` template variables: the chosen image's standard annotations or config labels.

Read only when a template names one (reconcile asks), so a pass that does not use them costs no
extra request. For a digest: the manifest (an index: its annotations, then the platform child's
manifest the client would pick for `created`), its `annotations`, then the image config's
`config.Labels`; the first place that has a key wins, annotations before labels (the OCI
image-spec's pre-defined annotation keys are what `docker buildx` writes to both).

A separate module beside the client; it reads through the client's `lookups.Lookups` (the
manifest, platform-child and config-blob seam: same auth, limits, digest verification and
error messages as `created`).
"""

from __future__ import annotations

import json
from typing import Any

from imagepromoter.reference import RegistryAccess
from imagepromoter.registry import client as client_module
from imagepromoter.registry import lookups

KEYS = {f"org.opencontainers.image.{name}": f"oci.{name}"
        for name in ("revision", "source", "version", "created")}  # fmt: skip


async def oci_labels(
    registry: client_module.RegistryClient, access: RegistryAccess, digest: str
) -> dict[str, str]:
    """`oci.revision`, `oci.source`, `oci.version`, `oci.created` of the image at `digest`."""
    call = registry._call(access)
    reader = registry._lookups
    found: dict[str, str] = {}
    manifest = await reader.manifest(call, digest)
    if manifest is None:
        return found
    doc, media = manifest
    _take(found, doc.get("annotations"))
    if media in lookups.INDEX_TYPES or "manifests" in doc:
        child = reader.platform_child(doc)
        child_manifest = await reader.manifest(call, child) if child else None
        if child_manifest is None:
            return found
        doc = child_manifest[0]
        _take(found, doc.get("annotations"))
    config = doc.get("config")
    config_digest = config.get("digest") if isinstance(config, dict) else None
    if isinstance(config_digest, str) and lookups.DIGEST.match(config_digest):
        try:
            image_config = json.loads(await reader.config_blob(call, config_digest))
        except ValueError:
            image_config = None
        if isinstance(image_config, dict) and isinstance(image_config.get("config"), dict):
            _take(found, image_config["config"].get("Labels"))
    return found


def _take(found: dict[str, str], source: Any) -> None:
    if not isinstance(source, dict):
        return
    for key, name in KEYS.items():
        value = source.get(key)
        if name not in found and isinstance(value, str) and value:
            found[name] = value
