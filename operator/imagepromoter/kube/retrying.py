"""The one place that maps a failed pass to Kopf's retry semantics.

    InvalidSpec, TargetError        -> kopf.PermanentError   (no retry until the spec changes;
                                       the timer still looks again at the interval for
                                       TargetError, since the repository can change)
    NoMatchingTag                   -> kopf.PermanentError   (the timer looks again at the interval)
    RegistryError, AuthError,
    GitError, PushRejected          -> kopf.TemporaryError(delay=backoff), the backoff capped at
                                       the interval (see schedule.Schedule.record)

The status has already been patched with the condition when this is raised: the exception only
tells Kopf whether to call the handler again soon. Messages are the error's own, which are
secret-free by contract (errors.py).
"""

from __future__ import annotations

from datetime import timedelta

import kopf

from imagepromoter import errors


def is_permanent(error: errors.PromotionError) -> bool:
    """Whether retrying soon cannot help (the spec, the registry or the repository must change)."""
    return error.permanent or isinstance(error, errors.NoMatchingTag)


def handler_error(
    error: errors.PromotionError, *, retry_in: timedelta
) -> kopf.PermanentError | kopf.TemporaryError:
    """The Kopf exception a handler raises after a failed pass."""
    message = f"{error.reason}: {error.message}"
    if is_permanent(error):
        return kopf.PermanentError(message)
    return kopf.TemporaryError(message, delay=max(retry_in.total_seconds(), 0.1))
