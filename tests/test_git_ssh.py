"""GitWriter over SSH against a real openssh-server (git-shell forced command, strict host keys)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from imagepromoter import changes, credentials, errors, spec
from imagepromoter.git import writer
from tests.servers import git_http, sshd

pytestmark = pytest.mark.servers

VALUES = b"image:\n  tag: 1.0.0 # pinned\n"


def bump(read: changes.FileReader) -> changes.Changeset:
    before = read("values.yaml")
    after = before.replace(b"1.0.0", b"1.1.0")
    return changes.Changeset((changes.FileChange("values.yaml", before, after),), "bump")


def test_ssh_push_with_identity_and_known_hosts(
    sshd_server: sshd.SshServer, git_writer: writer.GitWriter, tmp_path: Path
) -> None:
    repo = tmp_path / "remote" / "gitops.git"
    git_http.create_bare_repo(repo, {"values.yaml": VALUES})
    creds = credentials.SshCredentials(
        identity=sshd_server.identity, known_hosts=sshd_server.known_hosts
    )
    before_tmp = set(Path(tempfile.gettempdir()).glob("imagepromoter-ssh-*"))
    result = git_writer.write(spec.GitSpec(url=sshd_server.url(repo)), creds, bump)
    assert git_http.head(repo, "main") == result.commit
    assert git_http.read_file(repo, "main", "values.yaml") == b"image:\n  tag: 1.1.0 # pinned\n"
    # The key material existed only during the operation.
    assert set(Path(tempfile.gettempdir()).glob("imagepromoter-ssh-*")) == before_tmp


@pytest.mark.parametrize(
    ("break_what", "message"),
    [
        ("known_hosts", "host key is not in known_hosts"),
        ("identity", "refused the SSH key"),
    ],
    ids=["unknown-host-key", "wrong-key"],
)
def test_ssh_refusals_are_actionable(
    sshd_server: sshd.SshServer,
    git_writer: writer.GitWriter,
    tmp_path: Path,
    break_what: str,
    message: str,
) -> None:
    repo = tmp_path / "remote" / "gitops.git"
    git_http.create_bare_repo(repo, {"values.yaml": VALUES})
    other = sshd.start(tmp_path / "other-keys")  # a second server: different host and user keys
    try:
        identity = other.identity if break_what == "identity" else sshd_server.identity
        known = other.known_hosts if break_what == "known_hosts" else sshd_server.known_hosts
        known = known.replace(f"[127.0.0.1]:{other.port}", f"[127.0.0.1]:{sshd_server.port}")
        creds = credentials.SshCredentials(identity=identity, known_hosts=known)
        with pytest.raises(errors.GitError, match=message) as caught:
            git_writer.write(
                spec.GitSpec(url=sshd_server.url(repo), secret_ref="ssh-key"), creds, bump
            )
    finally:
        other.stop()
    assert "PRIVATE KEY" not in str(caught.value)
    assert "Secret ssh-key" in str(caught.value)
