"""`spec.git.insecure`: a Secret's git credentials never cross plain HTTP unless the CR opts in.

`imagepromoter promote` runs in-process against the real registry and the real smart-HTTP git
server (nginx + git http-backend, Basic auth), with a recording pass-through of ours in front of
the git server so a test sees whether any request, with or without credentials, reached it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import cli
from tests.servers import git_http, registry

pytestmark = pytest.mark.servers

VALUES = 'image:\n  tag: "0.9.0"\n'


def documents(
    image: str, git_url: str, git: git_http.GitHttpServer, **git_spec: Any
) -> tuple[str, str]:
    """The CR and its git Secret, as YAML texts."""
    promotion = {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": "app", "namespace": "gitops"},
        "spec": {
            "image": image,
            "insecure": True,
            "tagRegex": r"^\d+\.\d+\.\d+$",
            "git": {"url": git_url, "branch": "main", "secretRef": "push", **git_spec},
            "targets": [{"path": "values.yaml", "key": "image.tag"}],
        },
    }
    push = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "push", "namespace": "gitops"},
        "stringData": {"username": git.username, "password": git.password},
    }
    return yaml.safe_dump(promotion), yaml.safe_dump(push)


@pytest.fixture
def git_proxy(git_http_server: git_http.GitHttpServer) -> Iterator[registry.CountingProxy]:
    proxy = registry.CountingProxy(git_http_server.base_url)
    try:
        yield proxy
    finally:
        proxy.stop()


def promote(tmp_path: Path, texts: tuple[str, str]) -> int:
    crs, secrets = tmp_path / "crs.yaml", tmp_path / "secrets.yaml"
    crs.write_text(texts[0], "utf-8")
    secrets.write_text(texts[1], "utf-8")
    work = str(tmp_path / "work")
    return cli.main(
        ["promote", str(crs), "--secrets", str(secrets), "--workdir", work, "-o", "json"]
    )


def test_plain_http_git_with_a_secret_is_refused_before_any_request(
    tmp_path: Path,
    registry_open: registry.RegistryServer,
    repo_name: str,
    git_repo: Callable[..., tuple[str, Path]],
    git_http_server: git_http.GitHttpServer,
    git_proxy: registry.CountingProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"])
    url, bare = git_repo({"values.yaml": VALUES})
    via_proxy = url.replace(git_http_server.base_url, git_proxy.url)
    text = documents(f"{registry_open.host}/{repo_name}", via_proxy, git_http_server)
    assert promote(tmp_path, text) == cli.EXIT_NOT_READY
    out = json.loads(capsys.readouterr().out)
    condition = out[0]["status"]["conditions"][0]
    assert condition["reason"] == "InvalidSpec"
    assert (
        "spec.git.url: is plain http:// and spec.git.secretRef push is set" in condition["message"]
    )
    assert "set spec.git.insecure: true" in condition["message"]
    assert git_proxy.seen() == []  # not even an anonymous request reached the git server
    assert git_http.read_file(bare, "main", "values.yaml") == VALUES.encode()


def test_git_insecure_opts_in_to_plain_http(
    tmp_path: Path,
    registry_open: registry.RegistryServer,
    repo_name: str,
    git_repo: Callable[..., tuple[str, Path]],
    git_http_server: git_http.GitHttpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry_open.push_image(repo_name, tags=["1.0.0"])
    url, bare = git_repo({"values.yaml": VALUES})
    text = documents(f"{registry_open.host}/{repo_name}", url, git_http_server, insecure=True)
    assert promote(tmp_path, text) == cli.EXIT_READY
    out = json.loads(capsys.readouterr().out)
    assert out[0]["status"]["conditions"][0]["reason"] == "Promoted"
    assert git_http.read_file(bare, "main", "values.yaml") == b'image:\n  tag: "1.0.0"\n'
