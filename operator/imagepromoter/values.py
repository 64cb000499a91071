r"""Byte-faithful edits of YAML values files: change one scalar, leave every other byte alone.

A GitOps repository is read by people. A promotion must show up in review as a one-line diff, so
re-serialising the file (which reflows comments, quoting, indentation and flow style) is never an
option. Instead `_yamlscan` parses the text and reports the exact character span of every scalar;
`set_key` splices the new value into that span of the original string and nothing else moves:
comments, blank lines, key order, indentation, anchors, flow style, CRLF line endings, a BOM and a
missing final newline all stay as they were.

How a value is written (docs/values.md has the full rules and examples):
- The replaced scalar keeps its quote style: a double-quoted value stays double-quoted (escaped),
  a single-quoted one single-quoted (unless the value holds characters only double quotes can
  carry). A plain value stays plain only if YAML 1.1 (what Helm reads), YAML 1.2 and go-yaml
  would all load it back as the same string; otherwise it is double-quoted: `1.10` (a float),
  `true`, `yes`, `on`, `y`, `null`, `~`, `0x1F`, `0123`, `1e3`, `1_000`, `12:30`, dates, values
  with `: ` or ` #`, leading or trailing spaces, a leading indicator (`-?:,[]{}#&*!|>'"%@` and a
  backtick), and, inside flow collections, any of `,[]{}:?`. Values are always written as strings.
- An empty value (`tag:`) is filled in place: ` value` goes right after the `:` (or the `-` of
  an empty list item), before any inline comment.
- After every edit the result is parsed again and its event stream compared with the original's:
  every node must be identical except the target, which must now hold the new string and load as
  a string. If not (which the quoting rules should make impossible), a TargetError is raised
  instead of returning a damaged file; plain output that fails the check is retried quoted first.

Key paths are dotted (`image.tag`); a numeric segment indexes a list (`ports.1`); `\.` is a dot
inside a key and `\\` a backslash. In a multi-document file a key must exist in exactly one
document; found in several, it is an error (a key names one value; use a regex to edit several).
The key may not pass through or end at an alias, end at a value whose anchor is used by an alias,
or lie inside an anchored collection that an alias copies: any of those would change more than
one path of the loaded data. Every TargetError names the key, what was found instead and the
nearest existing key, and never quotes a value from the file (values files can hold secrets).

Three modules, each readable alone: `_yamlscan` says where every node sits in the text,
`_yamlpaths` says which node a key names (and why not, in the error messages), and this module
says how a value is written, splices it in and checks the result.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from imagepromoter import _yamlpaths as yamlpaths
from imagepromoter import _yamlscan as yamlscan
from imagepromoter import errors, regexes

__all__ = [
    "EditFailed",
    "edit_keys",
    "get_key",
    "join_key",
    "set_key",
    "set_keys",
    "set_regex",
    "split_key",
]

EventKey = yamlscan.EventKey
split_key = yamlpaths.split_key
join_key = yamlpaths.join_key

_STRING_TAGS = frozenset({"tag:yaml.org,2002:str", "!"})
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})

# A plain scalar matching this loads as something other than a string under YAML 1.1 (PyYAML,
# go-yaml v2 as used by Helm), YAML 1.2 core (ruamel.yaml) or go-yaml v3. Deliberately broad:
# writing a string double-quoted that did not need it costs two characters; the reverse changes
# the value's type in the cluster.
_NOT_A_STRING = re.compile(
    r"""(?:
      ~ | null | true | false | yes | no | on | off | y | n            # nulls and booleans
    | [-+]? (?: 0b[01_]+ | 0o[0-7_]+ | 0x[0-9a-f_]+ )                  # binary, octal, hex
    | [-+]? (?: [0-9][0-9_]* (?: \.[0-9_]* )? | \.[0-9_]+ )            # 1, 0123, 1_000, 1.10, .5
        (?: e[-+]?[0-9]+ )?                                            # 1e3, 1.5E-2
    | [-+]? [0-9][0-9_]* (?: :[0-5]?[0-9] )+ (?: \.[0-9_]* )?          # sexagesimal 12:30
    | [-+]? \.inf | \.nan                                              # .inf, -.Inf, .NaN
    | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2} (?: (?: t | [ \t]+ ) .* )?        # dates and timestamps
    | << | =                                                           # merge and value keys
    )\Z""",
    re.VERBOSE | re.IGNORECASE,
)
_LEADING_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_INDICATORS = frozenset(",[]{}:?")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\0": "\\0",
    "\a": "\\a",
    "\b": "\\b",
    "\v": "\\v",
    "\f": "\\f",
    "\x1b": "\\e",
}


def get_key(text: str, key: str) -> str | None:
    """The current value at `key` as written (e.g. `1.10`), or None when it is null or empty."""
    target = yamlpaths.locate(_parse(text), key).node
    assert isinstance(target, yamlscan.Scalar)
    if target.value == "" or (
        target.style is None and target.tag is None and target.value in _NULLS
    ):
        return None
    return target.value


def set_key(text: str, key: str, value: str, *, document: int | None = None) -> str:
    """`text` with the scalar at `key` set to the string `value`, every other byte unchanged.

    `document` (0-based) looks the key up in that document of the file only (for markers).
    """
    return set_keys(text, [(key, value, document)])


class EditFailed(errors.TargetError):
    """An edit of `set_keys`/`edit_keys` failed; `index` is its position in the edits given."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


Edit = tuple[str, str] | tuple[str, str, int | None]
"""(key, value), or (key, value, document): the key looked up in that document only."""


def set_keys(text: str, edits: Sequence[Edit]) -> str:
    """`text` with each (key, value) set: planned on one parse, checked by one re-parse.

    Many targets on one file cost two parses in all, not two per target. A TargetError
    (`EditFailed`, with the edit's index) names the first key that cannot be written; then
    nothing is written.
    """
    return edit_keys(text, edits)[0]


def edit_keys(text: str, edits: Sequence[Edit]) -> tuple[str, tuple[int, ...]]:
    """Like `set_keys`, and the indices of the edits that changed the text."""
    try:
        stream = _parse(text)
    except errors.TargetError as exc:
        raise EditFailed(0, str(exc)) from None
    try:
        planned = _plan(stream, edits)
    except _Failed as failed:
        raise EditFailed(failed.index, str(failed.error)) from None
    if not planned:
        return text, ()
    summarize = _summarizer(text, stream)
    problem = ""
    for attempt in range(max(len(p.renderings) for p in planned)):
        edited = _splice(text, planned, attempt)
        targets = {p.target.event: p.value for p in planned}
        problem = _check_edit(stream.events, summarize, edited, targets)
        if not problem:
            return edited, tuple(p.index for p in planned)
    keys = ", ".join(p.key for p in planned)
    raise EditFailed(
        planned[0].index,
        f"key {keys}: could not write the new value without changing other data ({problem}); "
        "the file was left unchanged; please report this with the file's layout around the key",
    )


class _Failed(Exception):
    def __init__(self, index: int, error: errors.TargetError) -> None:
        self.index = index
        self.error = error


def _plan(stream: yamlscan.Stream, edits: Sequence[Edit]) -> list[_Planned]:
    """The scalars to rewrite, each with the texts to try; _Failed for the first bad edit."""
    planned: list[_Planned] = []
    seen: dict[int, str] = {}
    for index, edit in enumerate(edits):
        key, value = edit[0], edit[1]
        document = edit[2] if len(edit) > 2 else None
        try:
            item = _plan_one(stream, key, value, seen, document)
        except errors.TargetError as exc:
            raise _Failed(index, exc) from None
        if item is not None:
            planned.append(dataclasses.replace(item, index=index))
    return planned


def _plan_one(
    stream: yamlscan.Stream, key: str, value: str, seen: dict[int, str], document: int | None
) -> _Planned | None:
    """How to write one key (None: it already holds the value); TargetError if it cannot be."""
    found = yamlpaths.locate(stream, key, document=document)
    target = found.node
    assert isinstance(target, yamlscan.Scalar)
    if target.event in seen:
        raise errors.TargetError(
            f"key {key} names the same value as key {seen[target.event]}; remove one target"
        )
    seen[target.event] = key
    if target.value == value and _loads_as_string(target.style, target.tag, target.value):
        return None
    _writable(target, found, key)
    yamlpaths.refuse_shared(stream, found, key)
    if target.empty and target.insert_at is None:
        raise errors.TargetError(
            f"key {key} has no ':' (line {target.line}); write it as `key: value`"
        )
    renderings = tuple(_renderings(target, value, flow=found.in_flow))
    return _Planned(key, target, value, renderings)


@dataclass(frozen=True)
class _Planned:
    """One scalar to rewrite and the texts to try for it, best first."""

    key: str
    target: yamlscan.Scalar
    value: str
    renderings: tuple[str, ...]
    index: int = 0


def _writable(target: yamlscan.Scalar, found: yamlpaths.Found, key: str) -> None:
    """Raise when the scalar is a block scalar or carries a non-string tag."""
    if target.style in {"|", ">"}:
        raise errors.TargetError(
            f"key {key} holds a block scalar ({target.style}, line {target.line}); only one-line "
            f"values can be rewritten: write it as `{found.segments[-1]}: value` in the file"
        )
    if target.tag is not None and target.tag not in _STRING_TAGS:
        raise errors.TargetError(
            f"key {key} has the tag {target.tag} (line {target.line}); imagepromoter writes "
            "strings: remove the tag or make it !!str"
        )


def _splice(text: str, planned: Sequence[_Planned], attempt: int) -> str:
    """`text` with every planned scalar replaced by its rendering number `attempt` (or last)."""
    pieces: list[str] = []
    position = 0
    for item in sorted(
        planned, key=lambda p: p.target.start if not p.target.empty else p.target.insert_at or 0
    ):
        target = item.target
        written = item.renderings[min(attempt, len(item.renderings) - 1)]
        if target.empty:
            assert target.insert_at is not None
            pieces += [text[position : target.insert_at], " ", written]
            position = target.insert_at
        else:
            pieces += [text[position : target.start], written]
            position = target.end
    pieces.append(text[position:])
    return "".join(pieces)


def set_regex(text: str, pattern: str, value: str) -> str:
    """`text` with group `value` (else group 1) of every match of `pattern` replaced by `value`.

    The pattern runs (RE2, linear time) over the whole text with `(?m)` (`^`/`$` match at each
    line). The value is inserted literally, unquoted: the regex says exactly which characters to
    replace; so it may not hold a line break or control character.
    """
    try:
        compiled = regexes.compile(pattern, "regex", multiline=True)
    except errors.InvalidSpec as exc:
        raise errors.TargetError(f"regex {exc.problem}") from None
    group: int | str = "value" if "value" in compiled.groupindex else 1
    if compiled.groups == 0:
        raise errors.TargetError(
            f"regex {pattern!r} has no group; put (?P<value>...) around the part to replace"
        )
    if not value.isprintable():
        raise errors.TargetError(
            f"regex {pattern!r}: the new value has a line break or control character, which a "
            "regex target writes unquoted; use a key target (it quotes the value)"
        )
    stream = _parse(text)
    spans: list[tuple[int, int]] = []
    matches = 0
    for match in compiled.finditer(text):
        matches += 1
        start, end = match.span(group)
        if start < 0:
            continue
        if text[start:end].endswith("\r") and text[end : end + 1] == "\n":
            end -= 1  # `(.*)$` on a CRLF line: keep the line ending
        spans.append((start, end))
    if not matches:
        raise errors.TargetError(
            f"regex {pattern!r} matches nothing in the file; check it against the file "
            "(it is applied to the whole text, ^ and $ match at each line)"
        )
    if not spans:
        raise errors.TargetError(
            f"regex {pattern!r} matched {matches} time(s) but its group {group!r} took part in "
            "none of them; make the group non-optional"
        )
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces += [text[position:start], value]
        position = end
    edited = "".join([*pieces, text[position:]])
    if edited == text:
        return text
    problem = _check_regex_edit(stream, _summarizer(text, stream), edited, spans)
    if problem:
        raise errors.TargetError(
            f"regex {pattern!r}: writing {len(spans)} replacement(s) would {problem}; the file "
            "was left unchanged: narrow the regex to the value's characters (inside any quotes)"
        )
    return edited


def _parse(text: str) -> yamlscan.Stream:
    """Parse the file, turning a syntax error into a TargetError."""
    try:
        return yamlscan.parse(text)
    except yamlscan.YamlLimitError as exc:
        raise errors.TargetError(
            f"the file {exc}; imagepromoter edits values files of up to {yamlscan.MAX_CHARS} "
            f"characters and {yamlscan.MAX_DEPTH} levels of nesting: split or flatten the file"
        ) from None
    except yamlscan.YamlSyntaxError as exc:
        raise errors.TargetError(
            f"the file is not valid YAML ({exc}); fix the file in the repository"
        ) from None


# --- writing and checking a value ------------------------------------------------------------


def _loads_as_string(style: str | None, tag: str | None, value: str) -> bool:
    """True when a scalar with this style, tag and text loads as the string `value`."""
    if tag is not None:
        return tag in _STRING_TAGS
    return style is not None or _plain_is_string(value)


def _plain_is_string(value: str) -> bool:
    """True when a plain scalar's text (already parsed) resolves to a string everywhere."""
    return value != "" and not _NOT_A_STRING.match(value)


def _plain_is_safe(value: str, *, flow: bool) -> bool:
    """True when `value` can be written plain and load back as exactly this string."""
    if not value or not value.isprintable() or value != value.strip(" "):
        return False
    if value[0] in _LEADING_INDICATORS or value.endswith(":"):
        return False
    if ": " in value or " #" in value:
        return False
    if flow and not _FLOW_INDICATORS.isdisjoint(value):
        return False
    return not _NOT_A_STRING.match(value)


def _renderings(target: yamlscan.Scalar, value: str, *, flow: bool) -> Iterator[str]:
    """The texts to try for `value`, best first: the target's own style, then double quotes."""
    if target.style == "'" and value.isprintable():
        yield "'" + value.replace("'", "''") + "'"
    elif target.style is None and _plain_is_safe(value, flow=flow):
        yield value
    yield _double_quoted(value)


def _double_quoted(value: str) -> str:
    """`value` as a YAML double-quoted scalar, escaping what must be."""
    out = ['"']
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02X}"
                if code <= 0xFF
                else f"\\u{code:04X}"
                if code <= 0xFFFF
                else f"\\U{code:08X}"
            )
    out.append('"')
    return "".join(out)


def _summarizer(text: str, stream: yamlscan.Stream) -> Callable[[str], tuple[EventKey, ...]]:
    """How to summarize an edited text: libyaml when it reads the original as ruamel does."""
    try:
        if stream.from_libyaml or yamlscan.event_keys(text) == stream.events:
            return yamlscan.event_keys
    except yamlscan.YamlSyntaxError:
        pass
    return lambda edited: yamlscan.parse(edited).events


def _check_edit(
    old: tuple[EventKey, ...],
    summarize: Callable[[str], tuple[EventKey, ...]],
    edited: str,
    targets: Mapping[int, str],
) -> str:
    """'' when `edited` holds the same data as `old` but each new value at its target event."""
    try:
        new = summarize(edited)
    except yamlscan.YamlSyntaxError as exc:
        return f"the result would not parse: {exc}"
    if len(new) != len(old):
        return "the result would have a different structure"
    for index, (before, after) in enumerate(zip(old, new, strict=True)):
        if index in targets:
            kind, anchor, tag, text, style = after
            if kind != "S" or (anchor, tag) != (before[1], before[2]):
                return "the target would lose its anchor or tag"
            assert isinstance(text, str) and (style is None or isinstance(style, str))
            if text != targets[index] or not _loads_as_string(
                style, tag if isinstance(tag, str) else None, text
            ):
                return "the value would not load back as the same string"
        elif before != after:
            return "another node of the document would change"
    return ""


def _check_regex_edit(
    old: yamlscan.Stream,
    summarize: Callable[[str], tuple[EventKey, ...]],
    edited: str,
    spans: list[tuple[int, int]],
) -> str:
    """'' when `edited` changes only scalars that the replaced spans touch; else what broke."""
    try:
        new = summarize(edited)
    except yamlscan.YamlSyntaxError as exc:
        return f"make the file invalid YAML ({exc})"
    if [e[:3] if e[0] == "S" else e for e in old.events] != [
        e[:3] if e[0] == "S" else e for e in new
    ]:
        return "change the structure of the YAML (keys, lists, anchors or tags), not just values"
    touched = [
        node
        for root in old.documents
        for _, node in yamlpaths.descend(root, ())
        if isinstance(node, yamlscan.Scalar)
        and any(start <= node.end and node.start <= end for start, end in spans)
    ]
    allowed = {node.event for node in touched}
    for index, (before, after) in enumerate(zip(old.events, new, strict=True)):
        if before != after and index not in allowed:
            return "change a value the regex does not cover"
    return ""
