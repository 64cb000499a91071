"""Kubernetes Events for promotions and failures, without flooding.

Every promotion posts a Normal `Promoted` event and every failure a Warning whose reason is the
Ready condition's reason. A CR that fails the same way every minute would otherwise create an
Event object per minute (Kopf names each one with `generateName`, so the API server cannot fold
them into one with a count). So the same (object, type, reason, message) is posted at most once
per `window`; a different message, or the same one after the window, is posted again.

Posting goes through Kopf (`kopf.event`), which queues the event and sends it in the background:
a handler never waits on it. The memory is bounded per object, pruned as it goes and dropped
when a CR is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import kopf

from imagepromoter import sanitise
from imagepromoter import status as status_module

MAX_MESSAGE = 1024  # the API server truncates longer event messages anyway
DEFAULT_WINDOW = timedelta(hours=1)
MAX_REMEMBERED = 16  # events remembered per object (a flapping failure has a few messages)

Post = Callable[[Mapping[str, Any], str, str, str], None]


def post_with_kopf(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Queue an event through Kopf's poster (it must run inside the operator)."""
    kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]


class Events:
    """De-duplicating event reporter for pass outcomes.

    The memory is kept per object, at most MAX_REMEMBERED events each (the oldest go first), and
    pruned as it goes: an object's own expired entries when it posts, everyone's once per window.
    So posting costs the same at a thousand CRs as at one, and the memory does not grow with the
    number of promotions (each has its own message, so an hour of them would otherwise be kept).
    """

    def __init__(
        self,
        *,
        post: Post = post_with_kopf,
        window: timedelta = DEFAULT_WINDOW,
        now: Callable[[], datetime],
    ) -> None:
        self._post = post
        self._window = window
        self._now = now
        self._posted: dict[str, dict[tuple[str, str, str], datetime]] = {}  # uid -> event -> at
        self._swept: datetime | None = None

    def report(self, body: Mapping[str, Any], outcome: status_module.Outcome) -> bool:
        """Post the event for a pass outcome, if it is worth one; True when posted."""
        if outcome.reason in ("Promoted", "Pinned") and outcome.commit:
            return self.post(body, "Normal", "Promoted", outcome.message)
        if not outcome.ready and outcome.reason != "Suspended":
            return self.post(body, "Warning", outcome.reason, outcome.message)
        return False

    def post(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> bool:
        """Post unless the same event for the same object was posted within the window."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        message = sanitise.one_line(message, MAX_MESSAGE)  # no control characters; cut with …
        now = self._now()
        self._sweep(now)
        mine = self._posted.setdefault(uid, {})
        self._prune(mine, now)
        key = (type_, reason, message)
        if key in mine:
            return False
        mine[key] = now
        while len(mine) > MAX_REMEMBERED:
            del mine[next(iter(mine))]
        self._post(body, type_, reason, message)
        return True

    def forget(self, uid: str) -> None:
        """Drop the memory of a deleted object."""
        self._posted.pop(uid, None)

    def __len__(self) -> int:
        return sum(len(mine) for mine in self._posted.values())

    def _sweep(self, now: datetime) -> None:
        """Prune every object's memory, at most once per window."""
        if self._swept is not None and timedelta(0) <= now - self._swept < self._window:
            return
        self._swept = now
        for uid in list(self._posted):
            mine = self._posted[uid]
            self._prune(mine, now)
            if not mine:
                del self._posted[uid]

    def _prune(self, mine: dict[tuple[str, str, str], datetime], now: datetime) -> None:
        for key in [k for k, at in mine.items() if now - at >= self._window]:
            del mine[key]
