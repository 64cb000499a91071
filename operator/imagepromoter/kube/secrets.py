"""Secrets read from the CR's own namespace, through Kopf's own API session.

Why Kopf's session and not the `kubernetes` client: the official client is synchronous, and a sync
call inside an async handler blocks the one event loop every handler, timer and watch shares.
Kopf's client is aiohttp, already logged in (kubeconfig, in-cluster token, or a `@kopf.on.login`
handler), and re-logs in on a 401 by itself. The catch: `kopf._cogs.clients.api` is not Kopf's
public API, so the kopf version is pinned below 2 and this is the only module that touches it
(tests/test_operator_e2e.py exercises it against the emulator).

Each Secret is read at most once per cycle, however many CRs name it: reads of one (namespace,
name) share one request while it is in flight (single-flight), and its answer serves the passes
of the next `max_age` seconds (the operator passes about one tick, 10 s; 0, the default here,
keeps only the single-flight). A 404 is remembered like a value; a 403, a 5xx or a broken answer
is not (the next pass asks again). So an edited Secret takes effect at the next cycle, without a
restart and without a watch on Secrets (which would need `list`/`watch` on every Secret in the
namespace). A flight whose every waiter gave up (pass deadlines) is cancelled. Values are
returned decoded, kept only in this process's memory, and never logged. Only the CR's namespace
is ever asked: a CR cannot name a Secret elsewhere.

Failures are `errors.SecretReadError` (in the error tree, so the 403 advice reaches the status
as written); reconcile files it under the phase that needed the Secret. How long a read may take
is the pass's deadline, enforced by reconcile around the call. Base64 is decoded leniently about
whitespace (line breaks every 76 characters, as `base64` and some tools wrap), strictly otherwise.
Kopf's own request retries are turned off for these reads (it would retry a 403 for a minute).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.structs import credentials as kopf_credentials

from imagepromoter import errors

logger = logging.getLogger(__name__)

SecretReadError = errors.SecretReadError  # the name this module exported before
_WHITESPACE = re.compile(r"\s+")


DEFAULT_MAX_AGE = 10.0  # seconds an answer serves in the operator: about one tick

_Key = tuple[str, str]


@dataclass
class _Flight:
    task: asyncio.Task[dict[str, str] | None]
    waiters: int = 0


class KopfSecrets:
    """`reconcile.SecretReader` over Kopf's authenticated API session, single-flight and cached."""

    def __init__(
        self,
        settings: kopf.OperatorSettings,
        *,
        max_age: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._max_age = max_age
        self._clock = clock
        self._answers: dict[_Key, tuple[float, dict[str, str] | None]] = {}
        self._flights: dict[_Key, _Flight] = {}
        self._pruned = clock()

    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's decoded values, or None when it does not exist."""
        key = (namespace, name)
        now = self._clock()
        if now - self._pruned >= self._max_age:  # at most once per max_age: O(1) per read
            self._prune(now)
        answer = self._answers.get(key)
        if answer is not None and now - answer[0] < self._max_age:
            return dict(answer[1]) if answer[1] is not None else None
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(self._fetch(key)))
            flight.task.add_done_callback(_retrieved)  # a failure nobody awaited is not "lost"
            self._flights[key] = flight
        flight.waiters += 1
        try:
            values = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            if flight.waiters == 1 and not flight.task.done():
                flight.task.cancel()  # nobody else waits for it
                self._flights.pop(key, None)
            raise
        finally:
            flight.waiters -= 1
        return dict(values) if values is not None else None

    async def _fetch(self, key: _Key) -> dict[str, str] | None:
        """One request for everyone waiting on `key`; its answer cached unless it failed."""
        try:
            values = await self._request(*key)
        finally:
            flight = self._flights.get(key)
            if flight is not None and flight.task is asyncio.current_task():
                del self._flights[key]
        if self._max_age > 0:
            self._answers[key] = (self._clock(), values)
        return values

    def _prune(self, now: float) -> None:
        self._pruned = now
        stale = [k for k, (at, _) in self._answers.items() if now - at >= self._max_age]
        for key in stale:
            del self._answers[key]

    async def _request(self, namespace: str, name: str) -> dict[str, str] | None:
        """GET the Secret: its decoded values, None on a 404, else SecretReadError."""
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


def _retrieved(task: asyncio.Task[dict[str, str] | None]) -> None:
    if not task.cancelled():
        task.exception()


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
