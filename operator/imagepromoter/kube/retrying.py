"""The one place a pass's outcome becomes the time of the next pass.

Each error class carries its policy as one attribute, `errors.<Class>.retry` (read here through
`errors.retry_of(reason)`, since what survives a pass and a restart is the condition's reason):

    SPEC_CHANGE (InvalidSpec)                       -> no next pass until the spec changes
    INTERVAL    (NoMatchingTag, TargetError, Ready) -> one interval later
    BACKOFF     (RegistryError, AuthError, GitError,
                 PushRejected)                      -> `first` (10 s), doubling per consecutive
                                                       failure, never later than the interval

Only our per-CR timer (kube/schedule.py) acts on this. The handlers never raise
kopf.TemporaryError or kopf.PermanentError after a failed pass: Kopf would re-run the handler on
its own backoff while the timer also retried, giving two passes per failure. The condition and the
event already tell the user; Kopf sees a handler that finished.
"""

from __future__ import annotations

from datetime import timedelta

from imagepromoter import errors

DEFAULT_FIRST = timedelta(seconds=10)
_MAX_DOUBLINGS = 16


def policy(reason: str) -> errors.Retry:
    """The retry policy of a Ready condition's reason."""
    return errors.retry_of(reason)


def delay(
    reason: str, *, interval: timedelta, failures: int, first: timedelta = DEFAULT_FIRST
) -> timedelta | None:
    """How long after a pass ending with `reason` the next one is due; None = on a spec change.

    `failures` counts consecutive BACKOFF outcomes including this one (1 for the first).
    """
    rule = policy(reason)
    if rule is errors.Retry.SPEC_CHANGE:
        return None
    if rule is errors.Retry.INTERVAL:
        return interval
    step = first * (1 << min(max(failures, 1) - 1, _MAX_DOUBLINGS))
    return min(step, interval)


def counts_as_failure(reason: str) -> bool:
    """Whether an outcome extends the backoff streak (only BACKOFF outcomes do)."""
    return policy(reason) is errors.Retry.BACKOFF
