"""Holds: a target value someone else changed since our last promotion is not overwritten.

Per target, the status keeps the value this CR last wrote (or found in place and adopted):
`status.written`. Before a target is written, its current value is compared with that record;
when they differ (a human rollback, a hotfix) and `onManualChange` is `hold` (the default), the
pass raises `Held` instead of writing, and the CR shows Ready=False, reason Held, naming the file,
the value found and the commit and author that put it there (`introduced`, over the file's
history since our last commit). Nothing is held when:
- there is no record for the target (a new CR, or a new target: the first promotion adopts);
- the file holds our value again, or already holds the value we would write;
- `spec.pin` is set (a pin is a deliberate choice of tag), or onManualChange is `overwrite`;
- the annotation `imagepromoter.dev/release-hold` differs from its value when the hold began.
The check runs inside the Planner, so it sees exactly the head that would be written onto, and
runs again on each re-plan after a lost push race. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagepromoter import errors, regexes, values

RELEASE_ANNOTATION = "imagepromoter.dev/release-hold"
MODES = ("hold", "overwrite")
MAX_WRITTEN = 100


class Held(errors.PromotionError):
    """A target holds a value someone else wrote; it is not overwritten (see module doc)."""

    reason = "Held"

    def __init__(self, ident: str, path: str, found: str, ours: str) -> None:
        self.ident, self.path, self.found, self.ours = ident, path, found, ours
        self.commit: Change | None = None
        super().__init__(f"{path} holds {found}, not {ours} as we last wrote it")


@dataclass(frozen=True)
class Change:
    """The commit that put the value found into the file."""

    sha: str
    author: str
    summary: str


@dataclass(frozen=True)
class Revision:
    """One commit of a file's history, newest first: its sha, author, subject and file bytes."""

    sha: str
    author: str
    summary: str
    content: bytes | None  # None: the file did not exist (or was not a file) there


def ident(path: str, key: str | None, regex: str | None) -> str:
    """The identity of a target in `status.written`."""
    return f"{path}\x00key\x00{key}" if key is not None else f"{path}\x00regex\x00{regex}"


def current_value(text: str, key: str | None, regex: str | None) -> str | None:
    """The value a target holds now: the scalar at `key`, or the first match of `regex`."""
    if key is not None:
        try:
            return values.get_key(text, key)
        except errors.TargetError:
            return None
    if regex is None:
        return None
    try:
        compiled = regexes.compile(regex, "regex", multiline=True)  # user regex: RE2, linear
    except errors.InvalidSpec:
        return None
    group: int | str = "value" if "value" in compiled.groupindex else 1
    for match in compiled.finditer(text):
        found = match.group(group)
        if found is not None:
            return found.removesuffix("\r")
    return None


@dataclass
class Guard:
    """The hold check for one pass; `written` collects what the last plan wrote per target."""

    hold: bool
    recorded: Mapping[str, str]
    written: dict[str, str] = field(default_factory=dict)

    def begin(self) -> None:
        """A plan (or a re-plan after a lost race) starts from scratch."""
        self.written = {}

    def check(self, target: str, path: str, current: str | None, new: str) -> None:
        """Raise Held when `current` is someone else's value; otherwise remember `new`."""
        ours = self.recorded.get(target)
        if self.hold and ours is not None and current is not None and current not in (ours, new):
            raise Held(target, path, current, ours)
        self.written[target] = new


def guard(
    mode: str,
    status: Mapping[str, Any],
    annotations: Mapping[str, str],
    *,
    pinned: bool,
) -> Guard:
    """The Guard for a pass: holding unless overwrite, pinned, or the hold was released."""
    hold = mode == "hold" and not pinned and not released(status, annotations)
    return Guard(hold=hold, recorded=recorded(status))


def released(status: Mapping[str, Any], annotations: Mapping[str, str]) -> bool:
    """Whether the release-hold annotation changed since the current hold began."""
    hold = status.get("hold")
    if not isinstance(hold, Mapping):
        return False
    return str(annotations.get(RELEASE_ANNOTATION, "")) != str(hold.get("release", ""))


def recorded(status: Mapping[str, Any]) -> dict[str, str]:
    """`status.written` as {target identity: value}."""
    found: dict[str, str] = {}
    entries = status.get("written")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("value"), str):
            continue
        path, key, regex = entry.get("path"), entry.get("key"), entry.get("regex")
        if isinstance(path, str) and (isinstance(key, str) or isinstance(regex, str)):
            found[ident(path, key if isinstance(key, str) else None, regex)] = entry["value"]
    return found


def written_status(previous: Mapping[str, Any], written: Mapping[str, str]) -> list[dict[str, str]]:
    """The new `status.written`: this pass's values over the previous records (bounded)."""
    merged = {**recorded(previous), **written}
    entries: list[dict[str, str]] = []
    for target, value in list(merged.items())[-MAX_WRITTEN:]:
        path, kind, name = target.split("\x00", 2)
        entries.append({"path": path, kind: name, "value": value})
    return entries


def introduced(history: Sequence[Revision], found: str, value_of: Any) -> Change | None:
    """The commit that made the file hold `found`: the oldest of the newest run holding it.

    `history` is newest first (head back to our last commit, bounded); `value_of(bytes)` reads
    the target's value from a revision. None when the head does not hold `found` or the run
    reaches past the history given (the change is older than what was read).
    """
    change: Change | None = None
    for revision in history:
        value = value_of(revision.content) if revision.content is not None else None
        if value != found:
            return change
        change = Change(sha=revision.sha, author=revision.author, summary=revision.summary)
    return None


def hold_status(exc: Held, annotations: Mapping[str, str]) -> dict[str, str]:
    """`status.hold` for a new (or continuing) hold."""
    entry = {
        "path": exc.path,
        "value": exc.found,
        "release": str(annotations.get(RELEASE_ANNOTATION, "")),
    }
    if exc.commit is not None:
        entry.update(commit=exc.commit.sha, author=exc.commit.author)
    return entry


def message(exc: Held, name: str, namespace: str) -> str:
    """The Held condition message: what was found, who put it there, and the three ways out."""
    if exc.commit is not None:
        who = (
            f"changed in {exc.commit.sha[:7]} by {exc.commit.author} ({exc.commit.summary[:120]!r})"
        )
    else:
        who = "changed by a commit that is not in the history read"
    return (
        f"{exc.path} holds {exc.found}, not {exc.ours} as we last wrote it: {who}; not "
        "overwriting a manual change. To promote again: change the annotation "
        f"(kubectl annotate ipr {name} -n {namespace} --overwrite "
        f'{RELEASE_ANNOTATION}="$(date +%s)"), set spec.pin to the tag to run, or set '
        "spec.onManualChange: overwrite"
    )
