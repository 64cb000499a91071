"""Translating other tools' image automation into ImagePromotion manifests (pure).

`flux` reads Flux's ImageRepository, ImagePolicy, ImageUpdateAutomation (and GitRepository);
`argocd` reads Argo CD Image Updater's ImageUpdater CRs and the legacy annotations on Argo CD
Applications. Both return `Translation`s: an ImagePromotion as data plus a `Note` for every
setting that does not map exactly, attached to the field it concerns. `render` writes them as
YAML with each note as a comment right above its field (notes on settings with no field of ours
go in the document's header), so a reviewer sees every approximation where it matters.

A translation is exact when it has no notes. The command's exit code says whether all were.
The emitter is ours (a handful of lines) because no YAML dumper writes comments at given paths;
scalars are quoted by PyYAML's own rules so that every value loads back as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from imagepromoter import spec as specs

API_VERSION = "imagepromoter.dev/v1alpha1"
PLACEHOLDER_URL = "https://git.example.invalid/REPLACE-ME.git"
PLACEHOLDER_IMAGE = "registry.example.invalid/replace-me"

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Note:
    """Why the setting at `path` (in the ImagePromotion) is not an exact translation."""

    path: Path
    text: str


@dataclass
class Translation:
    """One ImagePromotion translated from `source`, with a note per inexact setting."""

    name: str
    namespace: str
    spec: dict[str, Any]
    source: str
    notes: list[Note] = field(default_factory=list)
    valid: bool = True  # False when our spec parser rejects it as translated (see the notes)

    @property
    def exact(self) -> bool:
        return not self.notes

    def note(self, path: Path, text: str) -> None:
        self.notes.append(Note(("spec", *path), text))

    def manifest(self) -> dict[str, Any]:
        """The ImagePromotion as data, its spec's fields in the order API.md lists them."""
        ordered = {k: self.spec[k] for k in specs.SPEC_FIELDS if k in self.spec}
        ordered.update({k: v for k, v in self.spec.items() if k not in ordered})
        return {
            "apiVersion": API_VERSION,
            "kind": "ImagePromotion",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": ordered,
        }


def render(translations: Sequence[Translation]) -> str:
    """Every translation as a YAML document, notes as comments above their fields."""
    documents = []
    for translation in translations:
        notes: dict[Path, list[str]] = {}
        for note in translation.notes:
            notes.setdefault(note.path, []).append(note.text)
        manifest = translation.manifest()
        placed = _paths(manifest)
        header = [f"# translated from {' '.join(translation.source.split())}"]  # one line
        header.append(
            "# exact translation" if translation.exact else
            f"# NOT exact: {len(translation.notes)} setting(s) differ, see the NOTE comments"
        )  # fmt: skip
        for path, texts in notes.items():
            if path not in placed:
                where = ".".join(str(p) for p in path)
                header += [f"# NOTE ({where}): {line}" for text in texts for line in _wrap(text)]
        body = _emit(manifest, (), 0, notes)
        documents.append("\n".join(header) + "\n" + body)
    return "---\n" + "---\n".join(documents)


def _emit(value: Any, path: Path, indent: int, notes: Mapping[Path, list[str]]) -> str:
    """Block YAML for a mapping or list, with notes above the keys they are attached to."""
    pad = " " * indent
    lines: list[str] = []
    items: Iterable[tuple[str | int, Any]] = (
        value.items() if isinstance(value, Mapping) else enumerate(value)
    )
    for key, item in items:
        here = (*path, key)
        lines += [f"{pad}# NOTE: {line}" for text in notes.get(here, []) for line in _wrap(text)]
        lead = f"{pad}{_scalar(key)}:" if isinstance(value, Mapping) else f"{pad}-"
        if isinstance(item, Mapping | list) and item:
            if isinstance(value, Mapping):
                child = _emit(item, here, indent + 2, notes)
                lines.append(lead + "\n" + child.rstrip("\n"))
            else:
                child = _emit(item, here, indent + 2, notes).lstrip(" ")
                lines.append(f"{lead} {child.rstrip(chr(10))}")
        else:
            lines.append(f"{lead} {_scalar(item)}")
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    """One scalar (or an empty collection) in flow form, quoted when YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _paths(value: Any, path: Path = ()) -> set[Path]:
    found = {path}
    if isinstance(value, Mapping):
        for key, item in value.items():
            found |= _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found |= _paths(item, (*path, index))
    return found


def _wrap(text: str, width: int = 96) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


# --- helpers shared by the translators ----------------------------------------------------


def search_regex(pattern: str) -> str:
    """A tagRegex matching the tags `pattern` matches anywhere (Go's MatchString), whole-tag."""
    anchored_start = pattern.startswith("^")
    anchored_end = pattern.endswith("$") and not pattern.endswith("\\$")
    if anchored_start and anchored_end:
        return pattern
    if anchored_start:
        return f"(?:{pattern}).*$"
    if anchored_end:
        return f"^.*?(?:{pattern})"
    return f"^.*?(?:{pattern}).*$"


def glob_regex(glob: str) -> str:
    """A whole-tag regex for a glob (`*`, `?`, `[...]`), as Go's filepath.Match reads it."""
    out, i = ["^"], 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and "]" in glob[i + 1 :]:
            end = glob.index("]", i + 1)
            body = glob[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append(f"[{body}]")
            i = end
        elif char == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 1
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out) + "$"


def k8s_name(*parts: str) -> str:
    """A valid object name made of `parts` (lowercase, [-a-z0-9.], at most 253 characters)."""
    text = "-".join(p for p in parts if p).lower()
    text = re.sub(r"[^a-z0-9.-]+", "-", text).strip("-.")
    return (text or "imported")[:253].rstrip("-.")


def kind_of(doc: Mapping[str, Any], group: str, kind: str) -> bool:
    """True when `doc` is a `kind` of API group `group` (any version)."""
    api = str(doc.get("apiVersion") or "")
    return doc.get("kind") == kind and api.split("/")[0] == group


def meta(doc: Mapping[str, Any], default_namespace: str = "default") -> tuple[str, str]:
    """(namespace, name) of a document."""
    metadata = doc.get("metadata") or {}
    return str(metadata.get("namespace") or default_namespace), str(metadata.get("name") or "")
