"""Versions and ranges: SemVer 2.0 precedence, read leniently, with the range syntax of Masterminds.

Image tags are not package versions (`v1.2.3`, `1.2`, `2024.01.15`), and users write the ranges
Flux and Argo CD Image Updater accept (both use Go's Masterminds/semver). A version parses into a
precedence key (numbers as numbers, a pre-release below its release, build metadata ignored), so
ordering and equality are plain comparisons of keys; a range parses into a union of comparator
sets, each a tuple of comparators, and errors name the part of the range to fix. No library fitted
this grammar, so it is owned here. The rules (forms accepted, operators, which pre-releases a
range admits, where we differ from Masterminds and npm) are stated once, in docs/policy.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from imagepromoter import errors

_NUMBER = r"0|[0-9]+"
_IDENT = r"[0-9A-Za-z-]+"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
_VERSION = re.compile(
    rf"v?(?P<major>{_NUMBER})(?:\.(?P<minor>{_NUMBER})(?:\.(?P<patch>{_NUMBER}))?)?"
    rf"(?:-(?P<pre>{_DOTTED}))?(?:\+(?P<build>{_DOTTED}))?",
    re.ASCII,
)
_PART = r"[0-9]+|[xX*]"
_COMPARATOR = re.compile(
    rf"(?P<op>>=|<=|!=|=>|=<|>|<|=|\^|~>|~)?v?(?P<major>{_PART})"
    rf"(?:\.(?P<minor>{_PART})(?:\.(?P<patch>{_PART}))?)?"
    rf"(?:-(?P<pre>{_DOTTED}))?(?:\+(?P<build>{_DOTTED}))?",
    re.ASCII,
)
_OPERATOR_SPACE = re.compile(r"(>=|<=|!=|=>|=<|>|<|=|\^|~>|~)\s+")
_EXAMPLES = "write e.g. 1.2.x, ^1.2, ~1.2, >=1 <2, >0,<2 or ^1 || ^2"


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A version; compares by SemVer precedence (build metadata ignored)."""

    major: int
    minor: int = 0
    patch: int = 0
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @property
    def precedence(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """The sort key of SemVer item 11: a release sorts above its pre-releases."""
        return (
            self.major,
            self.minor,
            self.patch,
            0 if self.prerelease else 1,
            identifiers_key(self.prerelease),
        )

    @property
    def release(self) -> tuple[int, int, int]:
        """major.minor.patch without the pre-release."""
        return (self.major, self.minor, self.patch)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence == other.precedence

    def __lt__(self, other: Version) -> bool:
        return self.precedence < other.precedence

    def __hash__(self) -> int:
        return hash(self.precedence)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def identifiers_key(identifiers: tuple[str, ...]) -> tuple[tuple[int, int, str], ...]:
    """Order dot-separated identifiers: digits numerically, below letters, which go by ASCII."""
    return tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in identifiers)


def parse_version(text: str) -> Version | None:
    """Read a tag as a version (`v` prefix, `1.2` and `1` short forms), or None if it is not one."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    pre = tuple(match["pre"].split(".")) if match["pre"] else ()
    if any(len(i) > 1 and i.isdigit() and i.startswith("0") for i in pre):
        return None  # SemVer forbids 1.0.0-rc.01: its order against rc.1 would be a guess
    return Version(
        major=int(match["major"]),
        minor=int(match["minor"] or 0),
        patch=int(match["patch"] or 0),
        prerelease=pre,
        build=tuple(match["build"].split(".")) if match["build"] else (),
    )


_Check = Callable[[Version], bool]


@dataclass(frozen=True)
class Comparator:
    """One condition, e.g. `>= 1.2.0`; `names_prerelease` when the user wrote a pre-release."""

    text: str
    check: _Check
    names_prerelease: bool = False


@dataclass(frozen=True)
class Range:
    """A parsed semverRange: versions in any of its comparator sets."""

    text: str
    sets: tuple[tuple[Comparator, ...], ...]

    def __contains__(self, version: Version) -> bool:
        return any(_in_set(version, comparators) for comparators in self.sets)

    @property
    def names_prerelease(self) -> bool:
        """True when some comparator set admits pre-releases."""
        return any(c.names_prerelease for s in self.sets for c in s)


def _in_set(version: Version, comparators: tuple[Comparator, ...]) -> bool:
    """All comparators hold; a pre-release also needs one of them to name a pre-release."""
    if version.prerelease and not any(c.names_prerelease for c in comparators):
        return False
    return all(c.check(version) for c in comparators)


def parse_range(text: str, field: str = "spec.semverRange") -> Range:
    """Parse a range such as `^1.2 || >=2.1 <3`; raise InvalidSpec naming `field` if it does not."""
    if not text.strip():
        raise errors.InvalidSpec(
            field, f"is empty; remove it to allow every release, or {_EXAMPLES}"
        )
    sets = []
    for alternative in text.split("||"):
        try:
            sets.append(_parse_set(alternative))
        except ValueError as exc:
            raise errors.InvalidSpec(
                field, f"{text!r} is not a version range: {exc}; {_EXAMPLES}"
            ) from None
    return Range(text=text, sets=tuple(sets))


def _parse_set(text: str) -> tuple[Comparator, ...]:
    """One alternative: comparators split by spaces or commas, `a - b` read as a hyphen range."""
    tokens = [t for t in re.split(r"[\s,]+", _OPERATOR_SPACE.sub(r"\1", text)) if t]
    if not tokens:
        raise ValueError("an empty alternative around '||'")
    comparators: list[Comparator] = []
    i = 0
    while i < len(tokens):
        if i + 2 < len(tokens) and tokens[i + 1] == "-":
            comparators.extend(_hyphen(tokens[i], tokens[i + 2]))
            i += 3
        else:
            comparators.extend(_comparator(tokens[i]))
            i += 1
    return tuple(comparators)


@dataclass(frozen=True)
class _Partial:
    """A version as written in a range: missing or wildcard parts are None."""

    major: int | None
    minor: int | None
    patch: int | None
    prerelease: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return self.patch is not None

    def floor(self) -> Version:
        """The lowest version the partial covers (`1.2` -> 1.2.0)."""
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.prerelease)

    def ceiling(self) -> Version | None:
        """The first version after what the partial covers (`1.2` -> 1.3.0-0); None for `*`."""
        if self.major is None:
            return None
        if self.minor is None:
            return Version(self.major + 1, 0, 0, ("0",))
        return Version(self.major, self.minor + 1, 0, ("0",))


def _partial(token: str) -> tuple[str, _Partial]:
    match = _COMPARATOR.fullmatch(token)
    if match is None:
        raise ValueError(f"cannot read {token!r}")
    written = [match[name] for name in ("major", "minor", "patch")]
    parts: list[int | None] = []
    for value in written:
        wildcard = value is None or value in "xX*" or (bool(parts) and parts[-1] is None)
        if wildcard and value is not None and value not in "xX*":
            raise ValueError(f"{token!r} has a number after a wildcard")
        parts.append(None if wildcard else int(value))
    pre = tuple(match["pre"].split(".")) if match["pre"] else ()
    zeros = [i for i in pre if len(i) > 1 and i.isdigit() and i.startswith("0")]
    if zeros:  # versions refuse them (SemVer item 9); in a range it would be read as rc.1
        raise ValueError(
            f"{token!r} has a numeric pre-release identifier with a leading zero ({zeros[0]}), "
            f"which no version can have; write {zeros[0].lstrip('0') or '0'}"
        )
    if pre:
        if any(value is not None and value in "xX*" for value in written):
            raise ValueError(f"{token!r} puts a pre-release on a wildcard")
        parts = [p or 0 for p in parts]  # 1.2-rc.1 means 1.2.0-rc.1, as Masterminds reads it
    return match["op"] or "=", _Partial(parts[0], parts[1], parts[2], pre)


def _bound(text: str, op: str, bound: Version, named: bool) -> Comparator:
    """A comparator against one version."""
    checks: dict[str, Callable[[Version, Version], bool]] = {
        ">=": lambda v, b: v >= b,
        ">": lambda v, b: v > b,
        "<": lambda v, b: v < b,
        "<=": lambda v, b: v <= b,
        "=": lambda v, b: v == b,
        "!=": lambda v, b: v != b,
    }
    compare = checks[op]
    return Comparator(text, lambda v: compare(v, bound), named)


def _comparator(token: str) -> list[Comparator]:
    op, p = _partial(token)
    op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(op, op)
    if p.major is None:  # `*`, `>=x`: everything; `>*`, `<*`, `!=*`: nothing
        return [Comparator(token, lambda v: op not in (">", "<", "!="))]
    named = bool(p.prerelease)
    low, high = p.floor(), p.ceiling()
    if op in ("=", "!=") and not p.complete:
        inside = _between(token, low, high, named)
        if op == "=":
            return inside
        return [Comparator(token, lambda v: not all(c.check(v) for c in inside), named)]
    if op in ("=", "!=", ">=", "<"):
        return [_bound(token, op, low, named)]
    if op in (">", "<="):  # on a partial, `>1.2` is `>=1.3.0-0` and `<=1.2` is `<1.3.0-0`
        if p.complete or high is None:
            return [_bound(token, op, low, named)]
        return [_bound(token, ">=" if op == ">" else "<", high, named)]
    if op == "~":
        upper = Version(low.major, low.minor + 1, 0, ("0",)) if p.minor is not None else high
        return _between(token, low, upper, named)
    return _between(token, low, _caret_ceiling(p), named)


def _caret_ceiling(p: _Partial) -> Version | None:
    """`^`: bump the left-most non-zero part that was written (npm's rule for 0.x)."""
    if p.major is None:
        return None
    if p.major > 0 or p.minor is None:
        return Version(p.major + 1, 0, 0, ("0",))
    if p.minor > 0 or p.patch is None:
        return Version(0, p.minor + 1, 0, ("0",))
    return Version(0, 0, p.patch + 1, ("0",))


def _between(token: str, low: Version, high: Version | None, named: bool) -> list[Comparator]:
    comparators = [_bound(token, ">=", low, named)]
    if high is not None:
        comparators.append(_bound(token, "<", high, named))
    return comparators


def _hyphen(first: str, last: str) -> list[Comparator]:
    """`1.2 - 1.4.5`: from the floor of the first to the whole of the last."""
    op_first, low = _partial(first)
    op_last, high = _partial(last)
    if op_first != "=" or op_last != "=":
        raise ValueError(f"a hyphen range takes plain versions, not {first!r} - {last!r}")
    text = f"{first} - {last}"
    named = bool(low.prerelease or high.prerelease)
    comparators = [_bound(text, ">=", low.floor(), named)]
    ceiling = high.ceiling()
    if high.complete:
        comparators.append(_bound(text, "<=", high.floor(), named))
    elif ceiling is not None:
        comparators.append(_bound(text, "<", ceiling, named))
    return comparators
