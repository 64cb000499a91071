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
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from imagepromoter import _yamlscan as yamlscan
from imagepromoter import errors

EventKey = yamlscan.EventKey

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


def split_key(key: str) -> tuple[str, ...]:
    r"""Split a dotted key path (`\.` is a dot, `\\` a backslash); TargetError if malformed."""
    segments: list[str] = []
    current: list[str] = []
    chars = iter(key)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in {".", "\\"}:
                raise errors.TargetError(
                    f"key {key!r}: a backslash must be followed by . or \\ (write \\. for a dot)"
                )
            current.append(escaped)
        elif char == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    if "" in segments:
        raise errors.TargetError(
            f"key {key!r} has an empty segment (a leading, trailing or doubled dot)"
        )
    return tuple(segments)


def join_key(segments: tuple[str, ...] | list[str]) -> str:
    r"""The dotted form of key segments, escaping `\` and `.` inside them."""
    return ".".join(s.replace("\\", "\\\\").replace(".", "\\.") for s in segments)


def get_key(text: str, key: str) -> str | None:
    """The current value at `key` as written (e.g. `1.10`), or None when it is null or empty."""
    target = _locate(_parse(text), key).node
    assert isinstance(target, yamlscan.Scalar)
    if target.value == "" or (
        target.style is None and target.tag is None and target.value in _NULLS
    ):
        return None
    return target.value


def set_key(text: str, key: str, value: str) -> str:
    """`text` with the scalar at `key` set to the string `value`, every other byte unchanged."""
    stream = _parse(text)
    found = _locate(stream, key)
    target = found.node
    assert isinstance(target, yamlscan.Scalar)
    if target.value == value and _loads_as_string(target.style, target.tag, target.value):
        return text
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
    _refuse_shared(stream, found, key)
    summarize = _summarizer(text, stream)
    problem = ""
    for written in _renderings(target, value, flow=found.in_flow):
        if target.empty:
            if target.insert_at is None:
                raise errors.TargetError(
                    f"key {key} has no ':' (line {target.line}); write it as `key: value`"
                )
            edited = f"{text[: target.insert_at]} {written}{text[target.insert_at :]}"
        else:
            edited = f"{text[: target.start]}{written}{text[target.end :]}"
        problem = _check_edit(stream.events, summarize, edited, target, value)
        if not problem:
            return edited
    raise errors.TargetError(
        f"key {key}: could not write the new value without changing other data ({problem}); "
        "the file was left unchanged; please report this with the file's layout around the key"
    )


def set_regex(text: str, pattern: str, value: str) -> str:
    """`text` with group `value` (else group 1) of every match of `pattern` replaced by `value`.

    The pattern runs over the whole text with re.MULTILINE (`^`/`$` match at each line). The value
    is inserted literally, unquoted: the regex says exactly which characters to replace.
    """
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        hint = " (write (?P<name>...) for a named group)" if "(?<" in pattern else ""
        raise errors.TargetError(f"regex {pattern!r} does not compile: {exc}{hint}") from None
    group: int | str = "value" if "value" in compiled.groupindex else 1
    if compiled.groups == 0:
        raise errors.TargetError(
            f"regex {pattern!r} has no group; put (?P<value>...) around the part to replace"
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


# --- locating a key --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """The node a key path leads to, the nodes above it and the path's segments."""

    node: yamlscan.Node
    chain: tuple[yamlscan.Node, ...]  # from the document root down to the node's parent
    segments: tuple[str, ...]
    document: int

    @property
    def in_flow(self) -> bool:
        """True when the node sits inside a flow mapping or sequence."""
        parent = self.chain[-1] if self.chain else None
        return isinstance(parent, yamlscan.Mapping | yamlscan.Sequence) and parent.flow


@dataclass(frozen=True)
class _Walk:
    """How far a key path got in one document: found, or the reason it stopped."""

    depth: int
    found: _Found | None
    problem: str


def _parse(text: str) -> yamlscan.Stream:
    """Parse the file, turning a syntax error into a TargetError."""
    try:
        return yamlscan.parse(text)
    except yamlscan.YamlSyntaxError as exc:
        raise errors.TargetError(
            f"the file is not valid YAML ({exc}); fix the file in the repository"
        ) from None


def _locate(stream: yamlscan.Stream, key: str) -> _Found:
    """The scalar at `key`, following the multi-document rule; TargetError otherwise."""
    segments = split_key(key)
    if not stream.documents:
        raise errors.TargetError(f"key {key} not found: the file holds no YAML document")
    walks = [_walk(stream, root, segments, key, n) for n, root in enumerate(stream.documents)]
    complete = [n for n, w in enumerate(walks) if w.depth == len(segments)]
    if len(complete) > 1:
        numbers = " and ".join(str(n + 1) for n in complete)
        raise errors.TargetError(
            f"key {key} is in documents {numbers} of this multi-document file, but a key must "
            "name exactly one value: split the file, or use a regex target to edit several"
        )
    best = walks[complete[0]] if complete else max(walks, key=lambda w: w.depth)
    if best.problem:
        raise errors.TargetError(best.problem)
    assert best.found is not None
    return best.found


def _walk(
    stream: yamlscan.Stream,
    root: yamlscan.Node,
    segments: tuple[str, ...],
    key: str,
    document: int,
) -> _Walk:
    """Follow `segments` down from a document root."""
    node, chain, line = root, [], 0
    for depth, segment in enumerate(segments):
        where = join_key(segments[:depth]) if depth else "the document root"
        problem = ""
        child: yamlscan.Node | None = None
        if isinstance(node, yamlscan.Mapping):
            matches = [
                (k, v)
                for k, v in node.pairs
                if isinstance(k, yamlscan.Scalar) and k.value == segment
            ]
            if len(matches) > 1:
                lines = " and ".join(str(k.line) for k, _ in matches)
                return _Walk(
                    depth + 1,
                    None,
                    f"key {key} is ambiguous: {where} has the key {segment!r} more than once "
                    f"(lines {lines}); remove the duplicate from the file",
                )
            if matches:
                child, line = matches[0][1], matches[0][0].line
            elif any(isinstance(k, yamlscan.Scalar) and k.value == "<<" for k, _ in node.pairs):
                return _Walk(
                    depth,
                    None,
                    f"key {key} not found: {where} (line {line or node.line}) has no key "
                    f"{segment!r} of its own, and any it gets from a merge key (<<) lives in the "
                    f"anchored mapping it merges{_anchor_hint(stream, node)}: edit the key there, "
                    f"or add {segment!r} under {where}",
                )
            else:
                problem = f"key {key} not found: {where} has no key {segment!r}"
        elif isinstance(node, yamlscan.Sequence):
            count = len(node.items)
            if segment.isdigit() and segment.isascii() and int(segment) < count:
                child = node.items[int(segment)]
                line = getattr(child, "line", node.line)
            else:
                span = f"0 to {count - 1}" if count else "none, it is empty"
                problem = (
                    f"key {key} not found: {where} is a list (line {node.line}), so {segment!r} "
                    f"must be an item index ({span})"
                )
        elif isinstance(node, yamlscan.Alias):
            return _Walk(depth, None, _alias_problem(stream, node, key, where, segments[depth:]))
        else:
            problem = (
                f"key {key} not found: {where} holds a single value (line {node.line}), not a "
                f"mapping or list, so it has no {segment!r}"
            )
        if child is None:
            return _Walk(
                depth,
                None,
                f"{problem}{_nearest(stream, key)}; fix the target's key or add it to the file",
            )
        chain.append(node)
        node = child
    found = _Found(node, tuple(chain), segments, document)
    if isinstance(node, yamlscan.Scalar):
        return _Walk(len(segments), found, "")
    if isinstance(node, yamlscan.Alias):
        return _Walk(len(segments), None, _alias_problem(stream, node, key, key, ()))
    if isinstance(node, yamlscan.Mapping):
        what, hint = f"a mapping (line {line})", "name one of its values"
    else:
        what = f"a list of {len(node.items)} item(s) (line {line})"
        hint = "add an item index"
    return _Walk(
        len(segments),
        None,
        f"key {key} holds {what}, not a single value: {hint}{_nearest(stream, key, under=key)}",
    )


def _alias_problem(
    stream: yamlscan.Stream,
    alias: yamlscan.Alias,
    key: str,
    where: str,
    rest: tuple[str, ...],
) -> str:
    """The message for a key that runs into `*name`."""
    anchored = _anchor_paths(stream).get(alias.name)
    there = f": {join_key([*split_key(anchored), *rest])}" if anchored else ""
    return (
        f"key {key}: {where} is an alias (*{alias.name}, line {alias.line}) of a value anchored "
        "elsewhere; editing through it would change every copy. Edit the anchored value "
        f"instead{there}"
    )


def _anchor_hint(stream: yamlscan.Stream, mapping: yamlscan.Mapping) -> str:
    """` (path)` of the anchored mappings that `mapping` merges, when they can be named."""
    names: list[str] = []
    for k, v in mapping.pairs:
        if isinstance(k, yamlscan.Scalar) and k.value == "<<":
            items = v.items if isinstance(v, yamlscan.Sequence) else (v,)
            names += [i.name for i in items if isinstance(i, yamlscan.Alias)]
    paths = _anchor_paths(stream)
    known = [paths[n] for n in names if n in paths]
    return f" ({', '.join(known)})" if known else ""


def _refuse_shared(stream: yamlscan.Stream, found: _Found, key: str) -> None:
    """Raise when the target, or a collection holding it, is anchored and copied by an alias."""
    for node in (*found.chain, found.node):
        anchor = getattr(node, "anchor", None)
        if anchor is None:
            continue
        assert isinstance(node, yamlscan.Scalar | yamlscan.Mapping | yamlscan.Sequence)
        for index in range(node.event + 1, len(stream.events)):
            event = stream.events[index]
            if event[0] in {"S", "M", "Q"} and event[1] == anchor:
                break  # the anchor is redefined; later aliases refer to the new one
            if event[0] == "A" and event[1] == anchor:
                line = _alias_lines(stream).get(index, 0)
                what = (
                    "its value"
                    if node is found.node
                    else f"a collection holding it (line {node.line})"
                )
                raise errors.TargetError(
                    f"key {key}: {what} is anchored (&{anchor}) and copied by the alias *{anchor} "
                    f"at line {line}, so changing it would change that copy too; remove the "
                    "anchor/alias pair from the file, or use a regex target if every copy "
                    "should change"
                )


def _nearest(stream: yamlscan.Stream, key: str, *, under: str | None = None) -> str:
    """`; the nearest existing key is X` (or an example key under `under`), or ''."""
    leaves = list(_leaf_paths(stream))
    if under is not None:
        inside = [leaf for leaf in leaves if leaf.startswith(f"{under}.")]
        return f", e.g. {inside[0]}" if inside else ""
    close = difflib.get_close_matches(key, leaves, n=1, cutoff=0.6)
    if close:
        return f"; the nearest existing key is {close[0]}"
    if leaves:
        return f"; no similar key exists (the file has e.g. {', '.join(leaves[:3])})"
    return "; the file has no keys with single values"


def _leaf_paths(stream: yamlscan.Stream) -> Iterator[str]:
    """Every key path in the file that leads to a scalar, in file order, without duplicates."""
    seen: set[str] = set()
    for root in stream.documents:
        for path, node in _descend(root, ()):
            if (
                isinstance(node, yamlscan.Scalar)
                and path
                and (joined := join_key(path)) not in seen
            ):
                seen.add(joined)
                yield joined


def _anchor_paths(stream: yamlscan.Stream) -> dict[str, str]:
    """Anchor name -> key path of the node that defines it (the first definition)."""
    paths: dict[str, str] = {}
    for root in stream.documents:
        for path, node in _descend(root, ()):
            anchor = getattr(node, "anchor", None)
            if anchor is not None and path:
                paths.setdefault(anchor, join_key(path))
    return paths


def _alias_lines(stream: yamlscan.Stream) -> dict[int, int]:
    """Event index -> line of every alias."""
    return {
        node.event: node.line
        for root in stream.documents
        for _, node in _descend(root, ())
        if isinstance(node, yamlscan.Alias)
    }


def _descend(
    node: yamlscan.Node, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], yamlscan.Node]]:
    """Every node below `node` (itself included) with its key path; skips non-scalar keys."""
    yield path, node
    if isinstance(node, yamlscan.Mapping):
        for k, v in node.pairs:
            if isinstance(k, yamlscan.Scalar):  # a collection as a key cannot be named by a path
                yield from _descend(v, (*path, k.value))
    elif isinstance(node, yamlscan.Sequence):
        for index, item in enumerate(node.items):
            yield from _descend(item, (*path, str(index)))


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
        if yamlscan.event_keys(text) == stream.events:
            return yamlscan.event_keys
    except yamlscan.YamlSyntaxError:
        pass
    return lambda edited: yamlscan.parse(edited).events


def _check_edit(
    old: tuple[EventKey, ...],
    summarize: Callable[[str], tuple[EventKey, ...]],
    edited: str,
    target: yamlscan.Scalar,
    value: str,
) -> str:
    """'' when `edited` holds the same data as `old` but `value` at the target; else why not."""
    try:
        new = summarize(edited)
    except yamlscan.YamlSyntaxError as exc:
        return f"the result would not parse: {exc}"
    if len(new) != len(old):
        return "the result would have a different structure"
    for index, (before, after) in enumerate(zip(old, new, strict=True)):
        if index == target.event:
            kind, anchor, tag, text, style = after
            if kind != "S" or (anchor, tag) != (before[1], before[2]):
                return "the target would lose its anchor or tag"
            assert isinstance(text, str) and (style is None or isinstance(style, str))
            if text != value or not _loads_as_string(
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
        for _, node in _descend(root, ())
        if isinstance(node, yamlscan.Scalar)
        and any(start <= node.end and node.start <= end for start, end in spans)
    ]
    allowed = {node.event for node in touched}
    for index, (before, after) in enumerate(zip(old.events, new, strict=True)):
        if before != after and index not in allowed:
            return "change a value the regex does not cover"
    return ""
