"""How fresh a pass needs the registry's answers: `not_before` (epoch seconds) for each cause.

scans.SharedScans serves an answer whose request started at or after a pass's `not_before`, or
joins such a request in flight; so the bound decides how many passes share one scan. It is the
earliest instant whose registry state the cause asks for, taken from the cluster where one exists
(every CR created, annotated or changed at one moment carries the same time, and shares a scan),
and capped at `now`, so a client with a clock ahead of ours cannot force a scan per CR:

- created: metadata.creationTimestamp. A spec change or a change seen at start: the newest
  metadata.managedFields[].time of an entry owning spec fields (the write that made the
  change; any entry if none says), else now.
- manual trigger: the value of imagepromoter.dev/requested-at when it reads as epoch seconds
  (`date +%s`, fractions allowed) or RFC 3339 and is within REQUEST_HORIZON of now; anything
  else ("1", "x", a date long gone) is now: the user asks for a pass that sees the registry as
  it is, and an old label must not make it take an old scan.
- webhook trigger: the trigger's receivedAt (the receiver's clock; the push was before it).
- timer: now minus the shortest interval among the image's CRs (pipeline/index.py), plus a
  tick of slack, so each image is scanned once per that interval and every other CR of it takes
  that scan.

Cluster timestamps have whole seconds, so an answer may predate the event by under a second; for
a create or a spec change that is harmless (the registry did not change because a CR did). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

REQUEST_HORIZON = timedelta(minutes=15)


def parse_time(text: object) -> datetime | None:
    """RFC 3339 (or ISO 8601 with an offset) or epoch seconds -> an aware datetime; else None."""
    if not isinstance(text, str) or not text.strip() or len(text) > 64:
        return None
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds < 2**33:
            return None
        return datetime.fromtimestamp(seconds, UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None  # a time without a zone means nothing


def created(meta: Mapping[str, Any], now: datetime) -> float:
    """A create pass: the CR's creationTimestamp (capped at now)."""
    return _capped(parse_time(meta.get("creationTimestamp")), now)


def changed(meta: Mapping[str, Any], now: datetime) -> float:
    """A spec change (or one made while the operator was away): the newest managedFields time.

    Entries that own spec fields count first (our own status and annotation writes are later
    than the change they follow, and would only make the bound later than it needs to be).
    """
    entries = [e for e in meta.get("managedFields") or () if isinstance(e, Mapping)]
    of_spec = [e for e in entries if "f:spec" in (e.get("fieldsV1") or {})]
    times = [parse_time(e.get("time")) for e in of_spec or entries]
    known = [t for t in times if t is not None]
    return _capped(max(known) if known else None, now)


def requested(value: object, now: datetime) -> float:
    """A manual trigger: the requested-at value if it is a recent time, else now."""
    when = parse_time(value)
    if when is not None and when < now - REQUEST_HORIZON:
        when = None
    return _capped(when, now)


def webhook(received_at: object, now: datetime) -> float:
    """A webhook trigger: when the receiver recorded it (capped at now)."""
    return _capped(parse_time(received_at), now)


def timer(now: datetime, shortest: timedelta, *, slack: timedelta = timedelta(0)) -> float:
    """A timer pass: any scan started within the image's shortest interval, less `slack`.

    Waves come exactly one interval apart, so the scan of the previous wave started about one
    interval ago, a little after or before this pass's `now - shortest`: without the slack (one
    tick) whether a wave rescans would be a coin toss. At most half the interval.
    """
    slack = min(slack, shortest / 2)
    try:
        return (now - shortest + slack).timestamp()
    except OverflowError:  # an interval of centuries: any answer kept will do
        return 0.0


def _capped(when: datetime | None, now: datetime) -> float:
    """`when` (now if unknown), never later than now."""
    return min(when, now).timestamp() if when is not None else now.timestamp()
