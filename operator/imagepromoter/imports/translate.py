"""Every translator over one set of documents, each result checked as our own spec parser would.

A translation that our spec parser rejects (a Flux range our semver grammar does not read, a
path that leaves the repository) gets a note naming the problem, so it is never reported exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imagepromoter import imports as common
from imagepromoter import spec
from imagepromoter.imports import argocd, flux


def translate(docs: Sequence[Mapping[str, Any]]) -> list[common.Translation]:
    """ImagePromotions for the Flux and Argo CD Image Updater objects among `docs`."""
    flux_docs = [d for d in docs if flux.relevant(d)]
    argo_docs = [d for d in docs if argocd.relevant(d)]
    found = [*flux.translate(flux_docs), *argocd.translate(argo_docs)]
    names: dict[tuple[str, str], int] = {}
    for translation in found:
        key = (translation.namespace, translation.name)
        names[key] = names.get(key, 0) + 1
        if names[key] > 1:  # two images of one Application group under one alias, say
            translation.name = common.k8s_name(translation.name[:240], str(names[key]))
            translation.note(("targets",), "renamed: another translation has the same name")
    for translation in found:
        try:
            spec.parse(translation.spec)
        except spec.SpecErrors as exc:
            translation.valid = False
            for problem in exc.problems:
                path = tuple(
                    p for p in problem.field.replace("]", "").replace("[", ".").split(".")[1:]
                )
                parts: tuple[str | int, ...] = tuple(int(p) if p.isdigit() else p for p in path)
                if not any(n.path == ("spec", *parts) for n in translation.notes):
                    translation.note(parts, f"fix before applying: {problem.problem}")
    return found


def relevant(doc: Mapping[str, Any]) -> bool:
    """True for any document a translator reads."""
    return flux.relevant(doc) or argocd.relevant(doc)
