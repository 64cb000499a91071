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

`served_since` tells a manual trigger that the CR's last pass already used a listing requested
after it (a fan-out from another CR's pass got there first), so it needs no pass of its own.

`poke` makes a CR due at its next tick whatever its interval: a scan of its image found a new
tag (scans.SharedScans.on_change), and every CR of that image should act on it now, from that
scan. A CR waiting for a spec change (InvalidSpec) stays waiting; a backoff is cut short, since
the new scan may be what it was waiting for. The poke names the scan (`scan`: its request's
start): `poked` tells the next pass to take nothing older, and the pass that used it clears the
poke. A pass already running when the poke came may have used an older listing (`record(seen=)`:
the start of the one it used); then the CR stays due for one more pass, from the new scan.

`grid` (the operator's tick) rounds each next pass up to a slot of the clock, and the operator
records a pass from the instant it began: CRs that passed together, or a few seconds apart, are
due together and start as one wave (pipeline/waves.py).

The memory is in-process. After a restart it is empty, and `is_due` falls back to the persisted
status (`observedGeneration`, `lastScanTime`), so a restart does not rescan everything at once.

`status.is_due` (pure) reads the persisted status; `Schedule` only keeps a small dict keyed by the
CR's uid. The first backoff step is configurable, so the end-to-end tests can retry in a fraction
of a second. This timer is the only retry mechanism (see kube/retrying.py for why not Kopf's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from imagepromoter import errors
from imagepromoter import status as status_module
from imagepromoter.kube import retrying
from imagepromoter.pipeline import index, waves


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
    seen: float | None = None  # when the tag listing the pass used was requested


class Schedule:
    """Per-CR timing in memory; see the module docstring for the rules."""

    def __init__(
        self, *, base_backoff: timedelta = timedelta(seconds=10), grid: float | None = None
    ) -> None:
        self._entries: dict[str, Entry] = {}
        self._grid = grid  # seconds: next passes rounded up to it (pipeline/waves.align)
        self._poked: dict[str, float] = {}  # uid -> the newest scan it was poked for (-inf: any)
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

    def poke(self, key: str, now: datetime, scan: float | None = None) -> None:
        """Make a CR due now (at its next tick), unless only a spec change can make it due.

        `scan` is when the request of the scan that found the change started (None: unknown).
        """
        asked = -math.inf if scan is None else scan
        self._poked[key] = max(asked, self._poked.get(key, -math.inf))
        entry = self._entries.get(key)
        if entry is not None and entry.next_at is not None and entry.next_at > now:
            self._entries[key] = replace(entry, next_at=now)

    def poked(self, key: str) -> float | None:
        """The start of the scan a pending poke asks the CR's next pass to use (None: any)."""
        asked = self._poked.get(key)
        return asked if asked is not None and asked > -math.inf else None

    def record(
        self,
        key: str,
        *,
        generation: int | None,
        reason: str,
        interval: timedelta,
        now: datetime,
        seen: float | None = None,
    ) -> timedelta | None:
        """Remember a finished pass; return how long until the next one (None: a spec change).

        `seen` is when the tag listing the pass used was requested (None: it used none).
        """
        previous = self._entries.get(key)
        failures = 0
        if retrying.counts_as_failure(reason):
            failures = (previous.failures if previous is not None else 0) + 1
        delay = retrying.delay(
            reason, interval=interval, failures=failures, first=self._base_backoff
        )
        poked = self._poked.pop(key, None)
        if delay is not None and poked is not None and seen is not None and seen < poked:
            delay = timedelta(0)  # poked during this pass for a scan newer than the one it used
            self._poked[key] = poked  # the next pass asks for that scan
        self._entries[key] = Entry(
            generation=generation,
            reason=reason,
            next_at=waves.align(now + delay, self._grid) if delay is not None else None,
            failures=failures,
            seen=seen,
        )
        return delay

    def served_since(self, key: str, since: float, *, generation: int | None) -> bool:
        """Whether the CR's last pass, of this generation, used a listing requested at or
        after `since` (a manual trigger made before it is already answered)."""
        entry = self._entries.get(key)
        return (
            entry is not None
            and entry.generation == generation
            and entry.seen is not None
            and entry.seen >= since
        )

    def retry(
        self, key: str, *, generation: int | None, interval: timedelta, now: datetime
    ) -> timedelta:
        """A pass whose status could not be written: due again after a backoff step."""
        previous = self._entries.get(key)
        failures = (previous.failures if previous is not None else 0) + 1
        delay = min(self._base_backoff * (1 << min(failures - 1, 16)), interval)
        reason = previous.reason if previous is not None else ""
        next_at = waves.align(now + delay, self._grid)
        self._entries[key] = Entry(generation, reason, next_at, failures)
        return delay

    def next_at(self, key: str) -> datetime | None:
        """When the CR is next due by this schedule (None: unknown here, or a spec change)."""
        entry = self._entries.get(key)
        return entry.next_at if entry is not None else None

    def forget(self, key: str) -> None:
        """Drop a deleted CR."""
        self._entries.pop(key, None)
        self._poked.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
