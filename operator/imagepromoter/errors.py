"""The error tree: every reason the Ready condition can show is one class.

Adapters and the pure core raise these; `reconcile` turns them into a status condition
and an event. When the next pass comes is one attribute per class, `retry`, and only
`kube/retrying.py` reads it (through `retry_of`):

    PromotionError (reason, retry)
     ├── InvalidSpec      (ValueError, SPEC_CHANGE)  the CR cannot work as written; names the field
     ├── NoMatchingTag    (INTERVAL)  no tag qualifies; the registry must change
     ├── TargetError      (ValueError, INTERVAL)  a target file/key/regex cannot be edited
     ├── RegistryError    (BACKOFF)  the registry was unreachable, slow, or answered nonsense
     │    └── AuthError   (BACKOFF)  the registry refused the credentials (or their absence)
     ├── GitError         (BACKOFF)  the git server was unreachable or refused us
     ├── PushRejected     (BACKOFF)  the push lost the race too many times
     ├── SecretReadError  (BACKOFF)  the Kubernetes API would not give a Secret (RBAC, API down);
     │                               reconcile re-raises it as AuthError or GitError (the phase)
     ├── holds.Held       (INTERVAL)  someone else changed a target value (docs/holds.md)
     └── gates.Waiting    (INTERVAL)  minAge or from.after not reached (gates.next_pass: sooner)

A new class is INTERVAL unless it says BACKOFF: retrying soon must be a decision.

    SPEC_CHANGE  never again until the spec changes (the same spec gives the same error)
    INTERVAL     look again one interval later (the registry or the repository can change)
    BACKOFF      retry soon: 10 s (configurable), doubling per consecutive failure, capped at
                 the interval

`permanent` (kept for callers that only need a yes/no) is derived: anything but BACKOFF.
Messages are for the user: they say what happened and what to do, and never carry a secret.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class Retry(enum.Enum):
    """When the next pass comes after a pass that ended with this error (see the docstring)."""

    SPEC_CHANGE = "spec-change"
    INTERVAL = "interval"
    BACKOFF = "backoff"


class PromotionError(Exception):
    """Base of every error that becomes a Ready=False condition."""

    reason: ClassVar[str] = "Error"
    retry: ClassVar[Retry] = Retry.INTERVAL  # a class that can be retried soon says BACKOFF
    permanent: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.permanent = cls.retry is not Retry.BACKOFF

    @property
    def message(self) -> str:
        return str(self)


class InvalidSpec(PromotionError, ValueError):
    """The spec cannot work as written; `field` names where (e.g. `spec.tagRegex`)."""

    reason = "InvalidSpec"
    retry = Retry.SPEC_CHANGE

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NoMatchingTag(PromotionError):
    """No tag in the registry qualifies under tagRegex, excludeTags, policy and range."""

    reason = "NoMatchingTag"
    retry = Retry.INTERVAL


class TargetError(PromotionError, ValueError):
    """A target file, key or regex cannot be edited as asked."""

    reason = "TargetError"
    retry = Retry.INTERVAL


class RegistryError(PromotionError):
    """The registry could not be read (network, 5xx, malformed answers, limits)."""

    reason = "RegistryError"
    retry = Retry.BACKOFF


class AuthError(RegistryError):
    """The registry refused us: missing, wrong or insufficient credentials."""

    reason = "AuthError"
    retry = Retry.BACKOFF


class GitError(PromotionError):
    """The git server could not be read or written (network, auth, not found)."""

    reason = "GitError"
    retry = Retry.BACKOFF


class PushRejected(PromotionError):
    """The push kept losing to other writers (or a hook declined it)."""

    reason = "PushRejected"
    retry = Retry.BACKOFF


class SecretReadError(PromotionError):
    """The Kubernetes API would not give a Secret for a reason other than its absence.

    Raised by the SecretReader (kube/secrets.py); reconcile re-raises it under the reason of the
    phase that needed the Secret (AuthError for imagePullSecret, GitError for git.secretRef),
    keeping the message (e.g. "grant it `get` on secrets").
    """

    reason = "AuthError"
    retry = Retry.BACKOFF


REASONS: tuple[str, ...] = (
    "Promoted",
    "UpToDate",
    "Suspended",
    "NoMatchingTag",
    "InvalidSpec",
    "RegistryError",
    "AuthError",
    "GitError",
    "TargetError",
    "PushRejected",
    "Held",  # holds.Held
    "Pinned",
    "Waiting",  # gates.Waiting
)

_READY_RETRY: dict[str, Retry] = {"Promoted": Retry.INTERVAL, "UpToDate": Retry.INTERVAL}


def retry_of(reason: str) -> Retry:
    """The retry policy of a Ready reason (a condition read back from a status has no class)."""
    for cls in _classes(PromotionError):
        if cls.reason == reason and cls is not SecretReadError:
            return cls.retry
    return _READY_RETRY.get(reason, Retry.INTERVAL)


def _classes(root: type[PromotionError]) -> list[type[PromotionError]]:
    found = [root]
    for sub in root.__subclasses__():
        found += _classes(sub)
    return found
