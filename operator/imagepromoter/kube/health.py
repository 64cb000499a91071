"""The liveness probe: /healthz answers from its own thread, about the event loop and the passes.

Why not Kopf's liveness endpoint: it is served by the event loop itself, so a blocked loop does not
answer at all (the kubelet's timeout decides), and it knows nothing about passes. Ours runs an
HTTP server in a thread and reports unhealthy (503, with the reason) when
- the event loop is blocked: the loop's heartbeat task (every `beat` seconds) has not run for
  `blocked_after` seconds (CPU work and git run in threads, so a healthy loop is never busy that
  long); or
- no pass could start: a pass has been due (its CR's timer or a change fired) for `start_after`
  seconds without starting (it waits on its CR's lock behind an earlier pass, which its deadline
  bounds, so this means something is stuck). `start_after` must exceed the pass deadline.
Passes that have started and merely wait on slow remotes keep it healthy: each ends at its
deadline. Clocks are injectable; the unit tests drive them by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """What /healthz answers."""

    healthy: bool
    message: str


class Health:
    """Heartbeat of the loop and the passes waiting to start; `check` says whether all is well."""

    def __init__(
        self,
        *,
        blocked_after: float = 10.0,
        start_after: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.blocked_after = blocked_after
        self.start_after = start_after
        self._clock = clock
        self._last_beat = clock()
        self._waiting: dict[int, float] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The event loop ran (called by `heartbeat` from the loop)."""
        with self._lock:
            self._last_beat = self._clock()

    async def heartbeat(self, every: float = 1.0) -> None:
        """Beat from the event loop until cancelled."""
        while True:
            self.beat()
            await asyncio.sleep(every)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[Callable[[], None]]:
        """A pass is due: the block waits for it to start; call the yielded `started()` then."""
        token = next(self._ids)
        with self._lock:
            self._waiting[token] = self._clock()

        def started() -> None:
            with self._lock:
                self._waiting.pop(token, None)

        try:
            yield started
        finally:
            started()

    def check(self) -> Verdict:
        """Healthy, or not and why."""
        with self._lock:
            now = self._clock()
            silent = now - self._last_beat
            oldest = min(self._waiting.values(), default=None)
        if silent >= self.blocked_after:
            return Verdict(False, f"the event loop has been blocked for {silent:.0f}s")
        if oldest is not None and now - oldest >= self.start_after:
            return Verdict(False, f"a due pass could not start for {now - oldest:.0f}s")
        return Verdict(True, "ok")


class Server:
    """/healthz on host:port, answered from a thread (so a blocked loop cannot silence it)."""

    def __init__(self, health: Health, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.path = parts.path or "/healthz"
        health_ = health
        path = self.path

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urllib.parse.urlsplit(self.path).path != path:
                    self.send_error(404)
                    return
                verdict = health_.check()
                body = json.dumps({"healthy": verdict.healthy, "message": verdict.message})
                self.send_response(200 if verdict.healthy else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: object) -> None:
                del format, args  # probes every few seconds: not worth a log line

        self._httpd = http.server.ThreadingHTTPServer(
            (parts.hostname or "0.0.0.0", 8081 if parts.port is None else parts.port),  # noqa: S104
            Handler,
        )
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="healthz", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when the URL asked for port 0)."""
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
