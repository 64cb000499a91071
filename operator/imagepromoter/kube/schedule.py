"""When each ImagePromotion is next due: per-CR intervals under one fixed Kopf timer.

Kopf fixes a timer's interval in its decorator, but every CR has its own `spec.interval`. So the
operator runs one short fixed timer per CR (a "tick", 10s by default) and asks `Schedule.due` on
every tick; a tick that is not due returns at once without touching the API.

What decides "due", in order:
- a changed spec (`metadata.generation` differs from what the last pass saw) is due at once;
- `suspend: true` is due only until the status shows Suspended for this generation;
- otherwise `retrying.delay` decides from the reason (the one place the error classes' `retry`
  policy is read): InvalidSpec never until the spec changes; RegistryError, AuthError, GitError,
  PushRejected back off from `base_backoff`, doubling, capped at the interval; everything else
  (Promoted, UpToDate, NoMatchingTag, TargetError) one interval later.

`poke` makes a CR due at its next tick whatever its interval: a scan of its image found a new
tag (scans.SharedScans.on_change), and every CR of that image should act on it now, from that
scan. A CR waiting for a spec change (InvalidSpec) stays waiting; a backoff is cut short, since
the new scan may be what it was waiting for. The CR's next pass clears the poke.

The memory is in-process. After a restart it is empty, and `is_due` falls back to the persisted
status (`observedGeneration`, `lastScanTime`), so a restart does not rescan everything at once.

`status.is_due` (pure) reads the persisted status; `Schedule` only keeps a small dict keyed by the
CR's uid. The first backoff step is configurable, so the end-to-end tests can retry in a fraction
of a second. This timer is the only retry mechanism (see kube/retrying.py for why not Kopf's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from imagepromoter import errors
from imagepromoter import status as status_module
from imagepromoter.kube import retrying
from imagepromoter.pipeline import index


def ready_reason(status: Mapping[str, Any]) -> str | None:
    """The reason of the Ready condition in a status, if any."""
    condition = status_module.ready_condition(status)
    reason = condition.get("reason") if condition else None
    return str(reason) if reason is not None else None


interval_of = index.interval_of  # the spec's interval, or the default (one rule for both)


@dataclass(frozen=True)
class Entry:
    """What the last pass on one CR left behind."""

    generation: int | None
    reason: str
    next_at: datetime | None  # None: only a spec change makes it due
    failures: int = 0


class Schedule:
    """Per-CR timing in memory; see the module docstring for the rules."""

    def __init__(self, *, base_backoff: timedelta = timedelta(seconds=10)) -> None:
        self._entries: dict[str, Entry] = {}
        self._poked: set[str] = set()
        self._base_backoff = base_backoff

    def due(
        self,
        key: str,
        *,
        spec_dict: Mapping[str, Any],
        status: Mapping[str, Any],
        generation: int | None,
        now: datetime,
    ) -> bool:
        """Whether the timer should run a pass for this CR now."""
        if spec_dict.get("suspend") is True:
            return not (
                ready_reason(status) == "Suspended"
                and status.get("observedGeneration") == generation
            )
        entry = self._entries.get(key)
        if entry is not None and entry.generation == generation:
            return entry.next_at is not None and now >= entry.next_at
        if status.get("observedGeneration") != generation:
            return True
        reason = ready_reason(status)
        if reason is not None and retrying.policy(reason) is errors.Retry.SPEC_CHANGE:
            return False
        if key in self._poked:
            return True
        return status_module.is_due(status, interval_of(spec_dict), now)

    def poke(self, key: str, now: datetime) -> None:
        """Make a CR due now (at its next tick), unless only a spec change can make it due."""
        entry = self._entries.get(key)
        if entry is None:
            self._poked.add(key)  # no pass since the start: `due` reads the persisted status
        elif entry.next_at is not None and entry.next_at > now:
            self._entries[key] = replace(entry, next_at=now)

    def record(
        self,
        key: str,
        *,
        generation: int | None,
        reason: str,
        interval: timedelta,
        now: datetime,
    ) -> timedelta | None:
        """Remember a finished pass; return how long until the next one (None: a spec change)."""
        previous = self._entries.get(key)
        failures = 0
        if retrying.counts_as_failure(reason):
            failures = (previous.failures if previous is not None else 0) + 1
        delay = retrying.delay(
            reason, interval=interval, failures=failures, first=self._base_backoff
        )
        self._poked.discard(key)
        self._entries[key] = Entry(
            generation=generation,
            reason=reason,
            next_at=now + delay if delay is not None else None,
            failures=failures,
        )
        return delay

    def forget(self, key: str) -> None:
        """Drop a deleted CR."""
        self._entries.pop(key, None)
        self._poked.discard(key)

    def __len__(self) -> int:
        return len(self._entries)
