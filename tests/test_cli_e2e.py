"""`imagepromoter promote` end to end: a real token-auth registry and a real smart-HTTP git server.

The command runs in-process through `cli.main`, exactly as the console script does; the git CLI
is used only to set up and to verify what reached the server.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import cli
from tests.servers import git_http, registry

pytestmark = pytest.mark.servers

DEV_VALUES = """\
# dev values (comments, quoting and order must survive)
image:
  repository: ghcr.io/myorg/myapp
  tag: "0.9.0-dev"   # promoted
replicas: 1
"""

PROD_VALUES = """\
image: {repository: ghcr.io/myorg/myapp, tag: 0.9.0-stable}
replicas: 3
"""


def cr(name: str, suffix: str, path: str, image: str, git_url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": name, "namespace": "gitops"},
        "spec": {
            "image": image,
            "insecure": True,
            "imagePullSecret": "pull",
            "tagRegex": rf"^(?P<version>\d+\.\d+\.\d+)-{suffix}$",
            "git": {"url": git_url, "insecure": True, "branch": "main", "secretRef": "push"},
            "targets": [{"path": path, "key": "image.tag"}],
            **spec,
        },
    }


def secrets(reg: registry.RegistryServer, git_user: str, git_password: str) -> list[Any]:
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "pull", "namespace": "gitops"},
            "stringData": {".dockerconfigjson": json.dumps({"auths": {reg.host: {"auth": auth}}})},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "push", "namespace": "gitops"},
            "stringData": {"username": git_user, "password": git_password},
        },
    ]


class Scenario:
    """Two CRs (dev, prod) on one repository, files written where `promote` reads them."""

    def __init__(
        self,
        tmp_path: Path,
        reg: registry.RegistryServer,
        git: git_http.GitHttpServer,
        repo_name: str,
        request: pytest.FixtureRequest,
    ) -> None:
        self.reg, self.git = reg, git
        self.repo_id = f"cli-{request.node.name.replace('[', '-').replace(']', '')}"
        self.git_url = git.create_repo(
            self.repo_id,
            {"env/dev/values.yaml": DEV_VALUES, "env/prod/values.yaml": PROD_VALUES},
        )
        self.bare = git.repo_path(self.repo_id)
        self.image = f"{reg.host}/{repo_name}"
        self.repository = repo_name
        self.crs = tmp_path / "crs.yaml"
        self.secrets = tmp_path / "secrets.yaml"
        self.workdir = tmp_path / "work"
        self.write_crs()
        self.write_secrets(git.password)

    def write_crs(self, **spec: Any) -> None:
        docs = [
            cr("app-dev", "dev", "env/dev/values.yaml", self.image, self.git_url, **spec),
            cr("app-prod", "stable", "env/prod/values.yaml", self.image, self.git_url, **spec),
        ]
        self.crs.write_text(yaml.safe_dump_all(docs), "utf-8")

    def write_secrets(self, git_password: str) -> None:
        docs = secrets(self.reg, self.git.username, git_password)
        self.secrets.write_text(yaml.safe_dump_all(docs), "utf-8")

    def promote(self, *extra: str) -> int:
        return cli.main(
            [
                "promote",
                str(self.crs),
                "--secrets",
                str(self.secrets),
                "--workdir",
                str(self.workdir),
                *extra,
            ]
        )

    def file(self, path: str) -> bytes:
        return git_http.read_file(self.bare, "main", path)

    def commits(self) -> list[str]:
        return git_http.log(self.bare, "main")


@pytest.fixture
def scenario(
    tmp_path: Path,
    registry_token: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
    request: pytest.FixtureRequest,
) -> Scenario:
    registry_token.push_image(
        repo_name, tags=["1.0.0-dev", "1.2.0-dev", "1.1.0-dev", "1.0.0-stable", "latest"]
    )
    return Scenario(tmp_path, registry_token, git_http_server, repo_name, request)


def test_two_crs_on_one_repository_promote_as_two_commits(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scenario.promote("--output", "json") == cli.EXIT_READY
    out = json.loads(capsys.readouterr().out)
    assert [(e["name"], e["status"]["conditions"][0]["reason"]) for e in out] == [
        ("app-dev", "Promoted"),
        ("app-prod", "Promoted"),
    ]
    assert (
        scenario.file("env/dev/values.yaml")
        == DEV_VALUES.replace("0.9.0-dev", "1.2.0-dev").encode()
    )
    assert (
        scenario.file("env/prod/values.yaml")
        == PROD_VALUES.replace("0.9.0-stable", "1.0.0-stable").encode()
    )
    assert len(scenario.commits()) == 3  # seed + one per CR, neither pushed over the other
    shas = {e["status"]["lastCommit"] for e in out}
    assert shas <= {line.split()[0] for line in scenario.commits()}
    assert all(e["status"]["latestDigest"].startswith("sha256:") for e in out)


def test_second_run_on_an_unchanged_registry_changes_nothing(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scenario.promote() == cli.EXIT_READY
    before = scenario.commits()
    capsys.readouterr()
    assert scenario.promote() == cli.EXIT_READY
    assert "UpToDate" in capsys.readouterr().out
    assert scenario.commits() == before


def test_a_new_tag_promotes_only_the_environment_it_matches(scenario: Scenario) -> None:
    assert scenario.promote() == cli.EXIT_READY
    prod_before = scenario.file("env/prod/values.yaml")
    scenario.reg.push_image(scenario.repository, tags=["1.3.0-dev"])
    assert scenario.promote() == cli.EXIT_READY
    assert b'"1.3.0-dev"' in scenario.file("env/dev/values.yaml")
    assert scenario.file("env/prod/values.yaml") == prod_before
    assert len(scenario.commits()) == 4


def test_dry_run_prints_the_diff_and_pushes_nothing(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    before = scenario.commits()
    assert scenario.promote("--dry-run") == cli.EXIT_READY
    out = capsys.readouterr().out
    assert '-  tag: "0.9.0-dev"   # promoted' in out
    assert '+  tag: "1.2.0-dev"   # promoted' in out
    assert "+++ b/env/prod/values.yaml" in out
    assert scenario.commits() == before


def test_wrong_git_password_is_a_git_error_with_no_secret_anywhere(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "not-the-password-4711"
    scenario.write_secrets(wrong)
    assert scenario.promote("--output", "json") == cli.EXIT_NOT_READY
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert {e["status"]["conditions"][0]["reason"] for e in out} == {"GitError"}
    everything = captured.out + captured.err
    for secret in (wrong, scenario.reg.password):
        assert secret not in everything
    assert len(scenario.commits()) == 1


def test_private_image_without_pull_secret_is_an_auth_error(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario.write_crs(imagePullSecret="")
    assert scenario.promote() == cli.EXIT_NOT_READY
    out = capsys.readouterr().out
    assert "AuthError" in out
    assert "imagePullSecret" in out


@pytest.mark.parametrize(
    ("argv", "content"),
    [
        (["promote", "/nonexistent/cr.yaml"], None),
        (["promote", "{file}"], "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
        (["promote", "{file}"], "a: [unclosed"),
        (["promote", "{file}"], "a: \x00"),
        (
            ["promote", "{file}"],
            "apiVersion: imagepromoter.dev/v9\nkind: ImagePromotion\nmetadata: {name: x}\n",
        ),
        (
            ["promote", "{file}"],
            "apiVersion: imagepromoter.dev/v1alpha1\nkind: ImagePromotion\n"
            "metadata: {name: x}\n---\napiVersion: imagepromoter.dev/v1alpha1\n"
            "kind: ImagePromotion\nmetadata: {name: x}\n",
        ),
        (["promote", "{file}"], "[" * 5000),
    ],
    ids=["missing-file", "no-imagepromotion", "not-yaml", "nul", "api-version", "twice", "deep"],
)
def test_usage_errors_exit_2(
    tmp_path: Path, argv: list[str], content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "f.yaml"
    if content is not None:
        path.write_text(content, "utf-8")
    assert cli.main([a.replace("{file}", str(path)) for a in argv]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("imagepromoter: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    "status",
    [{"conditions": True}, {"conditions": [1, {"type": []}]}, [], "x", {"latestTag": ["a"]}],
    ids=["conditions-bool", "conditions-junk", "list", "string", "tag-a-list"],
)
def test_a_malformed_status_in_a_manifest_is_ignored(
    tmp_path: Path, status: object, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cr.yaml"
    doc = {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": "x", "namespace": "n"},
        "spec": {},
        "status": status,
    }
    path.write_text(yaml.safe_dump(doc), "utf-8")
    code = cli.main(["promote", str(path), "-o", "json", "--workdir", str(tmp_path / "w")])
    assert code == cli.EXIT_NOT_READY
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["status"]["conditions"][0]["reason"] == "InvalidSpec"


def test_json_output_is_redacted_string_by_string_and_stays_json() -> None:
    from imagepromoter import redact

    password = 'p"a\\ss\\"w0rd-quoted'
    secrets = redact.Redactor([password])
    data = [{"status": {"message": f"echo {password} and {json.dumps(password)}", "n": 1}}]
    text = json.dumps(cli._redacted(data, secrets))
    assert json.loads(text)[0]["status"]["n"] == 1
    assert "w0rd" not in text and "<redacted>" in text
