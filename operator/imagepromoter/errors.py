"""The error tree: every reason the Ready condition can show is one class.

Adapters and the pure core raise these; `reconcile` turns them into a status condition
and an event, and the operator decides from `permanent` whether to retry.

    PromotionError (reason, permanent)
     ├── InvalidSpec      (ValueError, permanent)  the CR cannot work as written; names the field
     ├── NoMatchingTag    (permanent until the registry changes; not retried faster than interval)
     ├── TargetError      (ValueError, permanent)  a target file/key/regex cannot be edited
     ├── RegistryError    (temporary)  the registry was unreachable, slow, or answered nonsense
     │    └── AuthError   (temporary)  the registry refused the credentials (or their absence)
     ├── GitError         (temporary)  the git server was unreachable or refused us
     └── PushRejected     (temporary)  the push lost the race too many times

Messages are for the user: they say what happened and what to do, and never carry a secret.
"""

from __future__ import annotations

from typing import ClassVar


class PromotionError(Exception):
    """Base of every error that becomes a Ready=False condition."""

    reason: ClassVar[str] = "Error"
    permanent: ClassVar[bool] = False

    @property
    def message(self) -> str:
        return str(self)


class InvalidSpec(PromotionError, ValueError):
    """The spec cannot work as written; `field` names where (e.g. `spec.tagRegex`)."""

    reason = "InvalidSpec"
    permanent = True

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NoMatchingTag(PromotionError):
    """No tag in the registry qualifies under tagRegex, excludeTags, policy and range."""

    reason = "NoMatchingTag"
    permanent = False


class TargetError(PromotionError, ValueError):
    """A target file, key or regex cannot be edited as asked."""

    reason = "TargetError"
    permanent = True


class RegistryError(PromotionError):
    """The registry could not be read (network, 5xx, malformed answers, limits)."""

    reason = "RegistryError"


class AuthError(RegistryError):
    """The registry refused us: missing, wrong or insufficient credentials."""

    reason = "AuthError"


class GitError(PromotionError):
    """The git server could not be read or written (network, auth, not found)."""

    reason = "GitError"


class PushRejected(PromotionError):
    """The push kept losing to other writers (or a hook declined it)."""

    reason = "PushRejected"


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
