"""`${name}` templates: the commit message and each target's value.

A template is text with `${name}` and `${name:-default}` placeholders and nothing else: no
expressions, filters or code, so a template can never do more than substitute a string the
operator already holds. The grammar is small enough to check completely when the spec is parsed:

    ${name}            the variable `name`: a Python identifier (tagRegex group names are too),
                       or one of the `oci.*` names (OCI_VARIABLES)
    ${name:-default}   `name` when this promotion has it, else the literal text `default` (any
                       characters but `}`; no placeholders inside)
    $$                 one literal `$`, so `$${tag}` is the literal text `${tag}` (the Compose and
                       Kubernetes rule); a `$` followed by anything else is an ordinary character
    ${                 with no `}`, an empty or malformed name (`${}`, `${ tag }`, `${a.b}`) is
                       malformed and an InvalidSpec error

Which names exist (API.md, Templates):
    tag, digest, image, version, path, name, namespace, previous   always, see BUILTIN_VARIABLES
    every named group of tagRegex except `version`                  see `known_variables`
    oci.revision, oci.source, oci.version, oci.created              see OCI_VARIABLES
    the fields of a webhook payload                                  see WEBHOOK_VARIABLES

The rule that makes "an unknown variable is never an empty string" hold: spec.parse accepts a
name without a default only if it is in one of those sets, and `render` substitutes only names
present in the mapping it is given (or their default). A missing name with no default raises:
TargetError for a payload or OCI variable (this tag's webhook or image did not carry it; a later
tag's may) and InvalidSpec for any other. A placeholder with a default may name any payload
field, since payloads carry what their sender chooses; without a default only the documented
webhook fields pass parsing, so a typo is still caught.
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
        "docker_image_tag",
    }
)
"""Fields of a webhook payload, set only when a webhook started the pass (API.md, Templates)."""

OCI_VARIABLES: frozenset[str] = frozenset(
    {"oci.revision", "oci.source", "oci.version", "oci.created"}
)
"""The chosen image's `org.opencontainers.image.*` annotations or config labels (read only when
a template uses one)."""

_PLACEHOLDER = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_NAME = re.compile(r"(?:oci\.)?[A-Za-z_][A-Za-z0-9_]*\Z")
_DEFAULT = ":-"


def known_variables(group_names: Collection[str] = ()) -> frozenset[str]:
    """Every name a template may use, given tagRegex's named groups."""
    return BUILTIN_VARIABLES | WEBHOOK_VARIABLES | OCI_VARIABLES | frozenset(group_names)


def variables(template: str, *, field: str = "template") -> set[str]:
    """The names a template uses; raise InvalidSpec (naming `field`) if it is malformed."""
    return {p[0] for p in _names(template, field) if p is not None}


def oci_variables(*templates: str) -> set[str]:
    """The `oci.*` names some of `templates` use (so the pass reads the image only then)."""
    used: set[str] = set()
    for template in templates:
        used |= {name for name in variables(template) if name in OCI_VARIABLES}
    return used


def check(template: str, known: Collection[str], *, field: str = "template") -> None:
    """Raise InvalidSpec naming `field` if the template is malformed or uses an unknown name."""
    required = {p[0] for p in _names(template, field) if p is not None and p[1] is None}
    unknown = sorted(required - set(known))
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
        dollar, inside, _ = match.groups()
        if dollar:
            out.append("$")
            continue
        name, _, default = inside.partition(_DEFAULT)
        if name in variables:
            out.append(variables[name])
        elif _DEFAULT in inside:
            out.append(default)
        elif name in WEBHOOK_VARIABLES or name in OCI_VARIABLES:
            raise errors.TargetError(f"{field}: {_missing(name, variables)}")
        else:
            raise errors.InvalidSpec(field, _missing(name, variables))
    out.append(template[position:])
    return "".join(out)


def _names(template: str, field: str) -> list[tuple[str, str | None] | None]:
    """Each placeholder's (name, default or None) in order (None for `$$`); raise if malformed."""
    names: list[tuple[str, str | None] | None] = []
    for match in _PLACEHOLDER.finditer(template):
        dollar, inside, _ = match.groups()
        if dollar:
            names.append(None)
        elif inside is None:
            raise errors.InvalidSpec(
                field,
                f"unclosed ${{ in {template!r}: close it with }} or write $$ for a literal $",
            )
        else:
            name, marker, default = inside.partition(_DEFAULT)
            _check_name(template, name, field)
            names.append((name, default if marker else None))
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
            f"${{{name}}} comes from a webhook payload and no webhook announced this tag with "
            f"it; write ${{{name}:-default}} for tags that arrive without one"
        )
    if name in OCI_VARIABLES:
        return (
            f"${{{name}}}: the chosen image has no org.opencontainers.image.{name[4:]} "
            f"annotation or label; write ${{{name}:-default}} for images without one"
        )
    return f"unknown template variable ${{{name}}}; the variables are {_listing(variables)}"


def _listing(names: Collection[str]) -> str:
    return ", ".join(f"${{{name}}}" for name in sorted(names))
