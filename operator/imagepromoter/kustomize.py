"""`kustomizeImage` targets: set `newTag` (or `digest`) of one `images:` entry of a kustomization.

A kustomize overlay pins an image with an entry of its `images:` list:

    images:
      - name: ghcr.io/myorg/myapp      # the image as the resources name it
        newName: registry.local/myapp  # optional: pull it from elsewhere
        newTag: 1.4.2                  # what we set (or `digest: sha256:...`)

The entry is found by `name`, always, even when it has `newName`: `name` is what kustomize
matches in the resources, so it is the stable identity of the entry. The edit itself is the
values editor's byte-faithful splice of `images[name=<image>].newTag`, so comments, quoting and
layout stay as they were.

A missing entry is a TargetError naming the entries present, never a new entry: a typo in
`kustomizeImage` would otherwise add an entry that matches nothing, and the promotion would look
done. An existing block-style entry without the field gets one line, `newTag: ...` right under
its `name:` line at the same indentation and line ending, empty, then filled by the values editor
(so quoting follows its rules); the insertion is parsed again and must be the original event
stream plus exactly that one pair, or nothing is written.

Kustomize uses `digest` over `newTag` when both are set, so writing `newTag` into an entry pinned
by `digest` would change nothing in the cluster: that is refused, naming the fix.
"""

from __future__ import annotations

from imagepromoter import _selectors as selectors
from imagepromoter import _yamlscan as yamlscan
from imagepromoter import errors, values

DIGEST_TEMPLATE = "${digest}"


def field_for(template: str) -> str:
    """The entry field a value template writes: `digest` for exactly ${digest}, else `newTag`."""
    return "digest" if template.strip() == DIGEST_TEMPLATE else "newTag"


def key_for(image: str, field: str) -> str:
    """The key path of `field` in the `images:` entry named `image`."""
    return selectors.render(("images", selectors.Select(("name",), image), field))


def current(text: str, image: str, field: str) -> str | None:
    """The entry's current `field` (None when empty or absent); TargetError when no entry."""
    if _field(_entry(text, image, field), field) is None:
        return None
    return values.get_key(text, key_for(image, field))


def set_image(text: str, image: str, field: str, value: str) -> str:
    """`text` with `field` of the `images:` entry named `image` set to `value` (added if absent)."""
    entry = _entry(text, image, field)
    if _field(entry, field) is None:
        text = _add_field(text, entry, image, field)
    return values.set_key(text, key_for(image, field), value)


def _add_field(text: str, entry: yamlscan.Mapping, image: str, field: str) -> str:
    """`text` with an empty `field:` added under the entry's `name:` line, for set_key to fill."""
    refusal = errors.TargetError(
        f"the images: entry {image} (line {entry.line}) has no {field} and is not a block "
        f"mapping it can be added to; add `{field}: <current>` to it"
    )
    name = next(
        (k, v) for k, v in entry.pairs if isinstance(k, yamlscan.Scalar) and k.value == "name"
    )
    key, value = name
    if entry.flow or not isinstance(value, yamlscan.Scalar) or value.style in {"|", ">"}:
        raise refusal
    line_start = text.rfind("\n", 0, key.start) + 1
    indent = text[line_start : key.start]
    if indent.strip(" -") or "\t" in indent:
        raise refusal
    column = " " * len(indent)
    line_end = text.find("\n", value.end)
    if line_end < 0:  # the last line, with no final newline: keep it that way
        eol = "\r\n" if "\r\n" in text else "\n"
        edited = f"{text}{eol}{column}{field}:"
    else:
        eol = "\r\n" if text[line_end - 1 : line_end] == "\r" else "\n"
        at = line_end + 1
        edited = f"{text[:at]}{column}{field}:{eol}{text[at:]}"
    before = yamlscan.parse(text).events
    added = yamlscan.parse(f"{field}:\n").events[3:5]  # the pair, as the parser reports it
    try:
        after = yamlscan.parse(edited).events
    except yamlscan.YamlSyntaxError:
        raise refusal from None
    at_event = value.event + 1
    if after != (*before[:at_event], *added, *before[at_event:]):
        raise refusal
    return edited


def _entry(text: str, image: str, field: str) -> yamlscan.Mapping:
    """The one `images:` entry named `image`; TargetError naming what exists."""
    try:
        stream = yamlscan.parse(text)
    except yamlscan.YamlSyntaxError as exc:
        raise errors.TargetError(
            f"the kustomization is not valid YAML ({exc}); fix the file in the repository"
        ) from None
    images = [
        value
        for root in stream.documents
        if isinstance(root, yamlscan.Mapping)
        for key, value in root.pairs
        if isinstance(key, yamlscan.Scalar) and key.value == "images"
    ]
    if not images:
        raise errors.TargetError(
            f"the kustomization has no images: list; add `images: [{{name: {image}, newTag: "
            "...}]` to it, or point the target at the kustomization that pins the image"
        )
    if len(images) > 1 or not isinstance(images[0], yamlscan.Sequence):
        raise errors.TargetError(
            "the kustomization's images: is not one list of entries; write it as "
            "`images:` followed by `- name: ...` items"
        )
    entries = [item for item in images[0].items if isinstance(item, yamlscan.Mapping)]
    named = [e for e in entries if _text(e, "name") == image]
    if not named:
        present = [_describe(e) for e in entries]
        listed = ", ".join(present[:10]) + (
            f" and {len(present) - 10} more" if len(present) > 10 else ""
        )
        raise errors.TargetError(
            f"the kustomization's images: has no entry with name {image} (entries: "
            f"{listed or 'none'}); kustomizeImage must be an entry's name (not its newName): "
            f"fix kustomizeImage or add `- name: {image}` with newTag to images:"
        )
    if len(named) > 1:
        lines = " and ".join(str(e.line) for e in named)
        raise errors.TargetError(
            f"the kustomization's images: has {len(named)} entries with name {image} (lines "
            f"{lines}); kustomize applies only one: remove the duplicate"
        )
    entry = named[0]
    if field == "newTag" and _field(entry, "digest") is not None:
        raise errors.TargetError(
            f"the images: entry {image} (line {entry.line}) is pinned by digest, which "
            "kustomize uses instead of newTag, so a new tag would change nothing: set the "
            "target's value to ${digest}, or remove digest from the entry"
        )
    return entry


def _field(entry: yamlscan.Mapping, name: str) -> yamlscan.Node | None:
    found = [v for k, v in entry.pairs if isinstance(k, yamlscan.Scalar) and k.value == name]
    return found[0] if found else None


def _text(entry: yamlscan.Mapping, name: str) -> str | None:
    node = _field(entry, name)
    return node.value if isinstance(node, yamlscan.Scalar) else None


def _describe(entry: yamlscan.Mapping) -> str:
    """`name` (or `name (newName other)`) of an entry, for messages."""
    name = _text(entry, "name") or "<no name>"
    new_name = _text(entry, "newName")
    return f"{name} (newName {new_name})" if new_name else name
