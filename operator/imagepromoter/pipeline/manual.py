"""Requests on a CR's annotations, read from the watch, not from Kopf's diff: the manual trigger
`imagepromoter.dev/requested-at`, the webhook trigger `imagepromoter.dev/trigger`, a staged
pipeline's `imagepromoter.dev/upstream-changed` and `imagepromoter.dev/release-hold`; and the
spec's generation no pass has observed yet (a new CR, a spec change: `unobserved_generation`).

Kopf finds a changed annotation by comparing the object with the last-handled configuration it
keeps in another annotation, and writes that configuration back after every handler: each
trigger cost a second API write and a second watch event, and Kopf's change machinery for every
CR annotated. At 1,000 CRs annotated at once that was 1,000 writes beside the 1,000 status
patches, and most of what that cycle added to the operator's memory (bench/scale.py, triggered).
So these annotations are left out of Kopf's essence (kube/passes.py) and this memory of the last
value seen per CR decides from every watch event: a value that differs from the one seen before
is a request (kube/passes.py folds the requests that arrive while a pass of the CR runs into one
more pass, on the latest value). Removing an annotation asks for nothing, except release-hold:
removing it releases a hold as changing it does (holds.released).

What only Kopf's stored copy knew is whether a value first seen by this process (its first listing
after a start, or a CR moved into its shard) was answered by the process before. The status tells,
by `status.lastScanTime` where the value carries a time: a requested-at that reads as a recent
time (pipeline/freshness.py: within its 15-minute horizon) at or before it, a webhook trigger
received at or before it, or an upstream change stamped at or before it, was followed by a scan;
and by `status.hold` for release-hold: a hold whose recorded release value differs from the
annotation's is waiting to be released. Such an answered value, and any value on a CR that has
never been scanned (its create or resume pass covers it), is not a request; any other first
value is. So a request made while the operator was stopped, or during its start, is never lost,
at the price of one pass after a start for a CR whose requested-at is not a recent time (or is
later than its last recorded scan: a quiet pass refreshes lastScanTime only hourly): a pass that
finds nothing to do writes nothing. Pure: no I/O; the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from imagepromoter import holds
from imagepromoter.pipeline import freshness
from imagepromoter.webhooks import model as webhook_model

# whether a value first seen by this process may still wait for its pass: (value, status, now)
Unanswered = Callable[[str, Mapping[str, Any], datetime], bool]


def requested_at(value: str, status: Mapping[str, Any], now: datetime) -> bool:
    """requested-at: unanswered unless it is a recent time that a recorded scan followed."""
    scanned = freshness.parse_time(status.get("lastScanTime"))
    if scanned is None:
        return False  # never scanned: the create or resume pass is its pass
    when = freshness.parse_time(value)
    if when is None or when < now - freshness.REQUEST_HORIZON:
        return True  # not a time (nor is "1", 1970): nothing says a pass answered it
    return min(when, now) > scanned  # a clock ahead of ours counts as now, as freshness reads it


def webhook_trigger(value: str, status: Mapping[str, Any], now: datetime) -> bool:
    """`imagepromoter.dev/trigger`: unanswered when received after the CR's last recorded scan."""
    scanned = freshness.parse_time(status.get("lastScanTime"))
    trigger = webhook_model.decode(value)
    if scanned is None or trigger is None:
        return False  # never scanned (its first pass is coming), or not a trigger at all
    received = freshness.parse_time(trigger.received_at)
    return received is None or min(received, now) > scanned


def upstream_changed(value: str, status: Mapping[str, Any], now: datetime) -> bool:
    """`imagepromoter.dev/upstream-changed` ("<upstream> <epoch seconds>", kube/stages.py):
    unanswered when stamped after the CR's last recorded scan (unreadable: a request)."""
    scanned = freshness.parse_time(status.get("lastScanTime"))
    if scanned is None:
        return False  # never scanned: its first pass reads the upstream anyway
    stamped = freshness.parse_time(value.rpartition(" ")[2])
    return stamped is None or min(stamped, now) > scanned


def release_hold(value: str, status: Mapping[str, Any], now: datetime) -> bool:
    """`imagepromoter.dev/release-hold`: unanswered when the CR holds and this value (or its
    absence, "") differs from the one the hold began with."""
    return holds.released(status, {holds.RELEASE_ANNOTATION: value})


def unobserved_generation(body: Mapping[str, Any]) -> str | None:
    """The CR's `metadata.generation` (as text) while its status has not observed it, else None.

    What Kopf's create, spec-update and resume handlers found by diffing is this one fact: the
    spec holds a generation no pass has read yet (a new CR has no status; a spec change bumps the
    generation, and nothing else does). Read from the watch like the annotations, it costs no
    write of Kopf's last-handled configuration (1,000 object PATCHes when 1,000 CRs appear).
    """
    meta: Mapping[str, Any] = body.get("metadata") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    generation = meta.get("generation")
    if generation is None or status.get("observedGeneration") == generation:
        return None
    return str(generation)


def generation_owed(value: str, status: Mapping[str, Any], now: datetime) -> bool:
    """An unobserved generation first seen (a start's listing, a CR moved into the shard) is
    owed its pass: `unobserved_generation` gives a value only while no pass has read it."""
    return True


class Requests:
    """The last value of one annotation seen for each CR (by uid), and which new value is a
    request (`unanswered` judges a value first seen by this process; `removal_asks`: removing
    the annotation is a request too, with the value "")."""

    def __init__(
        self, unanswered: Unanswered = requested_at, *, removal_asks: bool = False
    ) -> None:
        self._unanswered = unanswered
        self._removal_asks = removal_asks
        self._seen: dict[str, str | None] = {}
        self._answered: dict[str, str] = {}

    def seen(
        self, uid: str, value: object, *, status: Mapping[str, Any], now: datetime
    ) -> str | None:
        """The value to act on, if this watch event carries a new request; else None."""
        text = value if isinstance(value, str) and value else None
        known = uid in self._seen
        previous = self._seen.get(uid)
        self._seen[uid] = text
        if known and text == previous:
            return None
        if text is None and not self._removal_asks:
            return None
        asked = text or ""
        if known:
            return asked
        return asked if self._unanswered(asked, status, now) else None

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
