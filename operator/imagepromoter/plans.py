"""The Planner a pass hands to the git writer: the CR's targets edited on whatever head it reads.

Pure (no I/O; in the pure-core import contract). The git writer calls the plan on each head it
tries to push onto (again after a lost race), so it must be a function of the files it reads and
the variables it was built with, nothing else. Each target is edited in order on the text the
previous targets left; `${previous}` is the value a target replaces (its key's scalar, or a regex
target's group at its first match, read as values.set_regex reads it); the commit message's
`${path}` lists the changed files and its `${previous}` is the first replaced value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from imagepromoter import changes, errors, spec, templates, values


def planner(promotion: spec.Promotion, base_vars: Mapping[str, str]) -> changes.Planner:
    """The pure edit function for `promotion`'s targets, with the pass's template variables."""

    def plan(read: changes.FileReader) -> changes.Changeset:
        originals: dict[str, str] = {}
        edited: dict[str, str] = {}
        previous_values: list[str] = []
        for index, target in enumerate(promotion.targets):
            if target.path not in edited:
                originals[target.path] = decode(target.path, read(target.path))
                edited[target.path] = originals[target.path]
            text = edited[target.path]
            try:
                if target.key is not None:
                    previous = values.get_key(text, target.key)
                else:
                    assert target.regex is not None
                    previous = regex_previous(text, target.regex)
                variables = {**base_vars, "path": target.path, "previous": previous or ""}
                value = templates.render(
                    target.value, variables, field=f"spec.targets[{index}].value"
                )
                if target.key is not None:
                    edited[target.path] = values.set_key(text, target.key, value)
                else:
                    assert target.regex is not None
                    edited[target.path] = values.set_regex(text, target.regex, value)
            except errors.TargetError as exc:
                raise errors.TargetError(f"spec.targets[{index}] ({target.path}): {exc}") from None
            if edited[target.path] != text:
                previous_values.append(previous or "")
        changed = tuple(
            changes.FileChange(
                path=p, before=originals[p].encode("utf-8"), after=edited[p].encode("utf-8")
            )
            for p in edited
            if edited[p] != originals[p]
        )
        message_vars = {
            **base_vars,
            "path": ", ".join(c.path for c in changed),
            "previous": previous_values[0] if previous_values else "",
        }
        message = templates.render(
            promotion.git.commit_message, message_vars, field="spec.git.commitMessage"
        )
        return changes.Changeset(changes=changed, message=message)

    return plan


def regex_previous(text: str, pattern: str) -> str | None:
    """What a regex target's group holds at its first match (the `${previous}` of that target).

    The same reading as values.set_regex: MULTILINE, group `value` else group 1, a CRLF line's
    `\r` not part of the value. A pattern that does not compile is left to set_regex to report.
    """
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error:
        return None
    if compiled.groups == 0:
        return None
    group: int | str = "value" if "value" in compiled.groupindex else 1
    for match in compiled.finditer(text):
        start, end = match.span(group)
        if start < 0:
            continue
        if text[start:end].endswith("\r") and text[end : end + 1] == "\n":
            end -= 1
        return text[start:end]
    return None


def decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.TargetError(
            f"{path} is not UTF-8 text (byte {exc.start}); only YAML text files can be targets"
        ) from None
