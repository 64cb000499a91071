"""Authentication of webhook requests: tokens, HMAC signatures and secret paths.

Every comparison is constant-time (`hmac.compare_digest`), so the time an answer takes says
nothing about how much of a token or signature was right. Signatures are HMAC-SHA256 only: a
request carrying only GitHub's SHA-1 `X-Hub-Signature` is unauthenticated, never a fallback.
The senders that cannot sign (Docker Hub, Harbor, Quay) are given a URL path that is itself the
secret: an HMAC-SHA256 keyed by the token over the ImageWebhook's namespace and name, so the
path changes when the token does and two ImageWebhooks never share one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

MAX_BODY = 1 << 20  # 1 MiB: larger bodies are answered 413 before they are read whole
PATH_PREFIX = "/hook/"


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer <t>` or `token <t>` (GitHub's form); else None."""
    value = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        return None
    return token.strip()


def same(presented: str | None, expected: str) -> bool:
    """Whether a presented token equals the expected one (constant-time; empty never matches)."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def sign(body: bytes, secret: str) -> str:
    """The `sha256=<hex>` signature of a body, as GitHub and our notifications send it."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signed(body: bytes, secret: str, header: str | None) -> bool:
    """Whether `header` is the body's `sha256=<hex>` HMAC under `secret` (no other algorithm)."""
    if not header or not secret:
        return False
    algorithm, _, digest = header.strip().partition("=")
    if algorithm.lower() != "sha256" or not digest:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest.lower().encode("ascii", "replace"), expected.encode())


def secret_path(token: str, name: str, namespace: str) -> str:
    """The URL path of a dockerhub, harbor or quay ImageWebhook (`status.path`)."""
    key = token.encode("utf-8")
    digest = hmac.new(key, f"{namespace}/{name}".encode(), hashlib.sha256).hexdigest()
    return PATH_PREFIX + digest
