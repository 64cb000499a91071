"""Loading YAML and JSON from outside with limits on size, depth and alias expansion.

Everything imagepromoter reads was written by someone else: manifests and Secret files handed to
`promote`, tag lists and manifests from a registry. The standard loaders trust their input: a
1.7 KB YAML "billion laughs" (anchors of anchors) is a few gigabytes once anything walks it, a
deeply nested `[[[...` makes the recursive composers raise RecursionError (which no caller
expects), and a non-UTF-8 file is a UnicodeDecodeError. So every outside document goes through
here first, and every violation is one `LimitError` (a ValueError) whose message names the limit
and where it was hit, never the text around it (a Secret file's line would be a secret).

- YAML: a first pass over libyaml's event stream (C, iterative, so depth costs nothing) counts
  nesting depth and the number of nodes the document expands to, counting each alias as the size
  of what it copies; only a document within every limit is then composed and constructed (safe
  loader: plain data, no Python tags).
- JSON: strings are skipped and the brackets left are paired off, innermost first, at most
  `max_depth` times; only a document that pairs off completely within that depth is parsed.

Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_PAIR = re.compile(rb"\[\]|\{\}")
_QUOTED = re.compile(r"'[^']{2,}'|\"[^\"]{2,}\"")


class LimitError(ValueError):
    """A document broke a limit or is malformed; the message says which, and where."""


@dataclass(frozen=True)
class Limits:
    """How much outside YAML may hold."""

    max_bytes: int = 4 << 20
    max_depth: int = 64
    max_nodes: int = 100_000  # after expanding every alias


MANIFESTS = Limits()


def decode(data: bytes, what: str, *, max_bytes: int) -> str:
    """`data` as UTF-8 text (a BOM is dropped); LimitError when too large or not UTF-8."""
    if len(data) > max_bytes:
        raise LimitError(f"{what} is {len(data)} bytes, more than the limit of {max_bytes}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LimitError(f"{what} is not UTF-8 text (byte {exc.start} cannot be read)") from None


def yaml_documents(text: str, what: str, limits: Limits = MANIFESTS) -> list[Any]:
    """Every document of a YAML stream, as plain data, within `limits`; else LimitError."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        raise LimitError(f"{what} is larger than the limit of {limits.max_bytes} bytes")
    try:
        _check_events(text, what, limits)
        return list(yaml.load_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        raise LimitError(f"{what}: not valid YAML: {_where(exc, limits)}") from None
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        position = getattr(exc, "position", None)
        where = f" at character {position}" if isinstance(position, int) else ""
        problem = f"a character YAML does not allow{where}"
        raise LimitError(f"{what}: not valid YAML: {problem}") from None
    except RecursionError:  # the depth check should make this unreachable; never a traceback
        raise LimitError(f"{what} nests too deeply to read") from None


def _check_events(text: str, what: str, limits: Limits) -> None:
    """Walk the event stream: depth and expanded node count within limits, or LimitError."""
    sizes: dict[str, int] = {}  # anchor -> nodes its value expands to
    stack: list[list[Any]] = []  # [anchor, nodes so far] per open collection
    total = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) > limits.max_depth:
                raise LimitError(
                    f"{what}: nests deeper than {limits.max_depth} levels{_line(event)}"
                )
            size = 1
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            anchor, nodes = stack.pop()
            if anchor is not None:
                sizes[anchor] = nodes
            if stack:
                stack[-1][1] += nodes
            continue
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "", 1)
        else:
            continue
        total += size
        if stack and not isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            stack[-1][1] += size
        if total > limits.max_nodes:
            raise LimitError(
                f"{what}: expands to more than {limits.max_nodes} values{_line(event)}: anchors "
                "and aliases (&a, *a) copy each other; write the data out"
            )


def _line(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def _where(exc: yaml.MarkedYAMLError, limits: Limits) -> str:
    """The problem and its line and column, without the file's text around it."""
    problem = str(exc.problem or exc.context or "invalid YAML")
    if "maximum nesting depth" in problem:  # libyaml's own limit, met while scanning ahead
        problem = f"nests deeper than {limits.max_depth} levels"
    text = _QUOTED.sub("'...'", problem)
    if exc.problem_mark is not None:
        text += f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})"
    if exc.context and exc.problem and exc.context_mark is not None:
        line, column = exc.context_mark.line + 1, exc.context_mark.column + 1
        text += f", {_QUOTED.sub(chr(39) * 2, str(exc.context))} (line {line}, column {column})"
    return text


def loads_json(data: bytes | str, *, max_bytes: int = 16 << 20, max_depth: int = 64) -> Any:
    """`json.loads` within a size and a nesting limit; LimitError (a ValueError) otherwise.

    Malformed JSON is a plain ValueError, as from `json.loads`, even when it is deeply nested.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise LimitError(f"the JSON is {len(raw)} bytes, more than the limit of {max_bytes}")
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", raw))
    if re.search(rb"[\[{]{%d}" % (max_depth + 1), brackets):  # the plain deep attack, at once
        raise LimitError(f"the JSON nests deeper than {max_depth} levels")
    for _ in range(max_depth):
        brackets, pairs = _PAIR.subn(b"", brackets)
        if not brackets:
            break
        if not pairs:  # not a limit: plain malformed JSON, as json.loads would say
            raise ValueError("the JSON is malformed (its brackets do not pair up)")
    if brackets:
        raise LimitError(f"the JSON nests deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except RecursionError:  # unreachable after the pairing; never a traceback
        raise LimitError(f"the JSON nests deeper than {max_depth} levels") from None
