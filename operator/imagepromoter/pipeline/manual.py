"""Requests on a CR's annotations (the manual trigger `imagepromoter.dev/requested-at` and the
webhook trigger `imagepromoter.dev/trigger`) read from the watch, not from Kopf's diff.

Kopf finds a changed annotation by comparing the object with the last-handled configuration it
keeps in another annotation, and writes that configuration back after every handler: each
trigger cost a second API write and a second watch event, and Kopf's change machinery for every
CR annotated. At 1,000 CRs annotated at once that was 1,000 writes beside the 1,000 status
patches, and most of what that cycle added to the operator's memory (bench/scale.py, triggered).
So both annotations are left out of Kopf's essence (kube/passes.py) and this memory of the last
value seen per CR decides from every watch event: a value that differs from the one seen before
is a request (kube/passes.py folds the requests that arrive while a pass of the CR runs into one
more pass, on the latest value).

What only Kopf's stored copy knew is whether a value first seen by this process (its first listing
after a start, or a CR moved into its shard) was answered by the process before. The status tells
by `status.lastScanTime`, where the value carries a time: a requested-at that reads as a recent
time (pipeline/freshness.py: within its 15-minute horizon) at or before it, or a webhook trigger
received at or before it, was followed by a scan. Such a value, and any value on a CR that has
never been scanned (its create or resume pass covers it), is taken as answered; any other first
value is a request. So a request made while the operator was stopped, or during its start, is
never lost, at the price of one pass after a start for a CR whose requested-at is not a recent
time (or is later than its last recorded scan: a quiet pass refreshes lastScanTime only hourly):
a pass that finds nothing to do writes nothing. Pure: no I/O; the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from imagepromoter.pipeline import freshness
from imagepromoter.webhooks import model as webhook_model

# whether a value first seen by this process may still wait for its pass: (value, lastScanTime, now)
Unanswered = Callable[[str, object, datetime], bool]


def requested_at(value: str, last_scan: object, now: datetime) -> bool:
    """requested-at: unanswered unless it is a recent time that a recorded scan followed."""
    scanned = freshness.parse_time(last_scan)
    if scanned is None:
        return False  # never scanned: the create or resume pass is its pass
    when = freshness.parse_time(value)
    if when is None or when < now - freshness.REQUEST_HORIZON:
        return True  # not a time (nor is "1", 1970): nothing says a pass answered it
    return min(when, now) > scanned  # a clock ahead of ours counts as now, as freshness reads it


def webhook_trigger(value: str, last_scan: object, now: datetime) -> bool:
    """`imagepromoter.dev/trigger`: unanswered when received after the CR's last recorded scan."""
    scanned = freshness.parse_time(last_scan)
    trigger = webhook_model.decode(value)
    if scanned is None or trigger is None:
        return False  # never scanned (its first pass is coming), or not a trigger at all
    received = freshness.parse_time(trigger.received_at)
    return received is None or min(received, now) > scanned


class Requests:
    """The last value of one annotation seen for each CR (by uid), and which new value is a
    request (`unanswered` judges a value first seen by this process)."""

    def __init__(self, unanswered: Unanswered = requested_at) -> None:
        self._unanswered = unanswered
        self._seen: dict[str, str | None] = {}
        self._answered: dict[str, str] = {}

    def seen(self, uid: str, value: object, *, last_scan: object, now: datetime) -> str | None:
        """The value to act on, if this watch event carries a new request; else None."""
        text = value if isinstance(value, str) and value else None
        known = uid in self._seen
        previous = self._seen.get(uid)
        self._seen[uid] = text
        if text is None or text == previous:
            return None
        if known:
            return text
        return text if self._unanswered(text, last_scan, now) else None

    def answered(self, uid: str, value: str) -> None:
        """A pass for this request ended (or the last pass already answered it)."""
        self._answered[uid] = value

    def last_answered(self, uid: str) -> str | None:
        """The last request value answered for this CR in this process (tests, diagnostics)."""
        return self._answered.get(uid)

    def forget(self, uid: str) -> None:
        """The CR is gone."""
        self._seen.pop(uid, None)
        self._answered.pop(uid, None)
