"""A real smart-HTTP git server: `git http-backend` behind nginx + fcgiwrap, with Basic auth.

Used by the git adapter's tests and by `scripts/demo.py`, so nothing here imports pytest.

Why it is built this way:
- nginx runs with `daemon off` and its own prefix, pid, log and temp paths under a private
  directory, so it needs no system configuration and leaves nothing behind; when run as root it
  says `user root`, or its workers (otherwise `nobody`) could not reach fcgiwrap's socket.
- fcgiwrap and nginx are started in one new process group and the whole group is stopped:
  fcgiwrap's workers outlive their parent otherwise.
- Every bare repository gets `http.receivepack true` (git http-backend refuses pushes from an
  authenticated-but-unknown user without it). `receive.denyNonFastForwards` is set explicitly
  (false unless asked), because the adapter must be safe against servers that accept a push built
  on a stale parent.
- The git CLI is used here to set up and to verify, never by the operator itself.
- `StallingProxy` is a TCP proxy of ours that makes the faults a real server will not make on
  demand: an answer trickled one byte at a time, a server that never answers, a push carried out
  whose answer never comes back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import free_port, require_binary, spawned

NGINX = "/usr/sbin/nginx"
FCGIWRAP = "/usr/sbin/fcgiwrap"
HTPASSWD = "/usr/bin/htpasswd"
GIT = "/usr/bin/git"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"

# A fixed identity for commits the helpers make (never the operator's identity).
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Seeder",
    "GIT_AUTHOR_EMAIL": "seeder@example.com",
    "GIT_COMMITTER_NAME": "Test Seeder",
    "GIT_COMMITTER_EMAIL": "seeder@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}

Files = Mapping[str, bytes | str]


@dataclass
class GitHttpServer:
    """A running server: repositories live under `root`, reachable at `base_url`."""

    root: Path
    port: int
    username: str
    password: str = field(repr=False)
    _process_group: int = field(repr=False, default=0)
    _processes: list[subprocess.Popen[bytes]] = field(repr=False, default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        """The clone URL of repository `name` (no credentials in it)."""
        return f"{self.base_url}/{name}.git"

    def repo_path(self, name: str) -> Path:
        """Where repository `name` lives on disk (for the git CLI in tests)."""
        return self.root / f"{name}.git"

    def create_repo(
        self,
        name: str,
        files: Files,
        *,
        branch: str = "main",
        symlinks: Mapping[str, str] | None = None,
        deny_non_fast_forwards: bool = False,
        commits: int = 1,
    ) -> str:
        """Create a bare repository seeded with `files` on `branch`; returns its URL."""
        create_bare_repo(
            self.repo_path(name),
            files,
            branch=branch,
            symlinks=symlinks,
            deny_non_fast_forwards=deny_non_fast_forwards,
            commits=commits,
        )
        return self.url(name)

    def stop(self) -> None:
        """Stop nginx, fcgiwrap and fcgiwrap's workers (the whole process group)."""
        stop_group(self._process_group, self._processes)


def start(
    base_dir: Path, *, username: str = "promoter", password: str = "s3cret-pw"
) -> GitHttpServer:
    """Start nginx + fcgiwrap on a free 127.0.0.1 port serving `base_dir/repos`."""
    for binary in (NGINX, FCGIWRAP, HTPASSWD, GIT, HTTP_BACKEND):
        require_binary(binary)
    root = base_dir / "repos"
    run = base_dir / "nginx"
    for sub in ("logs", "tmp/body", "tmp/fastcgi", "tmp/proxy", "tmp/uwsgi", "tmp/scgi"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = run / "htpasswd"
    subprocess.run(
        [HTPASSWD, "-b", "-c", "-B", str(htpasswd), username, password],
        check=True,
        capture_output=True,
    )
    socket_path = run / "fcgiwrap.sock"
    port = free_port()
    conf = run / "nginx.conf"
    conf.write_text(_nginx_conf(run, root, socket_path, htpasswd, port), "utf-8")

    with open(run / "logs/fcgiwrap.log", "wb") as log_file:
        fcgiwrap = spawned(  # nginx joins its process group below
            subprocess.Popen(
                [FCGIWRAP, "-c", "4", "-s", f"unix:{socket_path}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                process_group=0,
            )
        )
    server = GitHttpServer(
        root=root,
        port=port,
        username=username,
        password=password,
        _process_group=fcgiwrap.pid,
        _processes=[fcgiwrap],
    )
    try:
        with open(run / "logs/nginx.stderr", "wb") as log_file:
            nginx = subprocess.Popen(
                [NGINX, "-p", str(run), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                process_group=fcgiwrap.pid,
            )
        server._processes.append(nginx)
        wait_for_port(port, nginx, run / "logs/nginx.stderr")
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def serve(base_dir: Path | None = None, **kwargs: str) -> Iterator[GitHttpServer]:
    """`with serve() as server:` starts a server and always stops it."""
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="git-http-")))
        server = start(base_dir, **kwargs)
        stack.callback(server.stop)
        yield server


def create_bare_repo(
    path: Path,
    files: Files,
    *,
    branch: str = "main",
    symlinks: Mapping[str, str] | None = None,
    deny_non_fast_forwards: bool = False,
    commits: int = 1,
) -> None:
    """A bare repository at `path` whose `branch` holds `files` (and `symlinks`: path -> target).

    `commits` > 1 adds that many small history commits (touching HISTORY.txt) before the files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    git(["init", "--quiet", "--bare", f"--initial-branch={branch}", str(path)])
    git(["config", "http.receivepack", "true"], cwd=path)
    git(["config", "receive.denyNonFastForwards", str(deny_non_fast_forwards).lower()], cwd=path)
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        work = Path(tmp)
        git(["init", "--quiet", f"--initial-branch={branch}", str(work)])
        if commits > 1:
            _history(work, commits - 1)
        for name, content in files.items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        for name, link_target in (symlinks or {}).items():
            link = work / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link_target, link)
        git(["add", "--all"], cwd=work)
        git(["commit", "--quiet", "--allow-empty", "-m", "seed"], cwd=work)
        git(["push", "--quiet", str(path), f"HEAD:refs/heads/{branch}"], cwd=work)


def _history(work: Path, count: int) -> None:
    """Make `count` commits quickly with fast-import (a 2,000-commit history takes a second)."""
    lines: list[bytes] = []
    stamp = 1_700_000_000
    for index in range(count):
        data = f"history {index}\n".encode()
        message = f"history {index}\n".encode()
        lines += [
            b"commit HEAD",
            f"committer Test Seeder <seeder@example.com> {stamp + index} +0000".encode(),
            b"data " + str(len(message)).encode(),
            message,
            b"M 100644 inline HISTORY.txt",
            b"data " + str(len(data)).encode(),
            data,
            b"",
        ]
    subprocess.run(
        [GIT, "fast-import", "--quiet"],
        input=b"\n".join(lines) + b"\n",
        cwd=work,
        env=_env(),
        check=True,
        capture_output=True,
    )
    git(["reset", "--quiet", "--hard"], cwd=work)


def read_file(repo: Path, branch: str, path: str) -> bytes:
    """The bytes of `path` on `branch` of bare repository `repo`, via `git show`."""
    return git_bytes(["show", f"refs/heads/{branch}:{path}"], cwd=repo)


def head(repo: Path, branch: str) -> str | None:
    """The sha `branch` points at, or None when it does not exist."""
    result = subprocess.run(
        [GIT, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        cwd=repo,
        env=_env(),
        capture_output=True,
    )
    return result.stdout.decode().strip() or None


def log(repo: Path, branch: str, fmt: str = "%H %s") -> list[str]:
    """`git log --format=fmt branch`, newest first."""
    return git(["log", f"--format={fmt}", f"refs/heads/{branch}"], cwd=repo).splitlines()


def push_commit(repo: Path, branch: str, files: Files, message: str = "someone else") -> str:
    """Commit `files` on top of `branch` (created if absent) as another writer; returns the sha."""
    with tempfile.TemporaryDirectory(prefix="other-") as tmp:
        work = Path(tmp) / "w"
        git(["clone", "--quiet", "--no-checkout", str(repo), str(work)])
        if head(repo, branch):
            git(["checkout", "--quiet", "-B", branch, f"origin/{branch}"], cwd=work)
        else:
            git(["checkout", "--quiet", "--orphan", branch], cwd=work)
        for name, content in files.items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        git(["add", "--all"], cwd=work)
        git(["commit", "--quiet", "--allow-empty", "-m", message], cwd=work)
        git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], cwd=work)
        return git(["rev-parse", "HEAD"], cwd=work).strip()


def git(args: list[str], *, cwd: Path | None = None) -> str:
    """Run the git CLI (set-up and verification only) and return its stdout as text."""
    return git_bytes(args, cwd=cwd).decode("utf-8")


def git_bytes(args: list[str], *, cwd: Path | None = None) -> bytes:
    """Run the git CLI and return stdout bytes; raise with stderr on failure."""
    result = subprocess.run([GIT, *args], cwd=cwd, env=_env(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def _env() -> dict[str, str]:
    return {**os.environ, **_GIT_ENV}


def _nginx_conf(run: Path, root: Path, socket_path: Path, htpasswd: Path, port: int) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {run}/tmp/body;
    fastcgi_temp_path {run}/tmp/fastcgi;
    proxy_temp_path {run}/tmp/proxy;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            auth_basic "git";
            auth_basic_user_file {htpasswd};
            fastcgi_pass unix:{socket_path};
            fastcgi_param SCRIPT_FILENAME {HTTP_BACKEND};
            fastcgi_param GIT_PROJECT_ROOT {root};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param PATH_INFO $uri;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
        }}
    }}
}}
"""


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], stderr_file: Path, name: str = "nginx"
) -> None:
    """Wait until the server accepts connections (or fail with its stderr)."""
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {stderr_file.read_text(errors='replace')}")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within 10 s")


def stop_group(group: int, processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after a grace period."""
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)


class StallingProxy:
    """A TCP proxy of ours on 127.0.0.1 that misbehaves on purpose in front of a real server.

    Modes (settable while running; each connection reads the mode when it is accepted):
    - "pass": bytes flow both ways untouched;
    - "trickle": the request reaches the server, the answer comes back one byte every `every`
      seconds (a 30 s read timeout is never hit, so only a total deadline ends it);
    - "silent": connections are accepted and read, and nothing is ever answered (no upstream
      is contacted; `upstream` may be None);
    - "drop-answer": like "pass", until the client sends a chunk for which `drop_after(chunk)`
      holds (say, `POST .../git-receive-pack`): from then on the server's answer is read and
      thrown away, so the request is carried out but the client never hears back.
    `freeze()` makes every connection, open or new, go silent both ways without closing (a
    server or network gone dead after the handshake: only keep-alive or a deadline notices).
    `accepted` counts connections, `open` the ones not yet closed by either side.
    """

    def __init__(
        self,
        upstream: tuple[str, int] | None,
        *,
        mode: str = "pass",
        every: float = 10.0,
        drop_after: Callable[[bytes], bool] | None = None,
    ) -> None:
        import socket
        import threading

        self.upstream = upstream
        self.mode = mode
        self.every = every
        self.drop_after = drop_after or (
            lambda chunk: chunk.startswith(b"POST ") and b"/git-receive-pack " in chunk[:300]
        )
        self.accepted = 0
        self.dropped_answers = 0
        self.frozen = False
        self._open: set[Any] = set()
        self._clients: set[Any] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="stalling-proxy", daemon=True)
        self._thread.start()

    @property
    def open(self) -> int:
        with self._lock:
            return len(self._clients)

    def url(self, path: str) -> str:
        """`http://127.0.0.1:<port><path>`."""
        return f"http://127.0.0.1:{self.port}{path}"

    def freeze(self) -> None:
        """From now on, forward nothing in either direction (connections stay open)."""
        self.frozen = True

    def stop(self) -> None:
        """Close the listener and every connection (blocked clients see a reset or EOF)."""
        import socket

        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            mode = self.mode
            with self._lock:
                self.accepted += 1
                self._open.add(client)
                self._clients.add(client)
            if mode == "silent":
                threading.Thread(target=self._drain, args=(client,), daemon=True).start()
                continue
            assert self.upstream is not None
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                self._close(client)
                continue
            with self._lock:
                self._open.add(server)
            state = {"dropping": False}
            threading.Thread(
                target=self._forward, args=(client, server, mode, state, True), daemon=True
            ).start()
            threading.Thread(
                target=self._forward, args=(server, client, mode, state, False), daemon=True
            ).start()

    def _drain(self, client: Any) -> None:
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass
        self._close(client)

    def _forward(
        self, source: Any, sink: Any, mode: str, state: dict[str, bool], upstream: bool
    ) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if self.frozen:
                    continue
                if upstream:
                    if mode == "drop-answer" and self.drop_after(chunk):
                        state["dropping"] = True
                    sink.sendall(chunk)
                elif state["dropping"]:
                    with self._lock:
                        self.dropped_answers += 1
                elif mode == "trickle":
                    for index in range(len(chunk)):
                        if self._stopped.wait(self.every if index else 0):
                            return
                        sink.sendall(chunk[index : index + 1])
                else:
                    sink.sendall(chunk)
        except OSError:
            pass
        finally:
            self._close(source)
            if not (state["dropping"] and not upstream):
                self._close(sink)  # a dropped answer leaves the client waiting, as if lost

    def _close(self, sock: Any) -> None:
        import socket

        with self._lock:
            known = sock in self._open
            self._open.discard(sock)
            self._clients.discard(sock)
        if known:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
