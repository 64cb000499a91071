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

The memory is in-process. After a restart it is empty, and `is_due` falls back to the persisted
status (`observedGeneration`, `lastScanTime`), so a restart does not rescan everything at once.

`status.is_due` (pure) reads the persisted status; `Schedule` only keeps a small dict keyed by the
CR's uid. The first backoff step is configurable, so the end-to-end tests can retry in a fraction
of a second. This timer is the only retry mechanism (see kube/retrying.py for why not Kopf's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imagepromoter import errors, spec
from imagepromoter import status as status_module
from imagepromoter.kube import retrying


def ready_reason(status: Mapping[str, Any]) -> str | None:
    """The reason of the Ready condition in a status, if any."""
    condition = status_module.ready_condition(status)
    reason = condition.get("reason") if condition else None
    return str(reason) if reason is not None else None


def interval_of(spec_dict: Mapping[str, Any]) -> timedelta:
    """The spec's interval, or the default when it is absent or malformed (the pass reports it)."""
    text = spec_dict.get("interval")
    parsed = spec.parse_interval(text) if isinstance(text, str) else None
    return parsed if parsed is not None and parsed > timedelta(0) else spec.DEFAULT_INTERVAL


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
        return status_module.is_due(status, interval_of(spec_dict), now)

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
        self._entries[key] = Entry(
            generation=generation,
            reason=reason,
            next_at=now + delay if delay is not None else None,
            failures=failures,
        )
        return delay

    def retry(
        self, key: str, *, generation: int | None, interval: timedelta, now: datetime
    ) -> timedelta:
        """A pass whose status could not be written: due again after a backoff step."""
        previous = self._entries.get(key)
        failures = (previous.failures if previous is not None else 0) + 1
        delay = min(self._base_backoff * (1 << min(failures - 1, 16)), interval)
        reason = previous.reason if previous is not None else ""
        self._entries[key] = Entry(generation, reason, now + delay, failures)
        return delay

    def forget(self, key: str) -> None:
        """Drop a deleted CR."""
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
