"""Where every YAML node sits in the original text: ruamel.yaml's parser, plus exact spans.

`values` edits a file by splicing new characters into the original string, so it needs, for each
scalar, the character span of its value (after any `&anchor` and `!tag`), and for an empty value
(`tag:` with nothing after it) the place right after the `:` or `-` where a value would go.
ruamel.yaml's events do not carry that reliably: an event's start mark includes the anchor and
tag, and an empty scalar's mark points at whatever token comes next (often on a later line). The
scanner's tokens do carry it, so `parse` runs ruamel's pure-Python parser with the scanner's
`get_token` wrapped to remember the last token handed to the parser. When the parser returns a
scalar event, that last token is either the scalar's own token (its span is the value's span) or,
for an empty plain scalar, the `:`/`-`/anchor/tag token after which the value would be written.

The result is a small immutable tree (`Scalar`, `Mapping`, `Sequence`, `Alias`) for finding a key
path, plus `events`: a comparable summary of every parser event, positions left out. Two texts
with equal summaries hold the same data under any YAML loader, which is how `values` checks an
edit changed nothing but its target. The safe (non round-trip) scanner is used: comments are not
needed, and it is the faster one. Nothing here does I/O.

`event_keys` gives the same summary for checking an edit, from libyaml (PyYAML's C parser) when
it is available: it is about 25 times faster than the pure-Python parser, which matters because
every edit re-parses the whole file, and it is a second, independent parser of the YAML 1.1 that
Helm reads. It is used only when it agrees with ruamel.yaml on the original text (`values` checks);
otherwise both sides of the comparison come from ruamel.yaml.

`plain` is the shortcut for the commonest values file: block mappings and sequences of plain,
one-line, non-empty scalars in ASCII, with no anchor, alias, tag, quote, block scalar, flow
collection, tab or directive anywhere in the text (comments included, to keep the test simple).
There the scanners cannot differ and libyaml's scalar events carry the token's own span, so
`parse` builds the same Stream from libyaml alone, about 25 times faster than ruamel.yaml (the
pure-Python parser was the largest cost of planning 1,000 promotions). Anything else, or
anything libyaml refuses, goes the ruamel.yaml way (tests compare both on generated files).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml import events as yaml_events
from ruamel.yaml import tokens as yaml_tokens
from ruamel.yaml.error import MarkedYAMLError, YAMLError

EventKey = tuple[str | bool | None, ...]
"""One parser event without its position: kind, anchor, tag, then value and style or flow."""

_INSERT_AFTER = (
    yaml_tokens.ValueToken,
    yaml_tokens.BlockEntryToken,
    yaml_tokens.AnchorToken,
    yaml_tokens.TagToken,
)


class YamlSyntaxError(ValueError):
    """The text is not YAML; `line` and `column` are 1-based (0 when unknown)."""

    def __init__(self, problem: str, line: int, column: int) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        where = f" at line {line}, column {column}" if line else ""
        super().__init__(f"{problem}{where}")


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar value: `start:end` is its text; an empty plain value has start == end."""

    value: str
    style: str | None  # None plain, "'" or '"' quoted, "|" or ">" block
    tag: str | None
    anchor: str | None
    start: int
    end: int
    insert_at: int | None  # empty plain value: where a value goes; None when nowhere sensible
    line: int
    event: int  # index into Stream.events

    @property
    def empty(self) -> bool:
        """True for a plain scalar with no text at all (`tag:` or `- `)."""
        return self.style is None and self.value == "" and self.start == self.end


@dataclass(frozen=True, slots=True)
class Alias:
    """`*name`: a reference to an anchored node defined earlier."""

    name: str
    line: int
    event: int


@dataclass(frozen=True, slots=True)
class Mapping:
    """A block or flow mapping; `pairs` keep the file's order (duplicates included)."""

    pairs: tuple[tuple[Node, Node], ...]
    anchor: str | None
    tag: str | None
    flow: bool
    line: int
    event: int


@dataclass(frozen=True, slots=True)
class Sequence:
    """A block or flow sequence."""

    items: tuple[Node, ...]
    anchor: str | None
    tag: str | None
    flow: bool
    line: int
    event: int


Node = Scalar | Alias | Mapping | Sequence


@dataclass(frozen=True, slots=True)
class Stream:
    """Every document's root node and the position-free summary of every event."""

    documents: tuple[Node, ...]
    events: tuple[EventKey, ...]
    from_libyaml: bool = field(default=False, compare=False)  # `plain` built it: `events`
    # is what `event_keys` gives; how it was read, not what was read, so not compared


MAX_DEPTH = 200  # nesting levels; Helm values files rarely pass 20
MAX_CHARS = 1 << 20  # about 5 s of the pure-Python parser; the largest chart values are ~200 KB


class YamlLimitError(YamlSyntaxError):
    """The text is beyond what is edited: longer than MAX_CHARS or nested deeper than MAX_DEPTH."""


@functools.lru_cache(maxsize=16)
def parse(text: str) -> Stream:
    """Parse `text` into located nodes; raise YamlSyntaxError when it is not YAML.

    The size is checked first (the pure-Python parser takes about 5 s per MiB), then the depth
    on libyaml's events (iterative C, fast; for a `plain` text, the events it was built from),
    so a 10,000-deep `[[[...` is refused at once instead of occupying the pure-Python parser.
    A tab used as the space between tokens (`tag:<TAB>1.0.0`, which libyaml and Helm read but
    ruamel.yaml does not) is read as a space: the text to scan has the same length, so every
    span still points into the original.
    """
    if len(text) > MAX_CHARS:
        raise YamlLimitError(
            f"is {len(text)} characters long, more than the {MAX_CHARS} edited in a values file",
            0,
            0,
        )
    shortcut = plain(text)  # libyaml's events, read once for the nodes and the depth
    if shortcut is not None:
        _check_depth_of(shortcut.events)
        return shortcut
    _check_depth(text)
    try:
        return _parse(text, text)
    except YamlSyntaxError as exc:
        if "\t" not in text or "'\\t'" not in exc.problem:
            raise
        copy = _untabbed(text)
        if copy is None or copy == text:
            raise
        return _parse(copy, text)


_NOT_PLAIN = re.compile(r"[^\n -~]|[&*!{}\[\]|>\"'%?@`]|^(?:---|\.\.\.)", re.MULTILINE)


def plain(text: str) -> Stream | None:
    """The Stream of a text of plain block YAML only, from libyaml; None for any other text."""
    loader = getattr(pyyaml, "CSafeLoader", None)
    if loader is None or _NOT_PLAIN.search(text) is not None:
        return None
    documents: list[Node] = []
    keys: list[EventKey] = []
    stack: list[tuple[Any, int, list[Node]]] = []
    try:
        for event in pyyaml.parse(text, Loader=loader):
            index = len(keys)
            node: Node | None = None
            if isinstance(event, pyyaml.ScalarEvent):
                assert event.start_mark is not None and event.end_mark is not None
                start, end = event.start_mark.index, event.end_mark.index
                if event.style or not event.value or "\n" in text[start:end]:
                    return None  # quoted, empty or over several lines: ruamel.yaml's spans
                keys.append(("S", None, None, event.value, None))
                line = event.start_mark.line + 1
                node = Scalar(event.value, None, None, None, start, end, None, line, index)
            elif isinstance(event, pyyaml.MappingStartEvent | pyyaml.SequenceStartEvent):
                kind = "M" if isinstance(event, pyyaml.MappingStartEvent) else "Q"
                keys.append((kind, None, None, False))
                stack.append((event, index, []))
            elif isinstance(event, pyyaml.MappingEndEvent | pyyaml.SequenceEndEvent):
                keys.append(("E",))
                start_event, start_index, children = stack.pop()
                assert start_event.start_mark is not None
                line = start_event.start_mark.line + 1
                if isinstance(start_event, pyyaml.MappingStartEvent):
                    pairs = tuple(zip(children[0::2], children[1::2], strict=True))
                    node = Mapping(pairs, None, None, False, line, start_index)
                else:
                    node = Sequence(tuple(children), None, None, False, line, start_index)
            elif isinstance(event, pyyaml.AliasEvent):
                return None
            else:  # stream and document start/end, named as ruamel.yaml names them
                keys.append((type(event).__name__,))
            if node is not None:
                (stack[-1][2] if stack else documents).append(node)
    except pyyaml.YAMLError:
        return None
    return Stream(tuple(documents), tuple(keys), from_libyaml=True)


def _check_depth(text: str) -> None:
    """Raise YamlLimitError when the text nests deeper than MAX_DEPTH (libyaml's reading)."""
    if getattr(pyyaml, "CSafeLoader", None) is None:
        return
    try:
        keys = event_keys(text)  # cached: the edit check needs the same summary
    except YamlSyntaxError as exc:
        if "maximum nesting depth" in exc.problem:
            raise YamlLimitError(f"nests deeper than {MAX_DEPTH} levels", exc.line, 1) from None
        return  # libyaml's own complaint; ruamel.yaml gives the message
    _check_depth_of(keys)


def _check_depth_of(keys: tuple[EventKey, ...]) -> None:
    depth = 0
    for key in keys:
        if key[0] in {"M", "Q"}:
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlLimitError(f"nests deeper than {MAX_DEPTH} levels", 0, 0)
        elif key[0] == "E":
            depth -= 1


def _untabbed(text: str) -> str | None:
    """`text` with every tab that libyaml reads as space between tokens turned into a space."""
    loader = getattr(pyyaml, "CSafeLoader", None)
    if loader is None:
        return None
    inside: list[tuple[int, int]] = []
    try:
        for token in pyyaml.scan(text, Loader=loader):
            if isinstance(token, pyyaml.ScalarToken):
                inside.append((token.start_mark.index, token.end_mark.index))
    except pyyaml.YAMLError:
        return None
    chars = list(text)
    spans = iter(inside)
    current = next(spans, None)
    for index, char in enumerate(chars):
        while current is not None and current[1] <= index:
            current = next(spans, None)
        if char == "\t" and (current is None or index < current[0]):
            chars[index] = " "
    return "".join(chars)


class _Parsing(YAML):
    """ruamel.yaml's YAML without plug-ins: none is used, and finding them lists a folder."""

    def official_plug_ins(self) -> list[str]:
        """No plug-ins (ruamel.yaml globs its package folder for them on every instance)."""
        return []


def _parse(text: str, original: str) -> Stream:
    """Parse `text` (the original, or a copy of it of the same length); see `parse`."""
    yaml = _Parsing(typ="safe", pure=True)
    last: list[Any] = [None]
    try:
        events = yaml.parse(text)
        first = next(events)  # the stream start: the scanner exists now, watch what it hands out
        get_token = yaml.scanner.get_token

        def remembering_get_token() -> Any:
            token = get_token()
            last[0] = token
            return token

        yaml.scanner.get_token = remembering_get_token
        return _build(itertools.chain([first], events), last)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise YamlSyntaxError(problem, 0, 0) from None
        raise YamlSyntaxError(problem, mark.line + 1, mark.column + 1) from None
    except YAMLError as exc:  # ReaderError: a character YAML does not allow
        character, position = getattr(exc, "character", None), getattr(exc, "position", None)
        if not isinstance(character, int) or not isinstance(position, int):
            raise YamlSyntaxError("contains characters YAML does not allow", 0, 0) from None
        line = original.count("\n", 0, position) + 1
        column = position - (original.rfind("\n", 0, position) + 1) + 1
        problem = f"control character U+{character:04X} is not allowed in YAML"
        raise YamlSyntaxError(problem, line, column) from None


@functools.lru_cache(maxsize=16)
def event_keys(text: str) -> tuple[EventKey, ...]:
    """The position-free event summary of `text`, from libyaml if present; YamlSyntaxError."""
    loader = getattr(pyyaml, "CSafeLoader", None)
    if loader is None:
        return parse(text).events
    keys: list[EventKey] = []
    try:
        for event in pyyaml.parse(text, Loader=loader):
            if isinstance(event, pyyaml.ScalarEvent):
                keys.append(("S", event.anchor, event.tag, event.value, event.style or None))
            elif isinstance(event, pyyaml.AliasEvent):
                keys.append(("A", event.anchor))
            elif isinstance(event, pyyaml.MappingStartEvent | pyyaml.SequenceStartEvent):
                kind = "M" if isinstance(event, pyyaml.MappingStartEvent) else "Q"
                keys.append((kind, event.anchor, event.tag, bool(event.flow_style)))
            elif isinstance(event, pyyaml.MappingEndEvent | pyyaml.SequenceEndEvent):
                keys.append(("E",))
            else:
                keys.append((type(event).__name__,))
    except pyyaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problem = exc.problem or "invalid YAML"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise YamlSyntaxError(problem, line, column) from None
    except pyyaml.YAMLError:
        raise YamlSyntaxError("contains characters YAML does not allow", 0, 0) from None
    return tuple(keys)


class _Open:
    """A collection being built: its start event and the children seen so far."""

    __slots__ = ("children", "event", "index")

    def __init__(self, event: Any, index: int) -> None:
        self.event = event
        self.index = index
        self.children: list[Node] = []


def _build(events: Iterator[Any], last: list[Any]) -> Stream:
    """Turn the parser's events into nodes and keys, pairing each scalar with its token.

    `last[0]` is the token the parser took most recently; read right after each event, it is
    the scalar's own token, or the indicator an empty scalar follows.
    """
    documents: list[Node] = []
    keys: list[EventKey] = []
    stack: list[_Open] = []
    claimed: Any = None
    for event in events:
        index = len(keys)
        anchor = event.anchor if hasattr(event, "anchor") else None
        tag = str(event.tag) if getattr(event, "tag", None) is not None else None
        node: Node | None = None
        if isinstance(event, yaml_events.ScalarEvent):
            keys.append(("S", anchor, tag, event.value, event.style))
            token = last[0]
            if isinstance(token, yaml_tokens.ScalarToken) and token is not claimed:
                claimed = token
                start, end = token.start_mark.index, token.end_mark.index
                line, insert_at = token.start_mark.line + 1, None
            else:  # an empty plain scalar: nothing in the text, place it after the indicator
                mark = event.start_mark
                start = end = mark.index
                line = mark.line + 1
                insert_at = None
                if isinstance(token, _INSERT_AFTER) and token is not claimed:
                    insert_at = token.end_mark.index
                    line = token.end_mark.line + 1
            node = Scalar(event.value, event.style, tag, anchor, start, end, insert_at, line, index)
        elif isinstance(event, yaml_events.AliasEvent):
            keys.append(("A", event.anchor))
            node = Alias(event.anchor, event.start_mark.line + 1, index)
        elif isinstance(event, yaml_events.MappingStartEvent | yaml_events.SequenceStartEvent):
            kind = "M" if isinstance(event, yaml_events.MappingStartEvent) else "Q"
            keys.append((kind, anchor, tag, bool(event.flow_style)))
            stack.append(_Open(event, index))
        elif isinstance(event, yaml_events.MappingEndEvent | yaml_events.SequenceEndEvent):
            keys.append(("E",))
            node = _close(stack.pop())
        else:  # stream and document start/end
            keys.append((type(event).__name__,))
        if node is not None:
            if stack:
                stack[-1].children.append(node)
            else:
                documents.append(node)
    return Stream(tuple(documents), tuple(keys))


def _close(open_: _Open) -> Node:
    """Freeze a finished collection into a Mapping or Sequence."""
    event = open_.event
    tag = str(event.tag) if event.tag is not None else None
    line = event.start_mark.line + 1
    flow = bool(event.flow_style)
    children = open_.children
    if isinstance(event, yaml_events.MappingStartEvent):
        pairs = tuple(zip(children[0::2], children[1::2], strict=True))
        return Mapping(pairs, event.anchor, tag, flow, line, open_.index)
    return Sequence(tuple(children), event.anchor, tag, flow, line, open_.index)
