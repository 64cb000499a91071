"""Flux-style setter markers: set every scalar whose line comment names this ImagePromotion.

Flux's image automation marks the values it may rewrite with a JSON line comment:

    image: ghcr.io/myorg/myapp:1.0.0 # {"$imagepolicy": "gitops:myapp"}
    newTag: 1.0.0                    # {"$imagepolicy": "gitops:myapp:tag"}

`<namespace>:<name>` names the policy (for us: the ImagePromotion of that name and namespace);
no suffix sets the whole reference, `:tag`, `:name` and `:digest` set one part. So a Flux user's
repository works unchanged once an ImagePromotion of the same name exists. A marker is the line
comment right after a scalar value (mapping value or list item), as Flux reads it; the JSON may
be spaced any way and hold other keys. Markers naming other policies, or an unknown suffix, are
left alone, as Flux leaves them. Like Flux, a file is only parsed when its text holds the token
`$imagepolicy`; unlike Flux, a file that names this promotion but is not YAML is an error, not a
silent skip.

All the marked scalars of a file are written in one `values.set_keys` (each on its positional
path in its own document), so the edit is the same byte-faithful splice, quoting and re-parse
check as any key target, at one parse and one check per file. Pure: text in, text out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from imagepromoter import _yamlpaths as yamlpaths
from imagepromoter import _yamlscan as yamlscan
from imagepromoter import errors, values

MARKER_KEY = "$imagepolicy"  # the JSON key of a Flux setter comment
KINDS = ("", "tag", "name", "digest")  # "" is the whole reference
_COMMENT = re.compile(r"[ \t]+#(?P<json>[^\r\n]*)")


@dataclass(frozen=True)
class Marker:
    """One marked scalar: its document, positional key, what part it holds, and its line."""

    document: int
    key: str
    kind: str
    line: int
    previous: str


def mentions(text: str, namespace: str, name: str) -> bool:
    """True when the text could hold a marker for `namespace:name` (a cheap screen)."""
    return MARKER_KEY in text and f"{namespace}:{name}" in text


def find(text: str, namespace: str, name: str) -> list[Marker]:
    """Every marker naming `namespace:name` in the text, in file order; TargetError if not YAML."""
    if MARKER_KEY not in text:
        return []
    try:
        stream = yamlscan.parse(text)
    except yamlscan.YamlSyntaxError as exc:
        raise errors.TargetError(
            f"the file has {MARKER_KEY} markers but is not valid YAML ({exc}); fix the file"
        ) from None
    policy = f"{namespace}:{name}"
    found: list[Marker] = []
    for number, root in enumerate(stream.documents):
        for path, node in _scalars(root):
            kind = _marker_kind(text, node, policy)
            if kind is not None:
                key = yamlpaths.join_key(path)
                found.append(Marker(number, key, kind, node.line, node.value))
    return found


def apply(
    text: str, namespace: str, name: str, parts: Mapping[str, str]
) -> tuple[str, list[Marker]]:
    """`text` with every marker naming `namespace:name` set from `parts` (kind -> value)."""
    markers = find(text, namespace, name)
    if not markers:
        return text, markers
    try:  # one parse and one check for every marker of the file
        edited = values.set_keys(text, [(m.key, parts[m.kind], m.document) for m in markers])
    except values.EditFailed as exc:
        raise errors.TargetError(f"the marker at line {markers[exc.index].line}: {exc}") from None
    return edited, markers


def _scalars(root: yamlscan.Node) -> Iterator[tuple[tuple[str, ...], yamlscan.Scalar]]:
    """Every scalar value below `root` with its positional path (keys are not values)."""
    for path, node in yamlpaths.descend(root, ()):
        if isinstance(node, yamlscan.Scalar) and path:
            yield path, node


def _marker_kind(text: str, node: yamlscan.Scalar, policy: str) -> str | None:
    """The part ('' whole, tag, name, digest) a marker after `node` asks for, or None."""
    if node.style in {"|", ">"}:
        return None  # its text ends on a later line; a comment there is not its line comment
    at = node.insert_at if node.empty and node.insert_at is not None else node.end
    match = _COMMENT.match(text, at)
    if match is None:
        return None
    body = match.group("json").strip()
    if MARKER_KEY not in body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    ref = data.get(MARKER_KEY) if isinstance(data, dict) else None
    if not isinstance(ref, str):
        return None
    ref = ref.strip()
    if ref == policy:
        return ""
    head, _, kind = ref.rpartition(":")
    if head == policy and kind in KINDS[1:]:
        return kind
    return None
