"""A request quota in front of the real docker-registry (tests/test_registry_pacing.py).

`QuotaProxy(upstream, limit=N, window=S)` forwards requests and announces its quota on every
answer the way the IETF RateLimit draft does (`RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset` in whole seconds left, rounded up so a client that waits for it is never
early); a request beyond the quota of the current window gets 429 with the same headers. A
window starts at the first request after the previous one ended (real time: the client under
test sleeps for real). `never_resets=True` is the wall that never ends: every request is 429.
`answers` records (window number, status) for every request, in arrival order, so a test checks
the client's waits by what the server saw, never by the wall clock.
"""

from __future__ import annotations

import math
import threading
import time

from tests.servers import registry


class QuotaProxy(registry._Proxy):
    def __init__(
        self, upstream: str, *, limit: int, window: float, never_resets: bool = False
    ) -> None:
        self.limit = limit
        self.window = window
        self.never_resets = never_resets
        self.answers: list[tuple[int, int]] = []
        self._windows = 0
        self._ends = float("-inf")
        self._used = 0
        self._quota_lock = threading.Lock()
        super().__init__(upstream)

    def statuses(self) -> list[int]:
        return [status for _, status in self.answers]

    def serve(self, request: registry._Handler) -> None:
        with self._quota_lock:
            now = time.monotonic()
            if now >= self._ends and not self.never_resets:
                self._windows += 1
                self._ends = now + self.window
                self._used = 0
            elif self._windows == 0:
                self._windows, self._ends = 1, now + self.window
            allowed = not self.never_resets and self._used < self.limit
            self._used += 1 if allowed else 0
            window = self._windows
            headers = {
                "RateLimit-Limit": str(self.limit),
                "RateLimit-Remaining": str(max(0, self.limit - self._used))
                if not self.never_resets
                else "0",
                "RateLimit-Reset": str(math.ceil(max(0.0, self._ends - now)))
                if not self.never_resets
                else str(math.ceil(self.window)),
            }
            self.answers.append((window, 200 if allowed else 429))
        if not allowed:
            request.body()
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            request.reply(429, body, headers)
            return
        status, upstream_headers, body = self.forward(request)
        upstream_headers.update(headers)
        request.reply(status, body, upstream_headers, content_type=None)
