"""Applying a promotion's targets to file texts: target + text + variables -> new text.

`reconcile`'s planner hands this module the targets, a reader of the head being built on and the
template variables; it gets back every original and edited text, so it only has to build the
changeset and the commit message. One function per kind of target (`key`, `regex`,
`kustomizeImage`, `markers`), each a thin call into the pure editor that owns that kind. Targets
run in order and see each other's edits: two targets on one file compose. Key targets are the
exception that keeps big files cheap: the key targets of one file are gathered and written by one
`values.edit_keys` (one parse, one check) before any other kind of target runs, so each reads
`${previous}` from the text the earlier non-key targets left.

A `markers` target may name a folder. The walk is bounded and never leaves the tree: the reader
lists entries without following symlinks or entering submodules (they are skipped and counted),
at most MAX_FOLDER_ENTRIES entries are listed, at most MAX_FOLDER_FILES `.yaml`/`.yml` files
(and files named `Kustomization`, as Flux reads them) read, MAX_FOLDER_BYTES in all, each under
the reader's own per-file limit; a file is parsed only when it mentions this promotion's marker.
Beyond a bound is a TargetError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from imagepromoter import changes, errors, holds, kustomize, markers, spec, templates, values

MAX_FOLDER_ENTRIES = 20_000
MAX_FOLDER_FILES = 2_000
MAX_FOLDER_BYTES = 64 * 2**20
YAML_SUFFIXES = (".yaml", ".yml")


class Guard(Protocol):
    """The holds check (holds.Guard): raise Held rather than overwrite someone else's value."""

    def check(self, target: str, path: str, current: str | None, new: str) -> None: ...


@dataclass
class Edits:
    """Texts as read and as edited (path -> text), and the value each changed target replaced."""

    originals: dict[str, str] = field(default_factory=dict)
    edited: dict[str, str] = field(default_factory=dict)
    replaced: dict[int, str] = field(default_factory=dict)  # target index -> value replaced

    @property
    def previous(self) -> list[str]:
        """The values the changed targets replaced, in target order."""
        return [self.replaced[index] for index in sorted(self.replaced)]

    def changes(self) -> tuple[changes.FileChange, ...]:
        """The files whose text changed, in the order they were first read."""
        return tuple(
            changes.FileChange(
                path=p, before=self.originals[p].encode("utf-8"), after=text.encode("utf-8")
            )
            for p, text in self.edited.items()
            if text != self.originals[p]
        )


def apply(
    targets: Sequence[spec.Target],
    read: changes.FileReader,
    variables: Mapping[str, str],
    *,
    guard: Guard | None = None,
) -> Edits:
    """Apply every target in order; TargetError prefixed with the target it came from.

    With a `guard`, each value is checked before it is written (holds: identity, file, the
    value found, the value to write); it raises `holds.Held` to stop the whole plan.
    """
    edits = Edits()
    pending: dict[str, list[tuple[int, str, str, str]]] = {}  # path -> key edits not yet made
    for index, target in enumerate(targets):
        where = f"spec.targets[{index}]"
        if target.key is None:
            _flush(edits, pending)  # what comes next sees every key written so far
        try:
            if target.key is not None:  # gathered per file: one parse and one check for all
                text = _text(edits, target.path, read)
                current = values.get_key(text, target.key)
                value = _render(where, target, variables, current or "")
                ident = holds.ident(target.path, target.key, None)
                _check(guard, ident, target.path, current, value)
                pending.setdefault(target.path, []).append(
                    (index, target.key, value, current or "")
                )
            elif target.markers:
                _markers(edits, index, target, read, variables, guard)
            else:
                text = _text(edits, target.path, read)
                new, previous = _one(where, target, text, variables, guard)
                edits.edited[target.path] = new
                if new != text:
                    edits.replaced[index] = previous
        except errors.TargetError as exc:
            raise errors.TargetError(f"{where} ({target.path}): {exc}") from None
    _flush(edits, pending)
    return edits


def _flush(edits: Edits, pending: dict[str, list[tuple[int, str, str, str]]]) -> None:
    """Write the gathered key edits of every file, each file in one `values.edit_keys`."""
    for path in list(pending):
        batch = pending.pop(path)
        try:
            edits.edited[path], written = values.edit_keys(
                edits.edited[path], [(key, value) for _, key, value, _ in batch]
            )
        except values.EditFailed as exc:
            raise errors.TargetError(
                f"spec.targets[{batch[exc.index][0]}] ({path}): {exc}"
            ) from None
        edits.replaced.update((batch[i][0], batch[i][3]) for i in written)


def _one(
    where: str,
    target: spec.Target,
    text: str,
    variables: Mapping[str, str],
    guard: Guard | None,
) -> tuple[str, str]:
    """(new text, previous value) for a regex or kustomizeImage target."""
    if target.kustomize_image is not None:
        part = kustomize.field_for(target.value)
        current = kustomize.current(text, target.kustomize_image, part)
        value = _render(where, target, variables, current or "")
        key = kustomize.key_for(target.kustomize_image, part)  # holds read it as a key target
        _check(guard, holds.ident(target.path, key, None), target.path, current, value)
        return kustomize.set_image(text, target.kustomize_image, part, value), current or ""
    assert target.regex is not None
    current = holds.current_value(text, None, target.regex)  # the group at its first match
    value = _render(where, target, variables, current or "")
    _check(guard, holds.ident(target.path, None, target.regex), target.path, current, value)
    return values.set_regex(text, target.regex, value), current or ""


def _check(guard: Guard | None, ident: str, path: str, current: str | None, new: str) -> None:
    if guard is not None:
        guard.check(ident, path, current, new)


def _markers(
    edits: Edits,
    index: int,
    target: spec.Target,
    read: changes.FileReader,
    variables: Mapping[str, str],
    guard: Guard | None,
) -> None:
    """Set every marker naming this promotion in the target's file, or files under its folder."""
    where = f"spec.targets[{index}]"
    namespace, name = variables["namespace"], variables["name"]
    policy = f"{namespace}:{name}"
    paths, looked_at = _marker_files(target.path, read)
    total = 0
    found = 0
    for path in paths:
        if path in edits.edited:
            text = edits.edited[path]
        else:
            data = read(path)
            total += len(data)
            if total > MAX_FOLDER_BYTES:
                raise errors.TargetError(
                    f"the files under it add up to more than {MAX_FOLDER_BYTES} bytes; point "
                    "the target at a smaller folder"
                )
            if markers.MARKER_KEY.encode() not in data or policy.encode() not in data:
                continue
            text = _decode(path, data)
        if not markers.mentions(text, namespace, name):
            continue
        try:
            first = markers.find(text, namespace, name)
        except errors.TargetError as exc:
            raise errors.TargetError(
                f"{path}: {exc}" if path != target.path else str(exc)
            ) from None
        if not first:
            continue
        found += len(first)
        parts = {
            "": _render(where, target, variables, first[0].previous),
            "tag": variables["tag"],
            "name": variables["image"],
            "digest": variables["digest"],
        }
        for marker in first:  # holds see each marked value as a key target of its file
            ident = holds.ident(path, marker.key, None)
            _check(guard, ident, path, marker.previous or None, parts[marker.kind])
        try:
            new, _ = markers.apply(text, namespace, name, parts)
        except errors.TargetError as exc:
            raise errors.TargetError(
                f"{path}: {exc}" if path != target.path else str(exc)
            ) from None
        edits.originals.setdefault(path, text)
        edits.edited[path] = new
        if new != text:
            edits.replaced.setdefault(index, first[0].previous)
    if not found:
        raise errors.TargetError(
            f"no marker names this ImagePromotion ({looked_at}); mark the value with the line "
            f'comment # {{"{markers.MARKER_KEY}": "{policy}"}} (or {policy}:tag, :name, :digest)'
        )


def _marker_files(path: str, read: changes.FileReader) -> tuple[list[str], str]:
    """The files a markers target reads, and a phrase saying what was looked at."""
    walk = getattr(read, "walk", None)
    if walk is None:  # a plain FileReader: the path must be a file
        return [path], f"looked in {path}"
    entries: list[changes.Entry] = walk(path, limit=MAX_FOLDER_ENTRIES)
    if len(entries) == 1 and entries[0].path == path:
        if entries[0].kind != "file":
            raise errors.TargetError(f"{path} is a {entries[0].kind}; name a file or a folder")
        return [path], f"looked in {path}"
    yaml_files = [
        e.path
        for e in entries
        if e.kind == "file"
        and (e.path.endswith(YAML_SUFFIXES) or e.path.rsplit("/", 1)[-1] == "Kustomization")
    ]
    skipped = [e for e in entries if e.kind != "file"]
    if len(yaml_files) > MAX_FOLDER_FILES:
        raise errors.TargetError(
            f"it holds {len(yaml_files)} YAML files, over the limit of {MAX_FOLDER_FILES}; point "
            "the target at a smaller folder"
        )
    note = f", {len(skipped)} symlink(s) or submodule(s) not followed" if skipped else ""
    return yaml_files, f"looked in {len(yaml_files)} .yaml/.yml file(s) under it{note}"


def _render(where: str, target: spec.Target, variables: Mapping[str, str], previous: str) -> str:
    """The target's value template rendered with this target's path and previous value."""
    return templates.render(
        target.value,
        {**variables, "path": target.path, "previous": previous},
        field=f"{where}.value",
    )


def _text(edits: Edits, path: str, read: changes.FileReader) -> str:
    """The file's current text: as edited by an earlier target, else as read."""
    if path not in edits.edited:
        edits.originals[path] = _decode(path, read(path))
        edits.edited[path] = edits.originals[path]
    return edits.edited[path]


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.TargetError(
            f"{path} is not UTF-8 text (byte {exc.start}); only YAML text files can be targets"
        ) from None
