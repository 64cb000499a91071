"""Remote URLs: redaction for anything printed, and a Dulwich client that carries credentials.

Credentials never travel inside a URL. A URL with `user:password@` is the classic way a token ends
up in `.git/config`, a log line or an exception; so:
- `redact` / `redact_text` strip userinfo from http(s) URLs (and any password from other URLs)
  wherever a URL is printed: messages, logs, WriteResult, workspace names. Inside `connect`,
  `redact_text` also removes that connection's password or key (and their encodings and
  8-character pieces, see `imagepromoter.redact`) from library and server text: a hostile
  server can echo what we sent.
- `connect` gives Dulwich the username and password as arguments (it sends them in an
  Authorization header to that origin only) and never writes a remote into the workspace's config.
- For SSH, Dulwich runs the `ssh` binary (so the operator image needs openssh-client). The Secret's
  private key and known_hosts are written to a private temporary directory (0700, files 0600) for
  the duration of one operation and removed after; host keys are checked strictly
  (`StrictHostKeyChecking=yes` against that file only: no trust on first use), the user's ssh
  config is ignored (`-F /dev/null`) and ssh never prompts (`BatchMode=yes`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dulwich import client as dulwich_client
from dulwich import config as dulwich_config

from imagepromoter import credentials, errors
from imagepromoter import redact as redacting

DEFAULT_TIMEOUT = 30.0

# Up to the last `@` of the URL, not the first `/`: `http://user:1234/SECRET@host/` is read as
# userinfo by some parsers, so anything before an `@` counts as credentials when printed.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^@\s]*)@")
# The credentials of the connection in progress (set by `connect`), removed from any library
# text `redact_text` is given, with their encodings and 8-character pieces (see `redact`).
_ACTIVE: contextvars.ContextVar[redacting.Redactor | None] = contextvars.ContextVar(
    "imagepromoter_git_secrets", default=None
)
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>(?!//).*)$")


def redact(url: str) -> str:
    """The URL without credentials: http(s) loses its userinfo, others keep only the user name."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.scheme and "@" in url.partition("://")[2] and "@" not in parts.netloc:
        return redact_text(url)  # `@` outside the authority: drop everything before it
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in {"http", "https"}:
        return urlunsplit(parts._replace(netloc=host))
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def redact_text(text: str) -> str:
    """Remove `scheme://userinfo@` and the current connection's secrets from library text."""
    active = _ACTIVE.get()
    text = active(text) if active is not None else text
    return _USERINFO.sub(lambda m: m.group("scheme"), text)


def _redactor(creds: credentials.GitCredentials | None) -> redacting.Redactor:
    if isinstance(creds, credentials.BasicCredentials):
        return redacting.Redactor([creds.password], [(creds.username, creds.password)])
    if isinstance(creds, credentials.SshCredentials):
        return redacting.Redactor(redacting.pieces(creds.identity))
    return redacting.Redactor()


def is_ssh(url: str) -> bool:
    """True for ssh://, git+ssh:// and scp-like `user@host:path` URLs."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme:
        return scheme in {"ssh", "git+ssh", "ssh+git"}
    return _SCP_LIKE.match(url) is not None


@dataclass(frozen=True)
class Remote:
    """A Dulwich client bound to one repository; `display` is the URL safe to print."""

    client: dulwich_client.GitClient
    path: bytes
    display: str
    timeout: float


@contextlib.contextmanager
def connect(
    url: str,
    creds: credentials.GitCredentials | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    secret_name: str | None = None,
) -> Iterator[Remote]:
    """A client for `url` with `creds`; SSH key material exists only inside the `with` block."""
    token = _ACTIVE.set(_redactor(creds))
    try:
        with _connected(url, creds, timeout=timeout, secret_name=secret_name) as remote:
            yield remote
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def _connected(
    url: str,
    creds: credentials.GitCredentials | None,
    *,
    timeout: float,
    secret_name: str | None,
) -> Iterator[Remote]:
    display = redact(url)
    source = f"Secret {secret_name}" if secret_name else "the git credentials"
    if is_ssh(url):
        if isinstance(creds, credentials.BasicCredentials):
            raise errors.GitError(
                f"{display} is an SSH URL but {source} holds username/password; use an https:// "
                "URL, or put `identity` and `known_hosts` in the Secret"
            )
        with _ssh_files(creds) as ssh_command:
            client, path = _transport(url, ssh_command=ssh_command)
            with _closing(client):
                yield Remote(client=client, path=path, display=display, timeout=timeout)
        return
    if isinstance(creds, credentials.SshCredentials):
        raise errors.GitError(
            f"{display} is an HTTP(S) URL but {source} holds an SSH key; use an ssh:// URL, or "
            "put `username` and `password` (a token) in the Secret"
        )
    config = dulwich_config.ConfigDict()
    config.set((b"http",), b"timeout", str(timeout).encode())
    kwargs: dict[str, Any] = {"config": config}
    if creds is not None:
        kwargs.update(username=creds.username, password=creds.password)
    client, path = _transport(_strip_userinfo(url), **kwargs)
    with _closing(client):
        yield Remote(client=client, path=path, display=display, timeout=timeout)


@contextlib.contextmanager
def _closing(client: dulwich_client.GitClient) -> Iterator[None]:
    """Close the client and its HTTP connection pool (Dulwich's close leaves the pool open)."""
    try:
        yield
    finally:
        client.close()
        pool = getattr(client, "pool_manager", None)
        if pool is not None:
            pool.clear()


def _transport(url: str, **kwargs: Any) -> tuple[dulwich_client.GitClient, bytes]:
    try:
        client, path = dulwich_client.get_transport_and_path(url, **kwargs)
    except (ValueError, NotImplementedError) as exc:
        raise errors.GitError(
            f"{redact(url)} is not a git URL this operator can use ({redact_text(str(exc))}); "
            "use https://, http://, ssh:// or user@host:path"
        ) from None
    if isinstance(client, dulwich_client.LocalGitClient):
        raise errors.GitError(
            f"{redact(url)} is a local path; spec.git.url must be a remote (https://, ssh://)"
        )
    return client, path.encode("utf-8")


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@contextlib.contextmanager
def _ssh_files(creds: credentials.SshCredentials | None) -> Iterator[str]:
    """Write the key and known_hosts privately; yield the ssh command line that uses them."""
    base = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    base += ["-o", "ConnectTimeout=15"]
    if creds is None:
        yield shlex.join(base)
        return
    directory = Path(tempfile.mkdtemp(prefix="imagepromoter-ssh-"))
    try:
        os.chmod(directory, 0o700)
        identity = directory / "identity"
        known_hosts = directory / "known_hosts"
        for path, text in ((identity, creds.identity), (known_hosts, creds.known_hosts)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text if text.endswith("\n") else text + "\n")
        yield shlex.join(
            [
                *base,
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
                str(identity),
            ]
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
