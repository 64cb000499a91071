"""Sending notifications (httpx): retried with backoff, never raising, once per push and URL.

A notification must never fail or delay a promotion, so `Sender.send` runs after the push, in
the background, and returns an error message instead of raising: the caller turns it into a
Warning event. Retried: connection errors, timeouts, 429 and 5xx, with delays `backoff` (0.5,
1, 2, 4 s by default; the `sleep` is injectable so tests do not wait). Not retried: any other
4xx (a wrong URL or secret does not get better). Each (url, commit) is sent at most once per
process (bounded memory), so CRs batched into one commit notify once per URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import httpx

from imagepromoter.notify import events

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF = (0.5, 1.0, 2.0, 4.0)


class Sender:
    """Posts notifications."""

    def __init__(
        self,
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_remembered: int = 10_000,
        verify: bool | str = True,
    ) -> None:
        self._backoff = tuple(backoff)
        self._sleep = sleep
        self._client = httpx.AsyncClient(timeout=timeout, verify=verify, follow_redirects=False)
        self._sent: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._max = max_remembered
        self.attempts = 0

    async def send(self, notification: events.Notification) -> str | None:
        """Send once per (url, commit); None when delivered (or already sent), else why not."""
        if notification.key in self._sent:
            return None
        self._sent[notification.key] = True
        while len(self._sent) > self._max:
            self._sent.popitem(last=False)
        problem: str | None = "not sent"
        for delay in (*self._backoff, None):
            self.attempts += 1
            problem, retry = await self._attempt(notification)
            if problem is None:
                return None
            if not retry or delay is None:
                break
            await self._sleep(delay)
        self._sent.pop(notification.key, None)  # a later push may try again
        return f"{notification.type} notification to {_where(notification.url)}: {problem}"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _attempt(self, notification: events.Notification) -> tuple[str | None, bool]:
        try:
            response = await self._client.post(
                notification.url, content=notification.body, headers=dict(notification.headers)
            )
        except httpx.TimeoutException:
            return "timed out", True
        except httpx.TransportError as exc:
            return f"could not connect ({type(exc).__name__})", True
        if response.is_success:
            return None, False
        retry = response.status_code == 429 or response.status_code >= 500
        return f"HTTP {response.status_code}", retry


def _where(url: str) -> str:
    """The URL without userinfo or query (a token in a query string is not echoed)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
