"""Pytest fixtures for the git servers (see tests/servers/).

- `git_http_server`: one smart-HTTP server (nginx + fcgiwrap + git http-backend, Basic auth) for
  the session. Create repositories on it with `git_repo(files, ...)`, which picks a unique name.
- `git_http_creds`: the BasicCredentials that server accepts.
- `sshd_server`: one openssh-server for the session (git-shell forced command); its `identity`
  and `known_hosts` are what an SSH git Secret holds.
- `git_writer`: a GitWriter with a fresh work directory and no sleeping between retries.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagepromoter import credentials
from imagepromoter.git import writer
from tests.conftest import need_server
from tests.servers import git_http, sshd

_names = itertools.count()


@pytest.fixture(scope="session")
def git_http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[git_http.GitHttpServer]:
    server = need_server(lambda: git_http.start(tmp_path_factory.mktemp("git-http")))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def git_http_creds(git_http_server: git_http.GitHttpServer) -> credentials.BasicCredentials:
    return credentials.BasicCredentials(
        username=git_http_server.username, password=git_http_server.password
    )


@pytest.fixture
def git_repo(git_http_server: git_http.GitHttpServer) -> Callable[..., tuple[str, Path]]:
    """`git_repo(files, **options)` -> (url, bare repository path) of a new repository."""

    def create(files: git_http.Files, **options: Any) -> tuple[str, Path]:
        name = f"repo{next(_names)}"
        url = git_http_server.create_repo(name, files, **options)
        return url, git_http_server.repo_path(name)

    return create


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd.SshServer]:
    server = need_server(lambda: sshd.start(tmp_path_factory.mktemp("sshd")))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def git_writer(tmp_path: Path) -> writer.GitWriter:
    return writer.GitWriter(tmp_path / "workspaces", retries=3, sleep=lambda seconds: None)
