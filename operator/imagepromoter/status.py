"""The `status` block, computed from the previous status and what one reconcile pass found.

Pure: the operator patches what `compute` returns, and `imagepromoter promote --output json`
prints the same thing, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

READY_REASONS = frozenset({"Promoted", "UpToDate"})


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

    @property
    def ready(self) -> bool:
        return self.reason in READY_REASONS
