"""Secrets never leave their Secret: every failure path, run with known secret values.

Each case runs `imagepromoter -vv promote` as a process (DEBUG logging, where hpack once logged
the encoded Authorization header) against the real servers, with a git password, a registry
password, an SSH private key and a token-like password that the test knows, and then looks for
each of them, their base64 (also of `user:password`), their URL-quoted form and every
8-character piece of them, in stdout, stderr, the JSON status and every file the run wrote
outside git's object storage. The registry speaks HTTPS with HTTP/2 (docker-registry's Go server
negotiates h2) where the case allows; the hostile answers come from a fault proxy.

`test_reconcile_status_*` do the same for the status `reconcile` itself computes, without the
CLI's last redaction of its output, so a leak in a message cannot hide behind it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from imagepromoter import reconcile
from imagepromoter.git import writer
from imagepromoter.registry import client
from tests.conftest import need_server
from tests.hostile import _support
from tests.servers import git_http, registry

pytestmark = pytest.mark.servers

GIT_TOKEN = "ghp_Zx81QmV3kP0rT7sLwN2yB5cH9dJ4fA6e"  # looks like a GitHub token; wrong on purpose
REGISTRY_WRONG = "Wr0ng-Registry-Passw0rd-77"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBf4kq9VlJtS2ZcJ0hV7wq3Xb8s0yQm6n1d2c3e4f5g6AAAAJgAAAAAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


@pytest.fixture(scope="module")
def registry_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry.RegistryServer]:
    """docker-registry over HTTPS (so HTTP/2) with htpasswd: credentials really are sent."""
    server = need_server(
        lambda: registry.start(tmp_path_factory.mktemp("h2"), auth="htpasswd", tls=True)
    )
    try:
        yield server
    finally:
        server.stop()


def _secrets_file(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(docs), "utf-8")


def _check(run: _support.Run, workdir: Path, known: list[tuple[str | None, str]]) -> None:
    texts = [run.stdout, run.stderr, *(_support.files_text(workdir) if workdir.exists() else [])]
    assert _support.leaks(texts, known) == [], run.text[-3000:]
    assert "Traceback" not in run.stderr


def _known(stage: _support.Stage) -> list[tuple[str | None, str]]:
    return [
        (stage.git.username, stage.git.password),
        (stage.reg.username, stage.reg.password),
        (stage.git.username, GIT_TOKEN),
        (stage.reg.username, REGISTRY_WRONG),
        (None, SSH_KEY.split("\n")[1]),
    ]


def test_success_over_http2_with_debug_logs_shows_no_credentials(
    tmp_path: Path,
    registry_h2: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
) -> None:
    assert registry_h2.tls is not None
    registry_h2.push_image(repo_name, tags=["1.2.3"])
    url = git_http_server.create_repo(
        f"h2-{repo_name.replace('/', '-')}", {"values.yaml": _support.VALUES}
    )
    spec = {
        "image": f"{registry_h2.host}/{repo_name}",
        "imagePullSecret": "pull",
        "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)$",
        "git": {"url": url, "branch": "main", "secretRef": "push", "insecure": True},
        "targets": [{"path": "values.yaml", "key": "image.tag"}],
    }
    crs, secrets, work = tmp_path / "crs.yaml", tmp_path / "secrets.yaml", tmp_path / "work"
    crs.write_text(yaml.safe_dump(_support.promotion("app", **spec)), "utf-8")
    auth = base64.b64encode(f"{registry_h2.username}:{registry_h2.password}".encode()).decode()
    config = json.dumps({"auths": {registry_h2.host: {"auth": auth}}})
    _secrets_file(
        secrets,
        [
            _support.secret("pull", **{".dockerconfigjson": config}),
            _support.secret(
                "push", username=git_http_server.username, password=git_http_server.password
            ),
        ],
    )
    run = _support.run_cli(
        [
            "-vv",
            "promote",
            str(crs),
            "--secrets",
            str(secrets),
            "--workdir",
            str(work),
            "-o",
            "json",
        ],
        env={"SSL_CERT_FILE": str(registry_h2.tls.certificate)},
        measure=("secrets", "success over HTTP/2 at -vv"),
    )
    assert run.returncode == 0, run.text[-3000:]
    assert "HTTP/2" in run.stderr  # httpx logs the protocol: the h2 path (hpack) really ran
    assert "Encoded header block" not in run.stderr
    known = [
        (registry_h2.username, registry_h2.password),
        (git_http_server.username, git_http_server.password),
    ]
    _check(run, work, known)


HOSTILE_BODIES = [
    ("echoes-password-after-136-characters", lambda u, p: "x" * 136 + p),
    (
        "echoes-basic-header",
        lambda u, p: "Authorization: Basic " + base64.b64encode(f"{u}:{p}".encode()).decode(),
    ),
    ("echoes-url-quoted", lambda u, p: "x" * 150 + quote(p, safe="")),
    ("echoes-password-4000-characters-in", lambda u, p: "y" * 4000 + p + "z" * 200),
    ("echoes-it-three-times", lambda u, p: f"{p};{p[3:]};{p[:12]}" * 3),
]


@pytest.mark.parametrize("body", [b[1] for b in HOSTILE_BODIES], ids=[b[0] for b in HOSTILE_BODIES])
def test_a_hostile_403_echoing_the_credentials_is_redacted(
    stage: Callable[..., _support.Stage],
    body: Callable[[str, str], str],
    request: pytest.FixtureRequest,
) -> None:
    st = stage()
    st.write_crs(_support.promotion("app", **st.spec()))
    text = body(st.reg.username, st.reg.password)
    errors_doc = {"errors": [{"code": "DENIED", "message": text}]}
    st.proxy.add(
        "status", path=r"/tags/list", status=403, body=json.dumps(errors_doc).encode(), times=20
    )
    run = st.promote("-vv", "--output", "json", measure=("secrets", request.node.callspec.id))
    assert run.returncode == 1
    condition = _support.ready(_support.statuses(run)["app"])
    assert condition["reason"] == "AuthError"
    assert "<redacted>" in condition["message"] or "DENIED" in condition["message"]
    _check(run, st.workdir, _known(st))


FAILURES = [
    ("wrong-git-token", {"git_password": GIT_TOKEN}, {}, "GitError"),
    ("wrong-registry-password", {"registry_password": REGISTRY_WRONG}, {}, "AuthError"),
    (
        "userinfo-in-url-path",
        {},
        {"git_url": "http://user:1234/{secret}@127.0.0.1/x.git"},
        "InvalidSpec",
    ),
    ("userinfo-in-url", {}, {"git_url": "https://user:{secret}@127.0.0.1/x.git"}, "InvalidSpec"),
    ("ssh-key-on-https-url", {"ssh": True}, {}, "GitError"),
]


@pytest.mark.parametrize(
    ("secrets", "spec", "reason"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_every_failure_path_keeps_secrets_in_their_secret(
    stage: Callable[..., _support.Stage],
    secrets: dict[str, Any],
    spec: dict[str, str],
    reason: str,
    request: pytest.FixtureRequest,
) -> None:
    st = stage()
    st.write_secrets(secrets.get("git_password"), secrets.get("registry_password"))
    if secrets.get("ssh"):
        docs = list(yaml.safe_load_all(st.secrets.read_text("utf-8")))
        docs[1]["stringData"] = {"identity": SSH_KEY, "known_hosts": "127.0.0.1 ssh-ed25519 AAAA"}
        _secrets_file(st.secrets, docs)
    overrides: dict[str, Any] = {}
    if "git_url" in spec:
        overrides["git"] = {**st.spec()["git"], "url": spec["git_url"].format(secret=GIT_TOKEN)}
    st.write_crs(_support.promotion("app", **st.spec(**overrides)))
    run = st.promote("-vv", "--output", "json", measure=("secrets", request.node.callspec.id))
    assert run.returncode == 1, run.text[-2000:]
    condition = _support.ready(_support.statuses(run)["app"])
    assert condition["reason"] == reason, condition
    if "git_url" in spec:
        assert "git.secretRef" in condition["message"]
    _check(run, st.workdir, _known(st))


class _DictSecrets:
    def __init__(self, data: dict[tuple[str, str], dict[str, str]]) -> None:
        self.data = data

    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.data.get((namespace, name))


@pytest.mark.parametrize("body", [b[1] for b in HOSTILE_BODIES], ids=[b[0] for b in HOSTILE_BODIES])
async def test_reconcile_status_carries_no_echoed_registry_password(
    stage: Callable[..., _support.Stage], body: Callable[[str, str], str], tmp_path: Path
) -> None:
    st = stage()
    text = body(st.reg.username, st.reg.password)
    st.proxy.add(
        "status",
        path=r"/tags/list",
        status=403,
        body=json.dumps({"errors": [{"code": "DENIED", "message": text}]}).encode(),
        times=20,
    )
    reader = client.RegistryClient(retries=0)
    secrets = _DictSecrets(
        {
            ("gitops", "pull"): {"username": st.reg.username, "password": st.reg.password},
            ("gitops", "push"): {"username": st.git.username, "password": st.git.password},
        }
    )
    try:
        result = await reconcile.reconcile(
            reconcile.Resource(name="app", namespace="gitops", spec=st.spec()),
            registry=reader,
            git=writer.GitWriter(tmp_path / "w"),
            secrets=secrets,
            now=lambda: datetime.now(UTC),
        )
    finally:
        await reader.aclose()
    assert result.outcome.reason == "AuthError"
    assert _support.leaks([json.dumps(result.status)], [(st.reg.username, st.reg.password)]) == []


async def test_reconcile_status_carries_no_git_token(
    stage: Callable[..., _support.Stage], tmp_path: Path
) -> None:
    st = stage()
    reader = client.RegistryClient()
    secrets = _DictSecrets(
        {
            ("gitops", "pull"): {"username": st.reg.username, "password": st.reg.password},
            ("gitops", "push"): {"username": st.git.username, "password": GIT_TOKEN},
        }
    )
    try:
        result = await reconcile.reconcile(
            reconcile.Resource(name="app", namespace="gitops", spec=st.spec()),
            registry=reader,
            git=writer.GitWriter(tmp_path / "w"),
            secrets=secrets,
            now=lambda: datetime.now(UTC),
        )
    finally:
        await reader.aclose()
    assert result.outcome.reason == "GitError"
    assert (
        _support.leaks(
            [json.dumps(result.status), *_support.files_text(tmp_path / "w")],
            [(st.git.username, GIT_TOKEN)],
        )
        == []
    )
