"""URL redaction and the credential plumbing of the git adapter (no server needed)."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest

from imagepromoter import credentials, errors
from imagepromoter.git import urls


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://user:tok3n@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://tok3n@127.0.0.1:8080/r.git", "http://127.0.0.1:8080/r.git"),
        ("ssh://git:pw@host:22/org/repo.git", "ssh://git@host:22/org/repo.git"),
        ("ssh://git@host/org/repo.git", "ssh://git@host/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ],
    ids=["plain", "user-token", "token-only", "ssh-password", "ssh-user", "scp-like"],
)
def test_redact(url: str, expected: str) -> None:
    assert urls.redact(url) == expected


def test_redact_text_removes_credentials_inside_messages() -> None:
    text = "fatal: could not read from https://me:t0ken@example.com/r.git and ftp://a:b@h/x"
    assert urls.redact_text(text) == (
        "fatal: could not read from https://example.com/r.git and ftp://h/x"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://git@host/r.git", True),
        ("git@github.com:org/r.git", True),
        ("git+ssh://host/r.git", True),
        ("https://host/r.git", False),
        ("http://host:80/r.git", False),
    ],
    ids=["ssh-url", "scp-like", "git+ssh", "https", "http"],
)
def test_is_ssh(url: str, expected: bool) -> None:
    assert urls.is_ssh(url) is expected


@pytest.mark.parametrize(
    ("url", "creds", "message"),
    [
        (
            "ssh://git@host/r.git",
            credentials.BasicCredentials("u", "pw-secret"),
            "is an SSH URL but Secret s holds username/password",
        ),
        (
            "https://host/r.git",
            credentials.SshCredentials(identity="KEY-secret", known_hosts="host ssh-ed25519 A"),
            "is an HTTP\\(S\\) URL but Secret s holds an SSH key",
        ),
        ("/srv/git/r.git", None, "is a local path"),
    ],
    ids=["basic-on-ssh", "key-on-https", "local-path"],
)
def test_mismatched_credentials_are_git_errors(
    url: str, creds: credentials.GitCredentials | None, message: str
) -> None:
    with pytest.raises(errors.GitError, match=message) as caught:
        with urls.connect(url, creds, secret_name="s"):
            pass
    assert "pw-secret" not in str(caught.value) and "KEY-secret" not in str(caught.value)


def test_https_credentials_are_not_in_the_url() -> None:
    creds = credentials.BasicCredentials("user", "t0ken")
    with urls.connect("https://user:old@example.com/r.git", creds) as remote:
        assert remote.display == "https://example.com/r.git"
        assert b"t0ken" not in remote.path and b"old" not in remote.path
        assert "t0ken" not in remote.client.get_url(remote.path.decode())


def test_ssh_key_files_are_private_and_removed_after() -> None:
    creds = credentials.SshCredentials(identity="PRIVATE", known_hosts="[h]:22 ssh-ed25519 AAA")
    with urls.connect("ssh://git@127.0.0.1:2222/r.git", creds) as remote:
        command = shlex.split(remote.client.ssh_command)  # type: ignore[attr-defined]
        identity = Path(command[command.index("-i") + 1])
        known = Path(
            next(a for a in command if a.startswith("UserKnownHostsFile=")).split("=", 1)[1]
        )
        assert "StrictHostKeyChecking=yes" in command and "BatchMode=yes" in command
        assert identity.read_text() == "PRIVATE\n"
        assert known.read_text() == "[h]:22 ssh-ed25519 AAA\n"
        for path in (identity, known):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(identity.parent).st_mode) == 0o700
    assert not identity.parent.exists()


def test_inside_connect_library_text_loses_the_connection_secrets() -> None:
    creds = credentials.BasicCredentials("bot", "ghp_SuperSecretToken123")
    echoed = (
        "remote: denied for ghp_SuperSecretToken123 (Basic Ym90OmdocF9TdXBlclNlY3JldFRva2VuMTIz)"
    )
    assert "ghp_Super" in urls.redact_text(echoed)  # outside a connection: nothing to know
    with urls.connect("https://example.com/r.git", creds):
        text = urls.redact_text(echoed)
        cut = urls.redact_text(echoed)[:40]
    assert "SuperSecret" not in text and "Ym90OmdocF9" not in text and "<redacted>" in text
    assert "SuperSec" not in cut
    assert "ghp_Super" in urls.redact_text(echoed)  # the context ends with the connection


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:1234/SECRET@host/r.git", "http://host/r.git"),
        ("https://a:b@host/r.git", "https://host/r.git"),
        ("https://host/r.git", "https://host/r.git"),
    ],
    ids=["userinfo-after-a-port-like-path", "userinfo", "none"],
)
def test_redact_drops_everything_before_the_last_at(url: str, shown: str) -> None:
    assert urls.redact(url) == shown
    assert "SECRET" not in urls.redact_text(f"failed: {url}")
