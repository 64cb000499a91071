"""The `status` block, computed from the previous status and what one reconcile pass found.

Pure: the operator writes what `compute` returns (only what differs, see below), and
`imagepromoter promote --output json` prints the same thing, so the two can never disagree.

The rules of `compute`:
- A field the outcome leaves None keeps its previous value; a field never learned is absent
  (never null: a null in a merge patch deletes, and the CRD schema types every field), so the
  first pass of a CR with a bad spec shows only observedGeneration and conditions.
- `lastCommit` is the sha of the commit that made the targets hold `promotedTag`. A pass that
  committed sets it; a pass that found the targets already holding a *different* promotedTag
  than before (someone else committed it, or the first pass found it in place) sets '', since no
  commit was needed; a pass that found the same promotedTag keeps the sha that promoted it.
- There is one Ready condition, first in `conditions`: status 'True' for Promoted, UpToDate,
  Pinned and Waiting (the targets hold what may be promoted; docs/holds.md), 'False' otherwise
  (Suspended too: the targets are not being kept current). Its `lastTransitionTime` changes only
  when that status value changes, not when only the reason or message does (the Kubernetes
  convention). Conditions of other types are kept as they were.
- Times are RFC 3339 UTC with whole seconds (`2026-11-29T10:00:00Z`); naive datetimes are taken
  to be UTC. Every value is a str, int, list or dict, so the block is JSON as it stands.
- `observedGeneration` (top level and on the condition) is the generation this pass read.
- `trigger` (the webhook event whose payload fields the promoted tag was written with) is kept
  while `outcome.trigger` is None, replaced by a non-empty one, and removed by an empty one.
- A Promoted (or Pinned) Ready condition is kept as it was, message and all, by a later pass that
  found the targets still holding that promotedTag and committed nothing (UpToDate, or Pinned
  again) for the same generation: the reason tells what last changed the condition, so the
  pass after a promotion is not a status change.

What is worth writing (the operator writes only a status that differs; docs/operator.md): `settle`
keeps the previous `lastScanTime` when nothing else changed, unless it is older than the refresh
period (`REFRESH`, 1 h, or the CR's interval if longer). So an idle cycle writes nothing, LAST
SCAN is at most that stale, and a restart finds such CRs due and rescans them (schedule.py). Then
`changes` is the RFC 7386 merge patch from the previous status to the settled one: `{}` when
nothing differs, removed keys nulled, mappings diffed key by key, lists replaced whole.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from imagepromoter import sanitise

READY_REASONS = frozenset({"Promoted", "UpToDate", "Pinned", "Waiting"})
READY = "Ready"
_GENERATION = "observedGeneration"
_MAX_MESSAGE = 4096
GATE_FIELDS = ("written", "hold", "firstSeen", "waitingUntil", "promotedSince")
_REASON_SYNTAX = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?\Z")
REFRESH = timedelta(hours=1)  # lastScanTime alone is rewritten at most this often (see `settle`)
_SCAN = "lastScanTime"
_ABSENT = object()
_KEPT_READY = frozenset({"Promoted", "Pinned"})  # reasons a later quiet pass does not replace


@dataclass(frozen=True)
class Outcome:
    """What one pass found. `None` in a field means "not learned this pass: keep the previous"."""

    reason: str  # one of errors.REASONS
    message: str
    latest_tag: str | None = None
    latest_digest: str | None = None
    promoted_tag: str | None = None
    commit: str | None = None  # sha of a new commit; "" when targets already held the tag
    tags_scanned: int | None = None
    scan_time: datetime | None = None
    promotion_time: datetime | None = None
    trigger: Mapping[str, Any] | None = None  # status.trigger; {} removes it (see module doc)
    # holds/gates/stages fields (GATE_FIELDS): a key set to a value writes it, set to None
    # removes it, absent keeps the previous value
    gates: Mapping[str, Any] | None = None

    @property
    def ready(self) -> bool:
        return self.reason in READY_REASONS


def compute(
    previous: Mapping[str, Any], outcome: Outcome, *, generation: int | None, now: datetime
) -> dict[str, Any]:
    """The new `status` block: the outcome over the previous status, with one Ready condition."""
    _check_reason(outcome.reason)
    observed = generation if generation is not None else _int_or_none(previous, _GENERATION)
    learned: dict[str, Any] = {
        "latestTag": outcome.latest_tag,
        "latestDigest": outcome.latest_digest,
        "promotedTag": outcome.promoted_tag,
        "lastCommit": _last_commit(previous, outcome),
        "lastScanTime": _timestamp(outcome.scan_time) if outcome.scan_time else None,
        "lastPromotionTime": (
            _timestamp(outcome.promotion_time) if outcome.promotion_time else None
        ),
        "tagsScanned": outcome.tags_scanned,
    }
    status: dict[str, Any] = {}
    if observed is not None:
        status[_GENERATION] = observed
    for key, value in learned.items():
        kept = value if value is not None else previous.get(key)
        if kept is not None:
            status[key] = kept
    trigger = previous.get("trigger") if outcome.trigger is None else outcome.trigger
    if isinstance(trigger, Mapping) and trigger:
        status["trigger"] = dict(trigger)
    for key in GATE_FIELDS:
        gate = (outcome.gates or {}).get(key, previous.get(key))
        if gate is not None:
            status[key] = gate
    status["conditions"] = _conditions(previous, outcome, observed, now)
    return status


def settle(
    previous: Mapping[str, Any], new: Mapping[str, Any], *, interval: timedelta, now: datetime
) -> dict[str, Any]:
    """`new` as worth writing: the previous lastScanTime when only it changed and is still fresh."""
    settled = dict(new)
    kept = previous.get(_SCAN)
    if _SCAN not in new or not isinstance(kept, str):
        return settled
    if _without(previous, _SCAN) != _without(new, _SCAN):
        return settled  # something else changes: the write happens anyway, with the scan time
    last, now = parse_timestamp(kept), _utc(now)
    if last is None or now < last or now - last >= max(REFRESH, interval):
        return settled
    settled[_SCAN] = kept
    return settled


def changes(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch (RFC 7386) that turns `previous` into `new`; {} when they are equal."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = previous.get(key, _ABSENT)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = changes(before, value)
            if inner:
                patch[key] = inner
        elif before is _ABSENT or not _same(before, value):
            patch[key] = copy.deepcopy(value)
    for key in previous:
        if key not in new:
            patch[key] = None
    return patch


def ready_condition(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Ready condition of a status block, or None when there is none yet."""
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return None
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == READY:
            return dict(condition)
    return None


def is_due(status: Mapping[str, Any], interval: timedelta, now: datetime) -> bool:
    """Whether a poll is due: no scan yet, `interval` has passed, `waitingUntil` has come, or the
    clock went backwards."""
    last = parse_timestamp(status.get("lastScanTime"))
    if last is None:
        return True
    now = _utc(now)
    until = parse_timestamp(status.get("waitingUntil"))  # minAge/from.after: due when it moves
    if until is not None and last < until <= now:
        return True
    return now < last or now - last >= interval


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as Kubernetes writes times: 2026-11-29T10:00:00Z."""
    return _timestamp(moment)


def parse_timestamp(value: object) -> datetime | None:
    """A status timestamp back into an aware UTC datetime; None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return _utc(parsed)


def _check_reason(reason: str) -> None:
    if not _REASON_SYNTAX.match(reason):
        raise ValueError(f"condition reason {reason!r} is not CamelCase (see errors.REASONS)")


def _last_commit(previous: Mapping[str, Any], outcome: Outcome) -> str | None:
    if outcome.commit is not None:
        return outcome.commit
    if outcome.promoted_tag is not None and outcome.promoted_tag != previous.get("promotedTag"):
        return ""  # the targets came to hold this tag without a commit of ours
    return None


def _conditions(
    previous: Mapping[str, Any], outcome: Outcome, observed: int | None, now: datetime
) -> list[dict[str, Any]]:
    value = "True" if outcome.ready else "False"
    before = ready_condition(previous)
    if before is not None and _still_promoted(before, previous, outcome, observed):
        return [dict(c) for c in previous.get("conditions") or [] if isinstance(c, Mapping)]
    since = before.get("lastTransitionTime") if before else None
    if before is None or before.get("status") != value or not isinstance(since, str):
        since = _timestamp(now)
    message = sanitise.one_line(outcome.message, _MAX_MESSAGE)  # no control chars; cut with …
    ready: dict[str, Any] = {
        "type": READY,
        "status": value,
        "reason": outcome.reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if observed is not None:
        ready[_GENERATION] = observed
    others = [
        dict(condition)
        for condition in previous.get("conditions") or []
        if isinstance(condition, Mapping) and condition.get("type") != READY
    ]
    return [ready, *others]


def _still_promoted(
    before: Mapping[str, Any],
    previous: Mapping[str, Any],
    outcome: Outcome,
    observed: int | None,
) -> bool:
    """Whether a quiet pass keeps the previous Promoted/Pinned condition (see the module doc)."""
    reason = before.get("reason")
    return (
        before.get("status") == "True"
        and reason in _KEPT_READY
        and outcome.reason in ("UpToDate", reason)
        and not outcome.commit
        and outcome.promoted_tag is not None
        and outcome.promoted_tag == previous.get("promotedTag")
        and observed is not None
        and before.get(_GENERATION) == observed
        and isinstance(before.get("lastTransitionTime"), str)
    )


def _without(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _same(a: object, b: object) -> bool:
    """JSON equality (so True is not 1, as it would be for ==)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _int_or_none(mapping: Mapping[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _timestamp(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
