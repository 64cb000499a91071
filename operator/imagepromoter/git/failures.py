"""Dulwich and network exceptions turned into GitErrors a user can act on.

Dulwich reports the same situations in many shapes (HTTPUnauthorized, NotGitRepository, a
GitProtocolError wrapping a urllib3 error, a HangupException carrying ssh's stderr, a bare
OSError). `translate` maps each to one sentence that says what happened at which (redacted) URL
and what to check next. Library text is only ever included after `urls.redact_text`. When the
operation's watchdog (git/deadlines.py) ended it at the pass deadline, whatever Dulwich raised
then is reported as that: the phase, the remote, and the deadline.
"""

from __future__ import annotations

import socket

from dulwich import client as dulwich_client
from dulwich import errors as dulwich_errors

from imagepromoter import errors
from imagepromoter.git import deadlines, urls

_SSH_HINTS = (
    ("host key verification failed", "the server's host key is not in known_hosts (or changed)"),
    ("permission denied", "the server refused the SSH key"),
    ("could not resolve hostname", "the host name does not resolve"),
    ("connection refused", "nothing listens at that host and port"),
    ("connection timed out", "the connection timed out"),
    ("does not appear to be a git repository", "there is no repository at that path"),
    ("not found", "there is no repository at that path"),
)


def translate(exc: BaseException, display: str, *, secret_name: str | None) -> errors.GitError:
    """One actionable GitError for a failure talking to the remote at `display`."""
    secret = f"Secret {secret_name}" if secret_name else "spec.git.secretRef"
    watchdog = deadlines.current()
    if watchdog is not None and watchdog.expired:
        return deadline_error(watchdog, display)
    if isinstance(exc, dulwich_client.HTTPUnauthorized):
        if secret_name:
            return errors.GitError(
                f"{display} refused the credentials in Secret {secret_name} (HTTP 401): check its "
                "`username` and `password` (token) and that the token may write to the repository"
            )
        return errors.GitError(
            f"{display} needs credentials (HTTP 401): set spec.git.secretRef to a Secret with "
            "`username` and `password` (a token)"
        )
    if isinstance(exc, dulwich_errors.NotGitRepository):
        return errors.GitError(
            f"no git repository at {display} (HTTP 404): check spec.git.url (some hosts also "
            f"answer 404 when {secret} may not read a private repository)"
        )
    if isinstance(exc, dulwich_errors.HangupException):
        stderr = urls.redact_text(str(exc)).strip()
        hint = next((h for key, h in _SSH_HINTS if key in stderr.lower()), None)
        detail = f"{hint}; " if hint else ""
        return errors.GitError(
            f"{display} hung up: {detail}server said: {stderr[:300] or '(nothing)'}; check "
            f"spec.git.url and the `identity` and `known_hosts` in {secret}"
        )
    if _is_timeout(exc):
        return errors.GitError(
            f"{display} did not answer in time (timeout); the server may be down or slow, "
            "will retry"
        )
    if _is_unreachable(exc):
        return errors.GitError(
            f"cannot reach {display} ({_reason(exc)}); check spec.git.url and network access "
            "from the operator, will retry"
        )
    text = urls.redact_text(str(exc))[:300]
    return errors.GitError(
        f"talking to {display} failed: {type(exc).__name__}: {text or '(no detail)'}; will retry"
    )


def deadline_error(watchdog: deadlines.Watchdog, display: str) -> errors.GitError:
    """The GitError of an operation the watchdog ended at the pass deadline."""
    return errors.GitError(
        f"the pass deadline ran out during git {watchdog.phase} at {display}; the git server is "
        "slow or not answering, will retry (imagepromoter run --pass-deadline sets the deadline)"
    )


def raise_if_expired(display: str) -> None:
    """After an operation returned: if the watchdog ended it, its result is not to be trusted."""
    watchdog = deadlines.current()
    if watchdog is not None and watchdog.expired:
        raise deadline_error(watchdog, display)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        reason = getattr(current, "reason", None)
        current = current.__cause__ or current.__context__
        if current is None and isinstance(reason, BaseException):
            current = reason
    return seen


def _is_timeout(exc: BaseException) -> bool:
    names = {"ReadTimeoutError", "ConnectTimeoutError", "TimeoutError", "timeout"}
    return (
        any(
            isinstance(e, TimeoutError | socket.timeout) or type(e).__name__ in names
            for e in _chain(exc)
        )
        or "timed out" in str(exc).lower()
    )


def _is_unreachable(exc: BaseException) -> bool:
    names = {"NewConnectionError", "MaxRetryError", "NameResolutionError", "ProtocolError"}
    return any(
        isinstance(e, ConnectionError | socket.gaierror) or type(e).__name__ in names
        for e in _chain(exc)
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "resolution" in text or "nodename" in text:
        return "the host name does not resolve"
    if "reset" in text:
        return "connection reset"
    return "network error"
