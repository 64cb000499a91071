"""`${name}` templates: the commit message and each target's value.

A template is text with `${name}` placeholders and nothing else (no expressions, defaults,
filters or code), so it can never do more than substitute a string the operator already holds,
and the grammar is small enough to check completely when the spec is parsed: `${name}` with an
identifier name, `$$` for a literal `$` (the Compose and Kubernetes rule), anything else
malformed. An unknown variable is InvalidSpec, never an empty string: spec.parse accepts only
names in BUILTIN_VARIABLES, the tagRegex groups (`known_variables`) or the fixed list of webhook
payload fields (WEBHOOK_VARIABLES, API.md "Templates"), and `render` raises InvalidSpec for a
name missing from the mapping it is given, with a message that says why.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from imagepromoter import errors

BUILTIN_VARIABLES: frozenset[str] = frozenset(
    {"tag", "digest", "image", "version", "path", "name", "namespace", "previous"}
)
"""Set by every pass: the chosen tag, its digest, spec.image, the ordering value, the target's
path, the CR's name and namespace, and the value being replaced."""

WEBHOOK_VARIABLES: frozenset[str] = frozenset(
    {
        "git_branch",
        "git_commit",
        "git_tag",
        "git_repository",
        "commit_message",
        "commit_author",
    }
)
"""Fields of a webhook payload, set only when a webhook started the pass (API.md, Templates)."""

_PLACEHOLDER = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def known_variables(group_names: Collection[str] = ()) -> frozenset[str]:
    """Every name a template may use, given tagRegex's named groups."""
    return BUILTIN_VARIABLES | WEBHOOK_VARIABLES | frozenset(group_names)


def variables(template: str, *, field: str = "template") -> set[str]:
    """The names a template uses; raise InvalidSpec (naming `field`) if it is malformed."""
    return {name for name in _names(template, field) if name is not None}


def check(template: str, known: Collection[str], *, field: str = "template") -> None:
    """Raise InvalidSpec naming `field` if the template is malformed or uses an unknown name."""
    unknown = sorted(variables(template, field=field) - set(known))
    if unknown:
        names = ", ".join(f"${{{name}}}" for name in unknown)
        raise errors.InvalidSpec(
            field,
            f"unknown template variable {names}; the variables are "
            f"{_listing(known)} (write $$ for a literal $)",
        )


def render(template: str, variables: Mapping[str, str], *, field: str = "template") -> str:
    """Substitute every `${name}`; raise InvalidSpec for a name `variables` does not hold."""
    _names(template, field)  # the whole template is well-formed before anything is substituted
    out: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(template[position : match.start()])
        position = match.end()
        dollar, name, _ = match.groups()
        if dollar:
            out.append("$")
        elif name not in variables:
            raise errors.InvalidSpec(field, _missing(name, variables))
        else:
            out.append(variables[name])
    out.append(template[position:])
    return "".join(out)


def _names(template: str, field: str) -> list[str | None]:
    """Each placeholder's name in order (None for `$$`); raise InvalidSpec if malformed."""
    names: list[str | None] = []
    for match in _PLACEHOLDER.finditer(template):
        dollar, name, _ = match.groups()
        if dollar:
            names.append(None)
        elif name is None:
            raise errors.InvalidSpec(
                field,
                f"unclosed ${{ in {template!r}: close it with }} or write $$ for a literal $",
            )
        else:
            _check_name(template, name, field)
            names.append(name)
    return names


def _check_name(template: str, name: str, field: str) -> None:
    if not _NAME.match(name):
        shown = name.strip()
        hint = f"; write ${{{shown}}}" if _NAME.match(shown) else ""
        raise errors.InvalidSpec(
            field,
            f"malformed placeholder ${{{name}}} in {template!r}: a name is letters, digits and _"
            f"{hint} (write $$ for a literal $)",
        )


def _missing(name: str, variables: Mapping[str, str]) -> str:
    if name in WEBHOOK_VARIABLES:
        return (
            f"${{{name}}} comes from a webhook payload and this pass was not started by a "
            "webhook; use webhook fields only in promotions that webhooks drive"
        )
    return f"unknown template variable ${{{name}}}; the variables are {_listing(variables)}"


def _listing(names: Collection[str]) -> str:
    return ", ".join(f"${{{name}}}" for name in sorted(names))
