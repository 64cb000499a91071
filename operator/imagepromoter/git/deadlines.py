"""The pass deadline inside the git thread: a watchdog that ends blocked network waits on time.

Dulwich is synchronous and runs in a worker thread, which cannot be cancelled; socket timeouts do
not bound an operation either: a server that trickles one byte every 10 s satisfies a 30 s read
timeout forever, and urllib3 by default retries a silent server three times (4 x 30 s). So:
- `Watchdog(deadline)` is entered around one write (it becomes the thread's current watchdog). A
  `threading.Timer` fires at the deadline and shuts down every socket opened under it (a blocked
  `recv` returns at once) and kills every ssh process; `failures.translate` then reports the
  deadline, naming the phase (`phase("fetch")`, "push", "ls-remote") and the remote.
- HTTP(S): `instrument` gives the client's urllib3 pool manager connection classes that register
  each new socket with the current watchdog and cap the connect timeout at the time left, and
  turns urllib3's connect/read retries off (the operator's schedule retries whole passes).
- SSH: a Dulwich SSH vendor that registers the ssh process and adds keep-alive after the
  handshake (`ServerAliveInterval`, `ServerAliveCountMax`), so a server gone silent ends ssh even
  with no deadline.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from dulwich import client as dulwich_client
from urllib3 import connection, connectionpool

from imagepromoter import errors

SSH_ALIVE_INTERVAL = 15  # seconds between ssh keep-alive probes once connected
SSH_ALIVE_COUNT = 3  # unanswered probes before ssh gives up (45 s of silence)

_local = threading.local()


class Watchdog:
    """Ends the sockets and ssh processes of one operation at `deadline` (time.monotonic())."""

    def __init__(self, deadline: float | None, *, clock: Callable[[], float] = time.monotonic):
        self.deadline = deadline
        self.clock = clock
        self.phase = "connect"
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._timer: threading.Timer | None = None
        self._previous: Watchdog | None = None

    def __enter__(self) -> Watchdog:
        self._previous = current()
        _local.watchdog = self
        if self.deadline is not None:
            self._timer = threading.Timer(max(0.0, self.deadline - self.clock()), self.expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        _local.watchdog = self._previous

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self.clock())

    def expire(self) -> None:
        """The deadline: end every wait of this operation now."""
        with self._lock:
            self.expired = True
            sockets, processes = list(self._sockets), list(self._processes)
        for sock in sockets:
            _shutdown(sock)
        for process in processes:
            with contextlib.suppress(OSError):
                process.kill()

    def track_socket(self, sock: socket.socket) -> None:
        """End `sock` at the deadline (at once if it has passed)."""
        with self._lock:
            self._sockets.append(sock)
            late = self.expired
        if late:
            _shutdown(sock)

    def track_process(self, process: subprocess.Popen[bytes]) -> None:
        """Kill `process` at the deadline (at once if it has passed)."""
        with self._lock:
            self._processes.append(process)
            late = self.expired
        if late:
            with contextlib.suppress(OSError):
                process.kill()


def current() -> Watchdog | None:
    """The watchdog of the operation running in this thread, if any."""
    found: Watchdog | None = getattr(_local, "watchdog", None)
    return found


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Name what the current operation is doing, for the deadline message."""
    watchdog = current()
    if watchdog is None:
        yield
        return
    before, watchdog.phase = watchdog.phase, name
    try:
        yield
    finally:
        watchdog.phase = before


@contextlib.contextmanager
def bounded(lock: threading.Lock | threading.BoundedSemaphore, what: str) -> Iterator[None]:
    """Hold `lock`, waiting for it no later than the current watchdog's deadline (else GitError)."""
    watchdog = current()
    left = watchdog.remaining() if watchdog is not None else None
    if not lock.acquire(timeout=-1 if left is None else left):
        raise errors.GitError(
            f"the pass deadline ran out waiting for {what}; will retry "
            "(imagepromoter run --pass-deadline sets the deadline)"
        )
    try:
        yield
    finally:
        lock.release()


def instrument(
    client: dulwich_client.GitClient,
    *,
    alive_interval: int = SSH_ALIVE_INTERVAL,
    alive_count: int = SSH_ALIVE_COUNT,
) -> None:
    """Make `client`'s connections obey the current watchdog (see the module docstring)."""
    pool = getattr(client, "pool_manager", None)
    if isinstance(pool, urllib3.PoolManager):
        pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        pool.connection_pool_kw["retries"] = urllib3.Retry(
            total=None, connect=0, read=0, status=0, other=0, redirect=5
        )
    if isinstance(client, dulwich_client.SSHGitClient):
        client.ssh_vendor = _SshVendor(alive_interval, alive_count)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Tracked:
    """Mixin for urllib3 connections: register the socket, cap the connect timeout."""

    timeout: Any

    def _new_conn(self) -> socket.socket:
        watchdog = current()
        left = watchdog.remaining() if watchdog is not None else None
        if left is not None:
            self.timeout = (
                min(self.timeout, left) if isinstance(self.timeout, int | float) else left
            )
            self.timeout = max(self.timeout, 0.001)
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if watchdog is not None:
            watchdog.track_socket(sock)
        return sock


class _HTTPConnection(_Tracked, connection.HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, connection.HTTPSConnection):
    pass


class _HTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _SshVendor(dulwich_client.SubprocessSSHVendor):
    """ssh with keep-alive, its process registered with the current watchdog."""

    def __init__(self, alive_interval: int, alive_count: int) -> None:
        self.alive = (
            f" -o ServerAliveInterval={alive_interval} -o ServerAliveCountMax={alive_count}"
        )

    def run_command(
        self, host: str, command: bytes, *args: Any, **kwargs: Any
    ) -> dulwich_client.SubprocessWrapper:
        kwargs["ssh_command"] = (kwargs.get("ssh_command") or "ssh") + self.alive
        wrapper = super().run_command(host, command, *args, **kwargs)
        watchdog = current()
        if watchdog is not None:
            watchdog.track_process(wrapper.proc)
        return wrapper
