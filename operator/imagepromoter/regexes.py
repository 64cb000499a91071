r"""User regexes (tagRegex, excludeTags, target regex) compiled for a linear-time engine: RE2.

A regex a CR author writes runs inside the operator, against data a registry or a repository
supplies. Python's `re` backtracks, so `^(a+)+$` against `aaaa...b` takes time exponential in the
tag's length and stops every other CR in the process. RE2 (the `google-re2` wheel, the engine Go's
`regexp` uses, so Flux and Argo CD users already write for it) runs in time linear in the text, and
refuses the few constructs that cannot be run that way: backreferences, lookaround, possessive and
atomic groups. Such a pattern is an InvalidSpec naming the field, saying why and how to rewrite it.

Kept from before: JavaScript-style `(?<name>...)` groups are accepted next to `(?P<name>...)`.
Semantics worth knowing, which differ from Python's `re`: `$` (without `(?m)`) matches only at the
very end of the text, never before a final newline; `\d`, `\w`, `\s` are ASCII only (a full-width
digit is not a digit); `\Z` is written `\z`. `Pattern` offers the three operations we use and
reports spans in characters. Compile errors are never logged by RE2 itself (`log_errors` off).

Compiled patterns are kept (the last COMPILED_KEPT distinct ones): every pass compiled its CR's
regexes afresh, and a thousand passes of a wave held a thousand RE2 programs, each with the DFA
cache it grows while matching a tag list, in C++ memory Python does not see (bench/scale.py: the
operator's peak RSS fell by several MB at 1,000 CRs sharing one tagRegex). A kept pattern is
shared across threads; RE2 matching is thread-safe. A pattern that fails is not kept.

Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import re2

from imagepromoter import errors

MAX_PATTERN = 4096  # characters; a longer regex is a mistake, and RE2's memory is bounded below
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_MAX_MEM = 8 << 20  # bytes RE2 may use for one compiled program
COMPILED_KEPT = 128  # distinct (pattern, field, multiline) compiled patterns kept


@dataclass(frozen=True)
class Match:
    """One match: the spans (in characters) and texts of its groups."""

    _match: Any
    _groupindex: Mapping[str, int]

    def group(self, which: int | str = 0) -> str | None:
        """The text of group `which` (a number or a name), or None when it took no part."""
        index = which if isinstance(which, int) else self._groupindex[which]
        text = self._match.group(index)
        return None if text is None else str(text)

    def span(self, which: int | str = 0) -> tuple[int, int]:
        """(start, end) of group `which`; (-1, -1) when it took no part."""
        index = which if isinstance(which, int) else self._groupindex[which]
        start, end = self._match.span(index)
        return int(start), int(end)

    def groupdict(self) -> dict[str, str | None]:
        """Named groups -> their text (None when a group took no part)."""
        return {name: self.group(index) for name, index in self._groupindex.items()}

    def __getitem__(self, which: int | str) -> str | None:
        return self.group(which)


@dataclass(frozen=True)
class Pattern:
    """A compiled user regex; `pattern` is the text as the user wrote it."""

    pattern: str
    groupindex: Mapping[str, int]
    groups: int
    _regexp: Any

    def fullmatch(self, text: str) -> Match | None:
        """The match of the whole of `text`, or None."""
        found = self._regexp.fullmatch(text)
        return None if found is None else Match(found, self.groupindex)

    def search(self, text: str) -> Match | None:
        """The first match anywhere in `text`, or None."""
        found = self._regexp.search(text)
        return None if found is None else Match(found, self.groupindex)

    def finditer(self, text: str) -> Iterator[Match]:
        """Every non-overlapping match, left to right."""
        for found in self._regexp.finditer(text):
            yield Match(found, self.groupindex)


@functools.lru_cache(maxsize=COMPILED_KEPT)
def compile(pattern: str, field: str, *, multiline: bool = False) -> Pattern:
    """Compile a user regex for RE2; InvalidSpec naming `field` when RE2 cannot run it."""
    if len(pattern) > MAX_PATTERN:
        raise errors.InvalidSpec(
            field, f"is {len(pattern)} characters long; a regex may have at most {MAX_PATTERN}"
        )
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEM
    source = named_groups(pattern)
    try:
        compiled = re2.compile(f"(?m){source}" if multiline else source, options)
    except re2.error as exc:
        words = _words(exc).replace(f"(?m){source}", source)
        raise errors.InvalidSpec(field, _explain(pattern, words, multiline)) from None
    except (TypeError, ValueError) as exc:  # e.g. a lone surrogate the wrapper cannot encode
        raise errors.InvalidSpec(field, f"cannot be compiled ({type(exc).__name__})") from None
    names = [n for n in _group_names(source) if n in compiled.groupindex]
    for name in names:
        if not _IDENTIFIER.fullmatch(name):
            raise errors.InvalidSpec(
                field, f"the group name {name!r} is not letters, digits and _ (not first a digit)"
            )
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise errors.InvalidSpec(
            field, f"names the group {twice[0]!r} twice (duplicate capture name); rename one"
        )
    return Pattern(
        pattern=pattern,
        groupindex=dict(compiled.groupindex),
        groups=int(compiled.groups),
        _regexp=compiled,
    )


def named_groups(pattern: str) -> str:
    """Rewrite `(?<name>` to `(?P<name>`, leaving escapes, classes and `(?<=`/`(?<!` alone."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if pattern[i : i + 1] == "]":  # a leading `]` is a literal, not the end
                out.append("]")
                i += 1
            continue
        elif pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            out.append("(?P<")
            i += 3
            continue
        elif pattern.startswith("(?P<", i):
            out.append("(?P<")
            i += 4
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _group_names(source: str) -> list[str]:
    """The names of `(?P<name>` groups in a rewritten pattern, in order (escapes skipped)."""
    names: list[str] = []
    i = 0
    while (i := source.find("(?P<", i)) >= 0:
        backslashes = len(source[:i]) - len(source[:i].rstrip("\\"))
        end = source.find(">", i)
        if backslashes % 2 == 0 and end > 0:
            names.append(source[i + 4 : end])
        i += 4
    return names


def _words(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


_LINEAR = "imagepromoter runs user regexes in linear time (RE2 syntax, as Go's regexp)"


def _explain(pattern: str, words: str, multiline: bool) -> str:
    """Why RE2 refused `pattern`, and the rewrite that usually works."""
    shown = repr(pattern if len(pattern) <= 120 else pattern[:117] + "...")
    if "(?=" in pattern or "(?!" in pattern or "(?<=" in pattern or "(?<!" in pattern:
        why = (
            "uses lookaround ((?=, (?!, (?<=, (?<!), which " + _LINEAR + " cannot run; match "
            "the tags you want and list the ones to drop in excludeTags instead"
        )
    elif ("invalid escape sequence: \\" in words and words[-1:].isdigit()) or "(?P=" in pattern:
        why = (
            "uses a backreference (\\1 or (?P=name)), which " + _LINEAR + " cannot run; "
            "write the repeated part out, e.g. (a|b)-(a|b)"
        )
    elif "bad repetition operator" in words and ("++" in words or "*+" in words or "?+" in words):
        why = (
            "uses a possessive quantifier (++, *+, ?+), which " + _LINEAR + " does not need: "
            "drop the second +"
        )
    elif "(?>" in pattern:
        why = f"uses an atomic group (?>...), which {_LINEAR} does not need: write (?:...)"
    elif "\\Z" in pattern:
        why = f"uses \\Z, which {_LINEAR} writes \\z (or $, which never matches before a newline)"
    elif "pattern too large" in words:
        why = "is too large for the regex engine; simplify it (fewer or smaller repetitions)"
    else:
        why = f"is not a valid regular expression ({words}); {_LINEAR}"
    example = "'tag: (?P<value>.*)'" if multiline else "'^(?P<version>\\d+\\.\\d+\\.\\d+)-dev$'"
    return f"{shown} {why}; e.g. {example}"
