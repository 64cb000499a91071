"""Every message the registry adapter shows a user, and the context of one logical request.

The messages are the product: each names the host, the repository and what to do, and one
wording serves every place a failure can happen (a 401 reads the same from the tag list and
from a blob). Keeping them here lets the transport, the auth flow, paging and the lookups stay
about mechanics. `Call` carries what wording needs: the repository, whose credentials, and the
secrets to scrub (the password, its Basic form, every token used, every cached token).

No message carries a secret: `Call.error` replaces each known one before the exception exists,
and httpx exceptions (which hold the request and its headers) are never chained by callers.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from imagepromoter import bounded, errors, redact, sanitise
from imagepromoter.reference import RegistryAccess
from imagepromoter.registry import limits


@dataclass
class Call:
    """One logical request (a tag list, a digest, creation times) and its scan's deadline."""

    access: RegistryAccess
    secrets: list[str]
    deadline: limits.Deadline
    scrub_also: Callable[[], Iterable[str]] = field(default=lambda: ())

    @property
    def host(self) -> str:
        return self.access.image.host

    @property
    def repository(self) -> str:
        return self.access.image.repository

    def error(self, kind: type[errors.RegistryError], message: str) -> errors.RegistryError:
        """`kind(message)` without any secret this call knows (or its encodings), then cut."""
        secrets = [s for s in [*self.secrets, *self.scrub_also()] if s]
        return kind(sanitise.cut(redact.text(message, secrets), 1024))  # redact, then cut

    def whose(self) -> str:
        name = self.access.secret_name
        return f"the credentials in Secret {name}" if name else "the given credentials"


def registry_says(body: bytes) -> str:
    """The registry's own error codes and messages, short, for the end of a message."""
    try:
        doc = bounded.loads_json(body)
    except ValueError:
        return ""
    found: Iterable[Any] = doc.get("errors") or [] if isinstance(doc, dict) else []
    parts = []
    for item in found if isinstance(found, list) else []:
        if isinstance(item, dict):
            text = ": ".join(str(item[k]) for k in ("code", "message") if item.get(k))
            parts.append("".join(c for c in text if c.isprintable())[:4096])  # error() cuts
    return f" (registry says: {'; '.join(parts[:3])})" if parts else ""


# answers from the registry ---------------------------------------------------------------------


def unexpected(
    call: Call, status: int, body: bytes, what: str, *, basic: bool
) -> errors.RegistryError:
    """The error for a non-2xx answer to a registry request about `what`."""
    if status in (401, 403):
        return refused(call, status, body, basic=basic)
    if status == 404:
        return call.error(
            errors.RegistryError,
            f"{call.host} answered 404 for {call.repository} ({what}): the repository "
            f"does not exist; check spec.image{registry_says(body)}",
        )
    return call.error(
        errors.RegistryError,
        f"{call.host} answered {status} for {call.repository} ({what}){registry_says(body)}",
    )


def refused(call: Call, status: int, body: bytes, *, basic: bool) -> errors.RegistryError:
    """401/403 from the registry: what the user should change, by who asked."""
    if call.access.credentials is None:
        advice = (
            "the image is private and no imagePullSecret is set (or it does not exist); "
            "set spec.imagePullSecret to a Secret that can read it, or check spec.image"
        )
    elif status == 401 and basic:
        advice = f"{call.whose()} were refused; check the username and password (or token)"
    else:
        advice = (
            f"{call.whose()} cannot read it; grant that account pull access or check spec.image"
        )
    return call.error(
        errors.AuthError,
        f"{call.host} answered {status} for {call.repository}: {advice}{registry_says(body)}",
    )


def busy(
    call: Call,
    netloc: str,
    status: int,
    attempts: int,
    wait: float | None,
    cap: float,
    limit: str = "",
) -> errors.RegistryError:
    what = "too many requests" if status == 429 else "unavailable"
    if wait is not None and wait > cap:
        tail = f"it asked us to wait {wait:.0f} s; the next scan will try again"
    else:
        tail = f"gave up after {attempts} attempts; the next scan will try again"
    stated = f" ({limit})" if limit else ""
    return call.error(
        errors.RegistryError,
        f"{netloc} answered {status} ({what}) for {call.repository}{stated}: {tail}",
    )


def throttled(call: Call, netloc: str, wait: float, why: str) -> errors.RegistryError:
    said = f" ({why})" if why else ""
    return call.error(
        errors.RegistryError,
        f"{netloc} is rate-limiting us{said} and the next request to it could go only in "
        f"{wait:.3g} s, past the scan deadline of {call.deadline.seconds:g} s for "
        f"{call.repository}; the next scan will try again (fewer CRs on this registry, a longer "
        "spec.interval or credentials with a higher limit ease it)",
    )


def no_challenge(call: Call) -> errors.RegistryError:
    return call.error(
        errors.AuthError,
        f"{call.host} answered 401 for {call.repository} without a usable WWW-Authenticate "
        "challenge; the registry does not speak the OCI auth flow",
    )


def no_tag(call: Call, tag: str) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{call.host} has no tag {tag!r} in {call.repository} (deleted since the scan?); "
        "the next scan will choose again",
    )


def sent(call: Call, what: str) -> errors.RegistryError:
    """A body that is not what the protocol says: "`host` sent `what`"."""
    return call.error(errors.RegistryError, f"{call.host} sent {what}")


def invalid_json(call: Call, what: str) -> errors.RegistryError:
    return sent(
        call,
        f"invalid JSON for {what} of {call.repository}; the registry (or a proxy in front of "
        "it) is misbehaving",
    )


def digest_mismatch(call: Call, what: str, digest: str) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{call.host} sent a {what} for {call.repository} that does not match its digest "
        f"{digest}; the registry or a proxy altered it",
    )


def oversized(call: Call, netloc: str, path: str, limit: int) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{netloc} sent more than {limit} bytes for {call.repository} ({path}); refusing to "
        "read further",
    )


def unknown_encoding(call: Call, netloc: str, encoding: str) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{netloc} sent a body for {call.repository} in Content-Encoding {encoding!r}, which we "
        "did not ask for and cannot decode; fix the proxy in front of the registry",
    )


# paging ------------------------------------------------------------------------------------


def too_many_tags(call: Call, cap: int) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{call.host} lists more than {cap} tags for {call.repository} (the limit per scan); "
        "delete old tags in the registry (the limit is not configurable yet)",
    )


def too_many_pages(call: Call, cap: int, tags: int) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{call.host} paginates the tags of {call.repository} over more than {cap} pages "
        f"(the limit per scan; {tags} tags so far); the registry (or a proxy in front of it) "
        "keeps linking to more pages",
    )


def paging_loop(call: Call, tags: int, why: str) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{call.host} paginates the tags of {call.repository} in a loop ({why} after {tags} "
        "tags); the registry is misbehaving",
    )


def foreign_link(call: Call, host: str) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{call.host} sent a tag-list Link to another host ({host}); refusing to follow it",
    )


def past_deadline(call: Call, progress: str = "") -> errors.RegistryError:
    done = f" ({progress})" if progress else ""
    return call.error(
        errors.RegistryError,
        f"{call.host} could not be scanned for {call.repository} within the scan deadline of "
        f"{call.deadline.seconds:g} s{done}; the registry is too slow or keeps us busy, the "
        "next scan will try again",
    )


# tokens ------------------------------------------------------------------------------------


def no_realm(call: Call) -> errors.RegistryError:
    return call.error(
        errors.AuthError,
        f"{call.host} asked for a Bearer token without a usable realm URL; the registry's auth "
        "configuration is broken",
    )


def plain_realm(call: Call, realm_host: str) -> errors.RegistryError:
    return call.error(
        errors.AuthError,
        f"{call.host} sends us to a plain-HTTP token service ({realm_host}); refusing to send "
        "the credentials unencrypted (set spec.insecure: true only if you trust the network)",
    )


def token_refused(call: Call, realm: str, status: int) -> errors.RegistryError:
    if call.access.credentials is None:
        message = (
            f"{realm} answered {status} to an anonymous token request for {call.repository}: "
            "the image is private and no imagePullSecret is set"
        )
    else:
        message = (
            f"{realm} answered {status} to the token request for {call.repository}: "
            f"{call.whose()} were refused; check the username and password (or token)"
        )
    return call.error(errors.AuthError, message)


def token_failed(call: Call, realm: str, status: int, body: bytes) -> errors.RegistryError:
    return call.error(
        errors.RegistryError,
        f"{realm} answered {status} to the token request for {call.repository}"
        f"{registry_says(body)}",
    )


def no_token(call: Call, realm: str) -> errors.RegistryError:
    return call.error(
        errors.AuthError,
        f"{realm} answered the token request for {call.repository} without a token",
    )


# the network -------------------------------------------------------------------------------


def unreachable(
    call: Call, url: httpx.URL, detail: str, attempts: int, *, token: bool = False
) -> errors.RegistryError:
    hint = "check the host name and the network"
    if url.scheme == "https" and not call.access.insecure:
        hint += ", or set spec.insecure: true for a plain-HTTP or self-signed registry"
    what = "the token service " + url.netloc.decode() if token else url.netloc.decode()
    return call.error(
        errors.RegistryError,
        f"{what} could not be read for {call.repository} after {attempts} attempts "
        f"({detail}); {hint}",
    )


def untrusted(call: Call, url: httpx.URL, exc: httpx.ConnectError) -> errors.RegistryError:
    reason = re.sub(r"\s*\(_ssl\.c:\d+\)", "", transport_words(exc))
    reason = reason.removeprefix("could not connect: ")
    return call.error(
        errors.RegistryError,
        f"{url.netloc.decode()} presented a TLS certificate that could not be verified "
        f"({reason}) for {call.repository}; if the registry uses a self-signed certificate "
        "or a private CA, set spec.insecure: true for it, or give the operator that CA "
        "(SSL_CERT_FILE)",
    )


def unverified(exc: BaseException) -> bool:
    """Whether a connection failed because the server's certificate could not be verified."""
    seen: BaseException | None = exc
    for _ in range(10):  # httpx -> httpcore -> ssl, each raised `from` the one below
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def tls_failed(exc: BaseException) -> bool:
    """Whether a connection failed in the TLS handshake itself (the peer speaks no TLS)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def timeout_words(exc: httpx.TimeoutException) -> str:
    kind = {
        httpx.ConnectTimeout: "connecting timed out",
        httpx.ReadTimeout: "the answer stalled",
        httpx.WriteTimeout: "sending timed out",
        httpx.PoolTimeout: "no free connection",
    }
    return kind.get(type(exc), "timed out")


def transport_words(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect: " + (str(exc).split("]")[-1].strip() or "refused")[:120]
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke mid-answer (truncated or malformed response)"
    return f"{type(exc).__name__}: {str(exc)[:120]}"
