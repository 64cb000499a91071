"""Gates on candidate tags: `spec.pin` (exactly one tag) and `spec.minAge` (old enough only).

Both act before the policy, by narrowing the tags it may choose from, so `policy` stays the one
place that orders tags and a gate can never promote a tag tagRegex or excludeTags refuse.

minAge, the rules: a tag's age runs from its image config's `created` when the image has one that
is not in the future (a clock-skewed or forged date must not let a tag skip the soak), otherwise
from the time this CR first saw the tag. First sightings are kept in the status only for tags
still too young (`MAX_FIRST_SEEN` of them, newest sightings first), so the status stays small
however many tags a repository has. Selection is greedy: the policy's choice is checked, and while
it is too young it is set aside and the policy chooses again among the rest, so an older, old
enough tag is promoted meanwhile. At most `MAX_YOUNG` tags are set aside per pass.

Pure: the one I/O step (reading `created`) is the injected `created` callable.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from imagepromoter import errors, policy

MAX_FIRST_SEEN = 20
MAX_YOUNG = 20
MAX_DURATION = timedelta(hours=8760)
TAG_GRAMMAR = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\Z")


class Waiting(errors.PromotionError):
    """Nothing may be promoted yet (minAge, from.after); `until`: when that changes, if known."""

    reason = "Waiting"

    def __init__(
        self,
        message: str,
        until: datetime | None = None,
        first_seen: Mapping[str, datetime] | None = None,
    ) -> None:
        super().__init__(message)
        self.until = until
        self.first_seen = first_seen


def parse_duration(field: str, value: Any) -> timedelta:
    """A Go-style h/m/s duration of zero or more, at most a year; InvalidSpec naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidSpec(field, f"must be a duration such as 30m, 1h or 24h, not {value!r}")
    text = value.strip()
    if text.startswith("-"):
        raise errors.InvalidSpec(field, f"{text!r} is negative; write a duration of 0s or more")
    match = _DURATION.match(text)
    if match is None:
        raise errors.InvalidSpec(
            field,
            f"{text!r} is not a duration; write hours, minutes and seconds like 30m, 1h or 24h",
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    if hours > 10**6 or minutes > 10**8 or seconds > 10**10:
        raise errors.InvalidSpec(field, f"{text!r} is longer than a year (8760h)")
    duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if duration > MAX_DURATION:
        raise errors.InvalidSpec(field, f"{text!r} is longer than a year (8760h)")
    return duration


def check_pin(pin: str, tag_regex: str | None, exclude: Sequence[str]) -> str:
    """`pin` if it is a tag tagRegex admits and no excludeTags entry refuses; else InvalidSpec."""
    if not TAG_GRAMMAR.match(pin):
        raise errors.InvalidSpec("spec.pin", f"{pin!r} is not an image tag")
    if tag_regex is None:
        return pin
    if not policy.candidates([pin], tag_regex=tag_regex):
        raise errors.InvalidSpec(
            "spec.pin",
            f"{pin!r} does not match tagRegex {tag_regex!r}; a pin must be a tag this "
            "ImagePromotion could promote",
        )
    for index, pattern in enumerate(exclude):
        if not policy.candidates([pin], tag_regex=tag_regex, exclude=[pattern]):
            raise errors.InvalidSpec(
                "spec.pin",
                f"{pin!r} is excluded by spec.excludeTags[{index}] {pattern!r}; a pin is not a "
                "way around excludeTags",
            )
    return pin


def pin_pool(pin: str, tags: Sequence[str], image: str) -> list[str]:
    """The one tag a pinned CR may promote; NoMatchingTag when the registry does not have it."""
    if pin in tags:
        return [pin]
    raise errors.NoMatchingTag(
        f"{image}: spec.pin {pin} is not in the registry ({len(set(tags))} tags listed); push "
        "it, or set spec.pin to a tag that exists"
    )


@dataclass(frozen=True)
class Young:
    """A tag the policy would choose but that is younger than minAge, and when it qualifies."""

    tag: str
    qualifies_at: datetime
    since: str  # "created" or "first seen"


@dataclass(frozen=True)
class Gated:
    """The policy's choice among old-enough tags, the younger tags set aside, first sightings."""

    selection: policy.Selection
    young: tuple[Young, ...]
    first_seen: dict[str, datetime]

    @property
    def until(self) -> datetime | None:
        """When the earliest set-aside tag qualifies (the next pass is due then)."""
        return min((y.qualifies_at for y in self.young), default=None)

    def note(self, min_age: timedelta) -> str:
        """`1.3.0-dev qualifies at 2026-..Z (minAge 1h)`, for the condition message."""
        if not self.young:
            return ""
        first = self.young[0]
        more = f" (and {len(self.young) - 1} more)" if len(self.young) > 1 else ""
        return (
            f"{first.tag} is younger than minAge {format_duration(min_age)} and qualifies at "
            f"{timestamp(first.qualifies_at)}{more}"
        )


Evaluate = Callable[[Sequence[str]], policy.Selection]
Created = Callable[[Sequence[str]], Awaitable[Mapping[str, datetime]]]


async def choose(
    pool: Sequence[str],
    *,
    evaluate: Evaluate,
    created: Created,
    min_age: timedelta,
    first_seen: Mapping[str, datetime],
    now: datetime,
) -> Gated:
    """The policy's choice among tags at least `min_age` old (see the module docstring)."""
    now = _utc(now)
    remaining = list(pool)
    young: list[Young] = []
    seen = dict(first_seen)
    while True:
        selection = evaluate(remaining)
        if selection.tag is None or min_age <= timedelta(0):
            break
        tag = selection.tag
        made = (await created([tag])).get(tag)
        made = _utc(made) if made is not None else None
        born, since = (made, "created") if made is not None and made <= now else (None, "")
        if born is None:
            born, since = seen.setdefault(tag, now), "first seen"
        if now - born >= min_age:
            break
        young.append(Young(tag=tag, qualifies_at=born + min_age, since=since))
        remaining.remove(tag)
        if len(young) >= MAX_YOUNG:
            selection = evaluate([])
            break
    still = {y.tag for y in young if y.since == "first seen"}
    kept = sorted(((t, w) for t, w in seen.items() if t in still), key=lambda p: p[1])
    return Gated(selection=selection, young=tuple(young), first_seen=dict(kept[-MAX_FIRST_SEEN:]))


def first_seen_of(status: Mapping[str, Any]) -> dict[str, datetime]:
    """`status.firstSeen` ([{tag, time}]) as a dict; unreadable entries are dropped."""
    found: dict[str, datetime] = {}
    entries = status.get("firstSeen")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("tag"), str):
            when = parse_time(entry.get("time"))
            if when is not None:
                found[entry["tag"]] = when
    return found


def first_seen_status(seen: Mapping[str, datetime]) -> list[dict[str, str]] | None:
    """The `status.firstSeen` list for `seen`, or None (remove the field) when empty."""
    if not seen:
        return None
    return [{"tag": tag, "time": timestamp(when)} for tag, when in seen.items()]


def format_duration(duration: timedelta) -> str:
    """timedelta -> `1h30m`, `45s`, `0s` (the spec's own notation)."""
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds or not text else "")


def timestamp(moment: datetime) -> str:
    """RFC 3339 UTC, whole seconds (as status times are written)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """A status timestamp back into an aware datetime; None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def next_pass(interval: timedelta, status: Mapping[str, Any], now: datetime) -> timedelta:
    """How long the scheduler waits: the interval, or less when `status.waitingUntil` is sooner."""
    until = parse_time(status.get("waitingUntil"))
    if until is None:
        return interval
    return max(min(interval, until - _utc(now)), timedelta(seconds=1))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
