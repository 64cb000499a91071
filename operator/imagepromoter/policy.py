"""Choose one tag out of a registry's tags: tagRegex and excludeTags filter, a policy orders.

The shape follows Flux's `internal/policy`: one small strategy per policy and one factory
(`_strategy`) that maps the spec's `policy` string to it. A strategy turns a tag's ordering text
into a sort key, or into the reason it cannot take part; the highest key wins. Keeping the
reasons (not just dropping tags) is what lets `Selection.explain()` tell a user *why* nothing
qualified, above all the common trap of `*-dev` tags, which are SemVer pre-releases and so never
qualify without a range that names one.

- Tags are data: only a text that is an OCI tag as a whole (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`)
  is ever looked at; anything else the registry lists is counted (`Selection.invalid`) and
  ignored, so no newline, quote, NUL or 10 KB text can reach a values file or a commit.
- tagRegex must match the whole tag (RE2 full match: a `$` never matches before a final
  newline); excludeTags are searched (a match anywhere excludes, the cautious reading). Both run
  on RE2 (`regexes`), in linear time. The ordering text is the `version` named group of tagRegex
  when it has one, else the whole tag. Its other named groups are returned for templates.
  JavaScript `(?<name>...)` groups are accepted.
- semver: highest SemVer precedence (see `semver`); not-a-version texts are skipped; pre-releases
  only when semverRange names one. numerical: highest integer or decimal (exact, no float
  rounding); anything else is skipped. alphabetical: last in byte order. newest: latest `created`
  time; tags without one are skipped.
- Ties (equal keys: `v1.2.0` and `1.2.0`, or two tags with one creation time) go to the tag that
  sorts last in byte order, after, for semver, the higher build metadata. So the result never
  depends on the order the registry lists tags in.

Pure: no I/O. The caller fetches `created` (for `newest`) only for `candidates(...)`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from imagepromoter import errors, regexes, semver

POLICIES = ("semver", "numerical", "alphabetical", "newest")

NOT_VERSION = "not a version"
PRERELEASE = "a pre-release"
OUT_OF_RANGE = "outside semverRange"
NOT_NUMBER = "not a number"
NO_CREATED = "without a known creation time"
NO_VERSION_GROUP = "without a match for the version group"

_Key = tuple[object, ...]
_Strategy = Callable[[str, str], "_Key | str"]  # (ordering text, tag) -> sort key or reason
_EXAMPLES = 3
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_OCI_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", re.ASCII)


@dataclass(frozen=True)
class Dropped:
    """Candidates a policy could not order, for one reason, with a few examples."""

    reason: str
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """What `evaluate` chose (tag None: nothing qualified) and what it saw on the way."""

    tag: str | None
    version: str | None
    groups: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    candidates: int = 0
    scanned: int = 0  # distinct valid tags
    invalid: int = 0  # distinct texts the registry listed that are not OCI tags (ignored)
    excluded: int = 0
    dropped: tuple[Dropped, ...] = ()
    policy: str = "semver"
    tag_regex: str = ""
    semver_range: str | None = None
    suggested_regex: str | None = None

    def explain(self) -> str:
        """A sentence for the Ready condition: what was chosen, or why nothing qualified."""
        return self._explain() + self.ignored()

    def ignored(self) -> str:
        """`; N tags ... ignored` when the registry listed texts that are not OCI tags, else ''."""
        if not self.invalid:
            return ""
        one = self.invalid == 1
        what = "entry is not a valid OCI tag" if one else "entries are not valid OCI tags"
        return (
            f" ({self.invalid} tag list {what} ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}) and "
            f"{'was' if self.invalid == 1 else 'were'} ignored)"
        )

    def _explain(self) -> str:
        if self.tag is not None:
            return f"{self.tag} is the {self.policy} choice among {self.candidates} matching tags"
        if self.scanned == 0 and self.invalid:
            return "the repository lists no valid tags; push an image or check spec.image"
        if self.scanned == 0:
            return "the repository has no tags yet; push an image or check spec.image"
        if self.excluded and self.candidates == 0:
            return (
                f"excludeTags removed all {self.excluded} of the {self.scanned} tags that match "
                f"tagRegex {self.tag_regex!r}; check excludeTags"
            )
        if self.candidates == 0:
            return (
                f"none of the {self.scanned} tags matches tagRegex {self.tag_regex!r}; "
                "check tagRegex against the tags the registry lists"
            )
        parts = [_count(d, self.semver_range) for d in self.dropped]
        text = (
            f"none of the {self.candidates} tags matching tagRegex qualifies under policy "
            f"{self.policy}: {'; '.join(parts)}"
        )
        prereleases = sum(d.count for d in self.dropped if d.reason == PRERELEASE)
        if prereleases:
            text += _prerelease_fix(self, prereleases)
        return text


_PLURALS = {PRERELEASE: "pre-releases", NOT_VERSION: "not versions", NOT_NUMBER: "not numbers"}


def _count(dropped: Dropped, semver_range: str | None) -> str:
    reason = dropped.reason if dropped.count == 1 else _PLURALS.get(dropped.reason, dropped.reason)
    if dropped.reason == OUT_OF_RANGE:
        reason += f" {semver_range!r}"
    verb = "is" if dropped.count == 1 else "are"
    return f"{dropped.count} {verb} {reason} (e.g. {', '.join(dropped.examples)})"


def _prerelease_fix(selection: Selection, prereleases: int) -> str:
    """How to get `1.2.0-dev` tags promoted: order the release part, or name pre-releases."""
    lead = (
        "every match was dropped as a pre-release"
        if prereleases == selection.candidates
        else f"{prereleases} {'was' if prereleases == 1 else 'were'} dropped as "
        f"{'a pre-release' if prereleases == 1 else 'pre-releases'}"
    )
    regex = selection.suggested_regex or r"^(?P<version>.+)-dev$"
    return (
        f". Note: {lead}, because semver promotes a pre-release (a version with a -suffix, "
        "like 1.2.0-dev) only when semverRange names one. To order the number in front of "
        f"the suffix, put it in a version group: tagRegex: '{regex}'; to promote "
        "pre-releases themselves, name one in semverRange (e.g. '>=0.0.0-0')"
    )


def compile_tag_regex(pattern: str, field: str = "spec.tagRegex") -> regexes.Pattern:
    """Compile a tag regex for RE2, accepting `(?<name>...)` groups; InvalidSpec if it fails."""
    return regexes.compile(pattern, field)


def is_tag(text: object) -> bool:
    """True when `text` is a tag by the OCI grammar (the whole string)."""
    return isinstance(text, str) and _OCI_TAG.fullmatch(text) is not None


def _compile_excludes(exclude: Sequence[str]) -> list[regexes.Pattern]:
    return [compile_tag_regex(p, f"spec.excludeTags[{i}]") for i, p in enumerate(exclude)]


def _matches(
    tags: Sequence[str], pattern: regexes.Pattern, excludes: Sequence[regexes.Pattern]
) -> Iterator[tuple[str, regexes.Match | None]]:
    """Each distinct valid tag once, in input order, with its match (None: excluded or none)."""
    seen: set[str] = set()
    for tag in tags:
        if tag in seen or not is_tag(tag):
            continue
        seen.add(tag)
        match = pattern.fullmatch(tag)
        if match is not None and any(x.search(tag) for x in excludes):
            yield tag, None
            continue
        yield tag, match


def candidates(
    tags: Sequence[str], *, tag_regex: str | regexes.Pattern, exclude: Sequence[str] = ()
) -> list[str]:
    """Tags that pass tagRegex and excludeTags, in input order (duplicates once)."""
    pattern = _pattern(tag_regex)
    return [tag for tag, match in _matches(tags, pattern, _compile_excludes(exclude)) if match]


def select(
    tags: Sequence[str],
    *,
    tag_regex: str | regexes.Pattern,
    policy: str = "semver",
    semver_range: str | None = None,
    exclude: Sequence[str] = (),
    created: Mapping[str, datetime] | None = None,
) -> str | None:
    """The tag the policy chooses, or None when nothing qualifies."""
    return evaluate(
        tags,
        tag_regex=tag_regex,
        policy=policy,
        semver_range=semver_range,
        exclude=exclude,
        created=created,
    ).tag


EVALUATIONS_KEPT = 256  # distinct (tag list, tagRegex, policy, range, excludes, times) kept


def evaluate(
    tags: Sequence[str],
    *,
    tag_regex: str | regexes.Pattern,
    policy: str = "semver",
    semver_range: str | None = None,
    exclude: Sequence[str] = (),
    created: Mapping[str, datetime] | None = None,
) -> Selection:
    """Like `select`, with the ordering text, the named groups and the reasons tags were dropped.

    The CRs of one image judge the same tag list, usually with the same rules (1,000 CRs over
    100 images: 100 distinct evaluations), so an evaluation is kept and shared: a Selection is
    immutable. A compiled pattern is judged afresh (its text may be shared by another field).
    """
    if not isinstance(tag_regex, str):
        return _evaluate(tuple(tags), tag_regex, policy, semver_range, tuple(exclude), created)
    times = None if created is None else tuple(sorted(created.items()))
    return _kept(tuple(tags), tag_regex, policy, semver_range, tuple(exclude), times)


@functools.lru_cache(maxsize=EVALUATIONS_KEPT)
def _kept(
    tags: tuple[str, ...],
    tag_regex: str,
    policy: str,
    semver_range: str | None,
    exclude: tuple[str, ...],
    times: tuple[tuple[str, datetime], ...] | None,
) -> Selection:
    created = None if times is None else dict(times)
    return _evaluate(tags, tag_regex, policy, semver_range, exclude, created)


def _evaluate(
    tags: Sequence[str],
    tag_regex: str | regexes.Pattern,
    policy: str,
    semver_range: str | None,
    exclude: Sequence[str],
    created: Mapping[str, datetime] | None,
) -> Selection:
    strategy = _strategy(policy, semver_range, created)
    pattern = _pattern(tag_regex)
    excludes = _compile_excludes(exclude)
    has_version_group = "version" in pattern.groupindex
    best: tuple[_Key, str, str, regexes.Match] | None = None
    passed = excluded = 0
    dropped: dict[str, list[str]] = {}
    prerelease_suffixes: set[str] = set()
    distinct = set(tags)
    valid = {tag for tag in distinct if is_tag(tag)}
    for tag, match in _matches(tags, pattern, excludes):
        if match is None:
            excluded += pattern.fullmatch(tag) is not None
            continue
        passed += 1
        text = match["version"] if has_version_group else tag
        key = NO_VERSION_GROUP if text is None else strategy(text, tag)
        if isinstance(key, str):
            dropped.setdefault(key, []).append(tag)
            if key == PRERELEASE and text is not None:
                prerelease_suffixes.add(text.split("-", 1)[-1].split("+", 1)[0])
            continue
        if best is None or key > best[0]:
            best = (key, tag, text or tag, match)
    common = next(iter(prerelease_suffixes)) if len(prerelease_suffixes) == 1 else None
    seen = Selection(
        tag=None,
        version=None,
        candidates=passed,
        scanned=len(valid),
        invalid=len(distinct) - len(valid),
        excluded=excluded,
        dropped=tuple(Dropped(r, len(t), tuple(t[:_EXAMPLES])) for r, t in dropped.items()),
        policy=policy,
        tag_regex=pattern.pattern,
        semver_range=semver_range,
        suggested_regex=_suggest(common, has_version_group),
    )
    if best is None:
        return seen
    _, tag, text, match = best
    groups = {k: v or "" for k, v in match.groupdict().items() if k != "version"}
    return dataclasses.replace(seen, tag=tag, version=text, groups=types.MappingProxyType(groups))


def _suggest(suffix: str | None, has_version_group: bool) -> str | None:
    if suffix is None or has_version_group:
        return None
    return rf"^(?P<version>.+)-{re.escape(suffix)}$"


def _pattern(tag_regex: str | regexes.Pattern) -> regexes.Pattern:
    return tag_regex if isinstance(tag_regex, regexes.Pattern) else compile_tag_regex(tag_regex)


def _strategy(
    policy: str, semver_range: str | None, created: Mapping[str, datetime] | None
) -> _Strategy:
    """The factory: the spec's policy name -> the function that ranks one tag."""
    if policy not in POLICIES:
        raise errors.InvalidSpec(
            "spec.policy", f"{policy!r} is not a policy; use one of {', '.join(POLICIES)}"
        )
    if semver_range is not None and policy != "semver":
        raise errors.InvalidSpec(
            "spec.semverRange", "applies to policy semver only; remove it or use policy: semver"
        )
    if policy == "semver":
        return _semver(None if semver_range is None else semver.parse_range(semver_range))
    if policy == "numerical":
        return _numerical
    if policy == "alphabetical":
        return _alphabetical
    if created is None:
        raise ValueError("policy newest needs created= (tag -> image creation time)")
    return _newest(created)


def _semver(allowed: semver.Range | None) -> _Strategy:
    def rank(text: str, tag: str) -> _Key | str:
        version = semver.parse_version(text)
        if version is None:
            return NOT_VERSION
        if allowed is None:
            if version.prerelease:
                return PRERELEASE
        elif version not in allowed:
            if version.prerelease and not allowed.names_prerelease:
                return PRERELEASE
            return OUT_OF_RANGE
        return (version.precedence, semver.identifiers_key(version.build), tag)

    return rank


def _numerical(text: str, tag: str) -> _Key | str:
    if _NUMBER.fullmatch(text) is None:
        return NOT_NUMBER
    return (Decimal(text), tag)


def _alphabetical(text: str, tag: str) -> _Key | str:
    return (text, tag)


def _newest(created: Mapping[str, datetime]) -> _Strategy:
    def rank(text: str, tag: str) -> _Key | str:
        when = created.get(tag)
        if when is None:
            return NO_CREATED
        return (when if when.tzinfo else when.replace(tzinfo=UTC), tag)

    return rank
