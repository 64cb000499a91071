r"""The key-path grammar with list selectors: `containers[name=app].image`.

A positional key (`containers.0.image`) breaks silently the day someone adds a sidecar in front,
so a list item can be picked by the value of one of its fields instead. The grammar:

    key      := part ('.' part)*
    part     := name selector* | selector+
    selector := '[' field '=' value ']'
    field    := name ('.' name)*          a scalar field of the item, dotted for nested maps
    value    := plain | "double" | 'single'

In a name, `\.` is a dot, `\\` a backslash, `\[` and `\]` brackets; any other backslash is an
error. A plain value runs to the next `]` (dots and `=` included, `\]` for a bracket); a quoted
value may hold anything, with `\"`, `\'` and `\\` escaped. A value is compared with the item's
scalar as text, whatever its quoting (`port=8080` matches `port: 8080` and `port: "8080"`).

This module only parses and prints keys (pure, no YAML); `_yamlpaths` applies a `Select` to the
nodes it walks, and the messages when it matches no item or several live there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagepromoter import errors

_NAME_ESCAPES = frozenset(".\\[]")
_FIELD_ESCAPES = frozenset(".\\[]=")


@dataclass(frozen=True)
class Select:
    """`[field=value]`: the one list item whose (dotted) `field` holds the scalar `value`."""

    field: tuple[str, ...]
    value: str

    def __str__(self) -> str:
        return render((self,))


Step = str | Select


def parse(key: str) -> tuple[Step, ...]:
    """The steps of a key path; TargetError naming the problem when it is malformed."""
    steps: list[Step] = []
    name: list[str] = []
    part_has_step = False
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\":
            escaped = key[i + 1 : i + 2]
            if escaped not in _NAME_ESCAPES or not escaped:
                raise errors.TargetError(
                    f"key {key!r}: a backslash must be followed by . or \\ (write \\. for a "
                    "dot; \\[ and \\] for brackets)"
                )
            name.append(escaped)
            i += 2
        elif char == ".":
            if not name and not part_has_step:
                raise _empty(key)
            if name:
                steps.append("".join(name))
            name, part_has_step = [], False
            i += 1
        elif char == "[":
            if name:
                steps.append("".join(name))
                name = []
            select, i = _selector(key, i)
            steps.append(select)
            part_has_step = True
            if i < len(key) and key[i] not in ".[":
                raise errors.TargetError(
                    f"key {key!r}: a selector must be followed by '.', another '[' or the end "
                    f"(found {key[i]!r} at position {i + 1})"
                )
        elif char == "]":
            raise errors.TargetError(
                f"key {key!r}: ']' at position {i + 1} closes no selector (write \\] for a "
                "bracket inside a key)"
            )
        else:
            name.append(char)
            i += 1
    if not name and not part_has_step:
        raise _empty(key)
    if name:
        steps.append("".join(name))
    return tuple(steps)


def plain(steps: tuple[Step, ...]) -> tuple[str, ...] | None:
    """The steps as plain segments when the key has no selector, else None."""
    if all(isinstance(step, str) for step in steps):
        return tuple(str(step) for step in steps)
    return None


def render(steps: tuple[Step, ...] | list[Step]) -> str:
    """The text of a key path (the inverse of `parse`), escaping what must be."""
    out: list[str] = []
    for step in steps:
        if isinstance(step, Select):
            field = ".".join(_escape(part, _FIELD_ESCAPES) for part in step.field)
            out.append(f"[{field}={_value_text(step.value)}]")
        else:
            out.append(("." if out else "") + _escape(step, _NAME_ESCAPES))
    return "".join(out)


def _selector(key: str, start: int) -> tuple[Select, int]:
    """Parse `[field=value]` starting at key[start] == '['; return it and the index after ']'."""
    i = start + 1
    field: list[str] = []
    current: list[str] = []
    while True:
        if i >= len(key):
            raise _unclosed(key, start)
        char = key[i]
        if char == "\\":
            escaped = key[i + 1 : i + 2]
            if escaped not in _FIELD_ESCAPES or not escaped:
                raise errors.TargetError(
                    f"key {key!r}: in a selector's field a backslash must be followed by one of "
                    ". \\ [ ] ="
                )
            current.append(escaped)
            i += 2
            continue
        if char == "=":
            break
        if char == "]":
            raise errors.TargetError(
                f"key {key!r}: the selector at position {start + 1} has no '='; write "
                "[field=value] (e.g. [name=app]) or use .0 for the first item"
            )
        if char == "[":
            raise errors.TargetError(f"key {key!r}: '[' inside a selector's field (write \\[)")
        if char == ".":
            field.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    field.append("".join(current))
    if "" in field:
        raise errors.TargetError(
            f"key {key!r}: the selector at position {start + 1} needs a field name before '=' "
            "(e.g. [name=app]); a dotted field may not have an empty part"
        )
    i += 1  # past '='
    value: list[str] = []
    if i < len(key) and key[i] in "\"'":
        quote = key[i]
        i += 1
        while True:
            if i >= len(key):
                raise errors.TargetError(
                    f"key {key!r}: the quoted value of the selector at position {start + 1} "
                    f"is not closed (add {quote})"
                )
            char = key[i]
            if char == "\\" and key[i + 1 : i + 2] in {quote, "\\"}:
                value.append(key[i + 1])
                i += 2
            elif char == quote:
                i += 1
                break
            else:
                value.append(char)
                i += 1
        if i >= len(key) or key[i] != "]":
            raise _unclosed(key, start)
        return Select(tuple(field), "".join(value)), i + 1
    while True:
        if i >= len(key):
            raise _unclosed(key, start)
        char = key[i]
        if char == "\\" and key[i + 1 : i + 2] in {"]", "\\"}:
            value.append(key[i + 1])
            i += 2
        elif char == "]":
            break
        else:
            value.append(char)
            i += 1
    if not value:
        raise errors.TargetError(
            f"key {key!r}: the selector at position {start + 1} has no value; write "
            '[field=""] to match an empty value'
        )
    return Select(tuple(field), "".join(value)), i + 1


def _escape(text: str, special: frozenset[str]) -> str:
    return "".join(f"\\{c}" if c in special else c for c in text)


def _value_text(value: str) -> str:
    """A selector value as written: plain when it reads back unchanged, else double-quoted."""
    if value and value == value.strip() and not any(c in value for c in "]\\\"'"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _empty(key: str) -> errors.TargetError:
    return errors.TargetError(
        f"key {key!r} has an empty segment (a leading, trailing or doubled dot)"
    )


def _unclosed(key: str, start: int) -> errors.TargetError:
    return errors.TargetError(
        f"key {key!r}: the selector at position {start + 1} is not closed with ']'"
    )
