"""`imagepromoter promote` writes repositories, not CRs: 12 CRs over 3 repositories, 3 pushes.

The real token-auth registry and the real smart-HTTP git server; pushes are counted by a
post-receive hook on each bare repository (the server's own count), commits with the git CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import cli
from tests.servers import git_http, registry
from tests.test_cli_e2e import cr, secrets

pytestmark = pytest.mark.servers

HOOK = '#!/bin/sh\necho push >> "$GIT_DIR/pushes.log"\n'
VALUES = 'image:\n  repository: ghcr.io/myorg/app\n  tag: "0.9.0-dev"  # app {k}\n'


def pushes(repo: Path) -> int:
    log = repo / "pushes.log"
    return len(log.read_text("utf-8").splitlines()) if log.exists() else 0


def test_twelve_crs_over_three_repositories_make_three_pushes(
    tmp_path: Path,
    registry_token: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry_token.push_image(repo_name, tags=["1.0.0-dev", "1.2.0-dev"])
    image = f"{registry_token.host}/{repo_name}"
    repos: list[tuple[str, Path]] = []
    for r in range(3):
        name = f"batch-cli-{repo_name.replace('/', '-')}-{r}"
        files = {f"apps/app{k}/values.yaml": VALUES.format(k=k) for k in range(r, 12, 3)}
        url = git_http_server.create_repo(name, files)
        bare = git_http_server.repo_path(name)
        hook = bare / "hooks" / "post-receive"
        hook.write_text(HOOK, "utf-8")
        hook.chmod(0o755)
        repos.append((url, bare))
    docs: list[dict[str, Any]] = []
    for k in range(12):
        doc = cr(f"app{k}", "dev", f"apps/app{k}/values.yaml", image, repos[k % 3][0])
        doc["spec"]["git"]["author"] = {"name": f"CR {k}", "email": f"app{k}@example.com"}
        docs.append(doc)
    crs, secret_file = tmp_path / "crs.yaml", tmp_path / "secrets.yaml"
    crs.write_text(yaml.safe_dump_all(docs), "utf-8")
    secret_docs = secrets(registry_token, git_http_server.username, git_http_server.password)
    secret_file.write_text(yaml.safe_dump_all(secret_docs), "utf-8")
    argv = ["promote", str(crs), "--secrets", str(secret_file), "--workdir", str(tmp_path / "w")]

    assert cli.main([*argv, "--output", "json"]) == cli.EXIT_READY
    out = json.loads(capsys.readouterr().out)
    assert {e["status"]["conditions"][0]["reason"] for e in out} == {"Promoted"}
    assert [pushes(bare) for _, bare in repos] == [1, 1, 1]
    commits = {e["name"]: e["status"]["lastCommit"] for e in out}
    for r, (_, bare) in enumerate(repos):
        log = git_http.log(bare, "main", "%H|%an|%s")
        assert len(log) == 5, "the seed and one commit per CR"
        mine = sorted(line.split("|")[1] for line in log[:4])
        assert mine == sorted(f"CR {k}" for k in range(r, 12, 3))
        for line in log[:4]:
            sha, author, _ = line.split("|")
            assert commits[f"app{author.removeprefix('CR ')}"] == sha, "each CR names its own"
        for k in range(r, 12, 3):
            expected = VALUES.format(k=k).replace("0.9.0-dev", "1.2.0-dev").encode()
            assert git_http.read_file(bare, "main", f"apps/app{k}/values.yaml") == expected

    # a second run: every target holds its value, nothing is pushed anywhere
    assert cli.main(argv) == cli.EXIT_READY
    assert [pushes(bare) for _, bare in repos] == [1, 1, 1]
