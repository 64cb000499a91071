"""Secrets read from the CR's own namespace, through Kopf's own API session.

Why Kopf's session and not the `kubernetes` client: the official client is synchronous, and a sync
call inside an async handler blocks the one event loop every handler, timer and watch shares.
Kopf's client is aiohttp, already logged in (kubeconfig, in-cluster token, or a `@kopf.on.login`
handler), and re-logs in on a 401 by itself. The catch: `kopf._cogs.clients.api` is not Kopf's
public API, so the kopf version is pinned below 2 and this is the only module that touches it
(tests/test_operator_e2e.py exercises it against the emulator).

A Secret is read on every pass and never cached, so editing a Secret takes effect at the next
pass without restarting the operator. Values are returned decoded; they are never logged.
Only the CR's namespace is ever asked: a CR cannot name a Secret elsewhere.

Failures are `errors.SecretReadError` (in the error tree, so the 403 advice reaches the status
as written); reconcile files it under the phase that needed the Secret. How long a read may take
is the pass's deadline, enforced by reconcile around the call. Base64 is decoded leniently about
whitespace (line breaks every 76 characters, as `base64` and some tools wrap), strictly otherwise.
Kopf's own request retries are turned off for these reads (it would retry a 403 for a minute).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import urllib.parse

import aiohttp
import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.structs import credentials as kopf_credentials

from imagepromoter import errors

logger = logging.getLogger(__name__)

SecretReadError = errors.SecretReadError  # the name this module exported before
_WHITESPACE = re.compile(r"\s+")


class KopfSecrets:
    """`reconcile.SecretReader` over Kopf's authenticated API session."""

    def __init__(self, settings: kopf.OperatorSettings) -> None:
        self._settings = settings

    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's decoded values, or None when it does not exist."""
        url = (
            f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}"
            f"/secrets/{urllib.parse.quote(name, safe='')}"
        )
        try:
            # No retries inside the read: Kopf's default retries a 403 or a 5xx for about a
            # minute (1+1+2+3+5+8+13+21 s); the pass reports it now and the schedule retries.
            response = await kopf_api.request(
                "get", url, settings=self._settings, backoffs=(), logger=logger
            )
            async with response:
                body = await response.json()
        except kopf_errors.APINotFoundError:
            return None
        except kopf_errors.APIForbiddenError:
            raise SecretReadError(
                f"the operator may not read Secret {name} in namespace {namespace}: grant it "
                "`get` on secrets there (see manifests/rbac.yaml)"
            ) from None
        except kopf_errors.APIError as exc:
            raise SecretReadError(
                f"reading Secret {name} in namespace {namespace} failed with HTTP {exc.status}; "
                "will retry"
            ) from None
        except kopf_credentials.LoginError:
            raise SecretReadError(
                f"reading Secret {name} in namespace {namespace}: the operator's own credentials "
                "for the Kubernetes API were refused (HTTP 401); check its service account token"
            ) from None
        except (OSError, aiohttp.ClientError, ValueError) as exc:
            raise SecretReadError(
                f"reading Secret {name} in namespace {namespace}: the Kubernetes API could not be "
                f"reached or answered nonsense ({type(exc).__name__}); will retry"
            ) from None
        data = body.get("data") if isinstance(body, dict) else None
        return decode(data if isinstance(data, dict) else {}, namespace=namespace, name=name)


def decode(data: dict[str, str], *, namespace: str, name: str) -> dict[str, str]:
    """Base64-decode a Secret's `data` into text values."""
    decoded: dict[str, str] = {}
    for key, value in data.items():
        try:
            compact = _WHITESPACE.sub("", value) if isinstance(value, str) else value
            decoded[key] = base64.b64decode(compact, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, TypeError):
            raise SecretReadError(
                f"Secret {name} in namespace {namespace}: key {key} is not base64 of UTF-8 text"
            ) from None
    return decoded
