# ruff: noqa: E501  (the case tables read best one case per line)
"""`imagepromoter import`: the peers' own examples translated, checked, and promoted for real.

Inputs are in tests/fixtures/import/ (the Flux and Argo CD Image Updater documentation examples
and e2e fixtures, written out as our data; each file's header names its source and commit). The
expected output of each is in tests/golden/import/ (reviewed by hand: every NOTE is a setting that
does not map exactly). Every translated CR must pass the CRD's schema and CEL rule; those without
a "fix before applying" note must also pass spec.parse. Two translations are then promoted end to
end with `imagepromoter promote` on the real registry and git server: the Flux example (markers)
and the Argo CD Image Updater git/kustomization example (kustomizeImage).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import cli, spec
from imagepromoter import imports as common
from imagepromoter.imports import argocd, flux, translate
from tests.servers import git_http, registry
from tests.test_crd import problems

FIXTURES = Path(__file__).parent / "fixtures" / "import"
GOLDEN = Path(__file__).parent / "golden" / "import"

EXPECTED = [
    ("flux-update-automation.yaml", cli.EXIT_READY, ["podinfo-policy"]),
    ("flux-policies.yaml", cli.EXIT_INEXACT, ["podinfo", "podinfo-rc", "minio", "podinfo-numerical"]),
    ("argocd-e2e-001-kustomize.yaml", cli.EXIT_INEXACT, ["image-updater-001-test"]),
    ("argocd-e2e-007-git-kustomization.yaml", cli.EXIT_INEXACT, ["image-updater-007-test"]),
    ("argocd-migration-annotations.yaml", cli.EXIT_INEXACT, ["production-app-nginx", "production-app-redis", "staging-app-nginx"]),
    ("argocd-sample-imageupdater.yaml", cli.EXIT_INEXACT, None),
]  # fmt: skip


def test_every_fixture_is_in_the_table() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.yaml")) == sorted(n for n, _, _ in EXPECTED)


@pytest.mark.parametrize(("name", "code", "names"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_fixture_translates_as_reviewed(
    name: str, code: int, names: list[str] | None, tmp_path: Path
) -> None:
    out = tmp_path / "out.yaml"
    assert cli.main(["import", str(FIXTURES / name), "--output", str(out)]) == code
    assert out.read_bytes() == (GOLDEN / name).read_bytes()
    docs = list(yaml.safe_load_all(out.read_text("utf-8")))
    if names is not None:
        assert [d["metadata"]["name"] for d in docs] == names
    assert len({(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs}) == len(docs)
    for doc in docs:
        assert problems(doc) == [], doc["metadata"]["name"]


@pytest.mark.parametrize("name", [e[0] for e in EXPECTED])
def test_rendered_yaml_is_the_translation(name: str) -> None:
    """The emitter writes exactly the data (comments aside), and notes sit above their fields."""
    docs = list(yaml.safe_load_all((FIXTURES / name).read_text("utf-8")))
    translations = translate.translate([d for d in docs if d and translate.relevant(d)])
    rendered = common.render(translations)
    assert list(yaml.safe_load_all(rendered)) == [t.manifest() for t in translations]
    for translation in translations:
        if translation.valid:
            spec.parse(translation.spec)
        else:
            assert not translation.exact
    assert rendered.count("# NOTE") >= sum(len(t.notes) for t in translations)


def test_exact_means_no_note() -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "flux-update-automation.yaml").read_text()))
    [translation] = translate.translate(docs)
    assert translation.exact and translation.notes == []
    assert translation.spec["targets"] == [{"path": ".", "markers": True}]
    assert "# exact translation" in common.render([translation])


def test_a_kubectl_list_is_unpacked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "flux-update-automation.yaml").read_text()))
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs}))
    assert cli.main(["import", str(listed)]) == cli.EXIT_READY
    assert capsys.readouterr().out == (GOLDEN / "flux-update-automation.yaml").read_text()


def test_names_from_the_input_cannot_break_out_of_a_comment() -> None:
    translation = common.Translation(
        name="x", namespace="y", spec={"image": "a"}, source="policy a\nkind: Secret\u2028b"
    )
    translation.note(("image",), "line one\nevil: true\r\x85more")
    rendered = common.render([translation])
    assert list(yaml.safe_load_all(rendered)) == [translation.manifest()]
    assert all(line.startswith(("#", " ", "---", "apiVersion", "kind", "metadata", "spec")) for line in rendered.splitlines())


# --- the usage exit code ---------------------------------------------------------------------


def test_no_relevant_objects_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert cli.main(["import", str(path)]) == cli.EXIT_USAGE
    assert "no Flux ImagePolicy" in capsys.readouterr().err


def test_missing_file_and_bad_yaml_are_usage_errors(tmp_path: Path) -> None:
    assert cli.main(["import", str(tmp_path / "missing.yaml")]) == cli.EXIT_USAGE
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    assert cli.main(["import", str(bad)]) == cli.EXIT_USAGE


# --- single settings -------------------------------------------------------------------------


def _flux(policy: dict[str, Any], repository: dict[str, Any] | None = None, **automation: Any) -> common.Translation:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "image.toolkit.fluxcd.io/v1",
            "kind": "ImagePolicy",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"imageRepositoryRef": {"name": "app"}, **policy},
        },
        {
            "apiVersion": "image.toolkit.fluxcd.io/v1beta2",
            "kind": "ImageRepository",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"image": "ghcr.io/o/app", "interval": "5m", **(repository or {})},
        },
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "repo", "namespace": "ns"},
            "spec": {"url": "https://git.example/o/r.git", "ref": {"branch": "main"}, "secretRef": {"name": "git"}},
        },
        {
            "apiVersion": "image.toolkit.fluxcd.io/v1",
            "kind": "ImageUpdateAutomation",
            "metadata": {"name": "auto", "namespace": "ns"},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "repo"}, "update": {"path": "./clusters/dev"}, **automation},
        },
    ]
    [translation] = flux.translate(docs)
    return translation


FLUX_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], str]] = [
    ("semver", {"policy": {"semver": {"range": ">=1.0.0 <2.0.0"}}}, {}, {}, {"policy": "semver", "semverRange": ">=1.0.0 <2.0.0"}, ""),
    ("extract-renamed", {"filterTags": {"pattern": "^main-[a-f0-9]+-(?P<ts>[0-9]+)", "extract": "$ts"}, "policy": {"numerical": {"order": "asc"}}}, {}, {}, {"tagRegex": "(?:^main-[a-f0-9]+-(?P<version>[0-9]+)).*$"}, "floating-point"),
    ("extract-braces", {"filterTags": {"pattern": "^v(?P<v>.*)$", "extract": "${v}"}, "policy": {"alphabetical": {}}}, {}, {}, {"tagRegex": "^v(?P<version>.*)$"}, ""),
    ("extract-composite", {"filterTags": {"pattern": "^(?P<a>\\d+)-(?P<b>\\d+)$", "extract": "$a$b"}, "policy": {"alphabetical": {}}}, {}, {}, {}, "is not one named group"),
    ("alphabetical-desc", {"policy": {"alphabetical": {"order": "desc"}}}, {}, {}, {"policy": "alphabetical"}, "order: desc"),
    ("exclusions", {"policy": {"semver": {"range": "1.x"}}}, {"exclusionList": ["^.*-debug$"]}, {}, {"excludeTags": ["^.*-debug$"]}, ""),
    ("pull-secret", {"policy": {"semver": {"range": "1.x"}}}, {"secretRef": {"name": "regcred"}}, {}, {"imagePullSecret": "regcred"}, ""),
    ("provider", {"policy": {"semver": {"range": "1.x"}}}, {"provider": "aws"}, {}, {}, "provider aws"),
    ("go-duration", {"policy": {"semver": {"range": "1.x"}}}, {"interval": "1.5h"}, {}, {}, "not an h/m/s duration"),
    ("go-message", {"policy": {"semver": {"range": "1.x"}}}, {}, {"git": {"commit": {"messageTemplate": "Update {{range .Changed.Changes}}{{end}}"}}}, {}, "Go messageTemplate"),
    ("plain-message", {"policy": {"semver": {"range": "1.x"}}}, {}, {"git": {"commit": {"messageTemplate": "chore: bump images"}}}, {"git": {"url": "https://git.example/o/r.git", "branch": "main", "secretRef": "git", "commitMessage": "chore: bump images"}}, ""),
    ("push-branch", {"policy": {"semver": {"range": "1.x"}}}, {}, {"git": {"push": {"branch": "image-updates"}}}, {"git": {"url": "https://git.example/o/r.git", "branch": "main", "secretRef": "git", "pushBranch": "image-updates"}}, ""),
    ("checkout-tag", {"policy": {"semver": {"range": "1.x"}}}, {}, {"git": {"checkout": {"ref": {"tag": "v1"}}}}, {}, "checkout of a tag"),
    ("digest-always", {"policy": {"semver": {"range": "1.x"}}, "digestReflectionPolicy": "Always"}, {}, {}, {"targets": [{"path": "clusters/dev", "markers": True, "value": "${image}:${tag}@${digest}"}]}, ""),
    ("selector-miss", {"policy": {"semver": {"range": "1.x"}}}, {}, {"policySelector": {"matchLabels": {"team": "b"}}}, {"targets": [{"path": ".", "markers": True}]}, "no ImageUpdateAutomation"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "policy", "repository", "automation", "expect", "note"), FLUX_CASES, ids=[c[0] for c in FLUX_CASES])
def test_flux_settings(name: str, policy: dict[str, Any], repository: dict[str, Any], automation: dict[str, Any], expect: dict[str, Any], note: str) -> None:  # fmt: skip
    translation = _flux(policy, repository, **automation)
    for key, value in expect.items():
        assert translation.spec[key] == value, key
    notes = " | ".join(n.text for n in translation.notes)
    assert (note in notes) if note else not notes, notes
    assert problems(translation.manifest()) == []


def _app(annotations: dict[str, str], **source: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": "web",
            "namespace": "argocd",
            "annotations": {f"argocd-image-updater.argoproj.io/{k}": v for k, v in annotations.items()},
        },
        "spec": {"source": {"repoURL": "https://git.example/o/r.git", "path": "apps/web", "targetRevision": "main", **source}},
    }


GIT = {"write-back-method": "git:secret:argocd/git-creds", "write-back-target": "kustomization"}
ARGO_CASES: list[tuple[str, dict[str, str], dict[str, Any], dict[str, Any], str]] = [
    ("kustomize-exact", {"image-list": "web=ghcr.io/o/web:~1.2", **GIT}, {}, {"semverRange": "~1.2", "git": {"url": "https://git.example/o/r.git", "secretRef": "git-creds", "branch": "main"}, "targets": [{"path": "apps/web/kustomization.yaml", "kustomizeImage": "ghcr.io/o/web"}]}, ""),
    ("kustomize-image-name", {"image-list": "web=ghcr.io/o/web", "web.kustomize.image-name": "quay.io/o/web", **GIT}, {}, {"targets": [{"path": "apps/web/kustomization.yaml", "kustomizeImage": "quay.io/o/web"}]}, ""),
    ("kustomization-path", {"image-list": "web=ghcr.io/o/web", "write-back-method": "git:secret:argocd/git-creds", "write-back-target": "kustomization:../../base"}, {}, {"targets": [{"path": "base/kustomization.yaml", "kustomizeImage": "ghcr.io/o/web"}]}, ""),
    ("helm-keys", {"image-list": "web=ghcr.io/o/web", "web.helm.image-name": "web.repo", "web.helm.image-tag": "web.tag", "write-back-method": "git:secret:argocd/git-creds", "write-back-target": "helmvalues:/env/dev/values.yaml"}, {}, {"targets": [{"path": "env/dev/values.yaml", "key": "web.repo", "value": "${image}"}, {"path": "env/dev/values.yaml", "key": "web.tag", "value": "${tag}"}]}, ""),
    ("helm-spec", {"image-list": "web=ghcr.io/o/web", "web.helm.image-spec": "web.image", "write-back-method": "git:secret:argocd/git-creds", "write-back-target": "helmvalues:values.yaml"}, {"helm": {}}, {"targets": [{"path": "apps/web/values.yaml", "key": "web.image", "value": "${image}:${tag}"}]}, ""),
    ("strategies", {"image-list": "a=ghcr.io/o/web", "a.update-strategy": "newest-build", **GIT}, {}, {"policy": "newest"}, ""),
    ("allow-and-ignore", {"image-list": "ghcr.io/o/web", "allow-tags": "regexp:^v[0-9]+", "ignore-tags": "v1*, *-rc?", **GIT}, {}, {"tagRegex": "(?:^v[0-9]+).*$", "excludeTags": ["^v1.*$", "^.*\\-rc.$"]}, ""),
    ("digest", {"image-list": "web=ghcr.io/o/web:latest", "web.update-strategy": "digest", **GIT}, {}, {"tagRegex": "^latest$", "targets": [{"path": "apps/web/kustomization.yaml", "kustomizeImage": "ghcr.io/o/web", "value": "${digest}"}]}, "digest strategy"),
    ("platforms", {"image-list": "web=ghcr.io/o/web", "web.platforms": "linux/arm64", **GIT}, {}, {}, "platforms"),
    ("pull-secret-here", {"image-list": "web=ghcr.io/o/web", "web.pull-secret": "pullsecret:argocd/regcred", **GIT}, {}, {"imagePullSecret": "regcred"}, ""),
    ("pull-secret-there", {"image-list": "web=ghcr.io/o/web", "web.pull-secret": "pullsecret:other/regcred", **GIT}, {}, {"imagePullSecret": "regcred"}, "copy the Secret other/regcred"),
    ("argocd-method", {"image-list": "web=ghcr.io/o/web"}, {}, {}, "write-back method argocd"),
    ("branches", {"image-list": "web=ghcr.io/o/web", "git-branch": "main:image-updates", **GIT}, {}, {"git": {"url": "https://git.example/o/r.git", "secretRef": "git-creds", "branch": "main", "pushBranch": "image-updates"}}, ""),
    ("helm-value-files", {"image-list": "web=ghcr.io/o/web", "web.helm.image-tag": "web.tag", "write-back-method": "git:secret:argocd/git-creds"}, {"helm": {"valueFiles": ["values-dev.yaml"]}}, {"targets": [{"path": "apps/web/values-dev.yaml", "key": "image.name", "value": "${image}"}, {"path": "apps/web/values-dev.yaml", "key": "web.tag", "value": "${tag}"}]}, "the chart's values-dev.yaml is edited instead"),
    ("http-with-secret", {"image-list": "web=ghcr.io/o/web", **GIT}, {"repoURL": "http://gitea.local/o/r.git"}, {"git": {"url": "http://gitea.local/o/r.git", "secretRef": "git-creds", "branch": "main", "insecure": True}}, "plain http://"),
    ("branch-template", {"image-list": "web=ghcr.io/o/web", "git-branch": "main:up-{{.SHA256}}", **GIT}, {}, {}, "branch template"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "annotations", "source", "expect", "note"), ARGO_CASES, ids=[c[0] for c in ARGO_CASES])
def test_argocd_annotations(name: str, annotations: dict[str, str], source: dict[str, Any], expect: dict[str, Any], note: str) -> None:  # fmt: skip
    [translation] = argocd.translate([_app(annotations, **source)])
    for key, value in expect.items():
        assert translation.spec[key] == value, key
    notes = " | ".join(n.text for n in translation.notes)
    assert (note in notes) if note else not notes, notes
    assert problems(translation.manifest()) == []


def test_argocd_cr_settings_precedence() -> None:
    cr = {
        "apiVersion": "argocd-image-updater.argoproj.io/v1alpha1",
        "kind": "ImageUpdater",
        "metadata": {"name": "u", "namespace": "argocd"},
        "spec": {
            "commonUpdateSettings": {"updateStrategy": "alphabetical", "ignoreTags": ["latest"]},
            "writeBackConfig": {"method": "git:secret:git-creds", "gitConfig": {"writeBackTarget": "kustomization"}},
            "applicationRefs": [
                {
                    "namePattern": "w*",
                    "commonUpdateSettings": {"updateStrategy": "newest-build"},
                    "images": [
                        {"alias": "a", "imageName": "ghcr.io/o/a"},
                        {"alias": "b", "imageName": "ghcr.io/o/b:1.x", "commonUpdateSettings": {"updateStrategy": "semver"}},
                    ],
                }
            ],
        },
    }  # fmt: skip
    a, b = translate.translate([cr, _app({})])
    assert (a.name, a.spec["policy"], a.spec["excludeTags"]) == ("web-a", "newest", ["^latest$"])
    assert (b.name, b.spec["policy"], b.spec["semverRange"]) == ("web-b", "semver", "1.x")
    assert a.exact and b.exact, [n.text for n in a.notes + b.notes]
    assert a.spec["git"] == {"url": "https://git.example/o/r.git", "secretRef": "git-creds", "branch": "main"}


@pytest.mark.parametrize(
    ("glob", "regex"),
    [("latest", "^latest$"), ("*-rc*", "^.*\\-rc.*$"), ("v1.?", "^v1\\..$"), ("[!a]x", "^[^a]x$"), ("a[bc]", "^a[bc]$")],
)  # fmt: skip
def test_glob_regex(glob: str, regex: str) -> None:
    assert common.glob_regex(glob) == regex


@pytest.mark.parametrize(
    ("pattern", "regex"),
    [("^a$", "^a$"), ("^a", "(?:^a).*$"), ("a$", "^.*?(?:a$)"), ("a", "^.*?(?:a).*$"), ("a\\$", "^.*?(?:a\\$).*$")],
)  # fmt: skip
def test_search_regex(pattern: str, regex: str) -> None:
    assert common.search_regex(pattern) == regex


# --- end to end on the real servers -----------------------------------------------------------



MARKED_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  template:
    spec:
      containers:
      - name: podinfod
        image: {image}:5.0.0 # {{"$imagepolicy": "default:podinfo-policy"}}
"""

KUSTOMIZATION = """\
resources:
  - deployment.yaml
images:
  - name: {image}
    newTag: 1.0.0  # set by the image updater
"""


def _secrets(tmp_path: Path, reg: registry.RegistryServer, git: git_http.GitHttpServer, namespace: str) -> Path:
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "pull", "namespace": namespace},
            "stringData": {".dockerconfigjson": json.dumps({"auths": {reg.host: {"auth": auth}}})},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "push", "namespace": namespace},
            "stringData": {"username": git.username, "password": git.password},
        },
    ]
    path = tmp_path / "secrets.yaml"
    path.write_text(yaml.safe_dump_all(docs), "utf-8")
    return path


def _imported(tmp_path: Path, fixture: str) -> list[dict[str, Any]]:
    out = tmp_path / "imported.yaml"
    cli.main(["import", str(FIXTURES / fixture), "--output", str(out)])
    return list(yaml.safe_load_all(out.read_text("utf-8")))


@pytest.mark.servers
def test_flux_example_promotes_end_to_end(
    tmp_path: Path,
    registry_token: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
) -> None:
    """The Flux docs' example, imported, promotes 5.0.x into the marked files of the repository."""
    registry_token.push_image(repo_name, tags=["5.0.0", "5.0.3", "5.1.0", "5.0.3.sig", "latest"])
    image = f"{registry_token.host}/{repo_name}"
    deployment = MARKED_DEPLOYMENT.format(image=image)
    url = git_http_server.create_repo(
        "import-flux",
        {"apps/podinfo/deployment.yaml": deployment, "apps/other.yaml": "a: 1\n", "README.md": "x\n"},
        symlinks={"apps/link.yaml": "../README.md"},
    )
    [cr] = _imported(tmp_path, "flux-update-automation.yaml")
    # what a user does with the output: point it at their registry mirror and git server
    cr["spec"].update(image=image, insecure=True, imagePullSecret="pull")
    cr["spec"]["git"].update(url=url, secretRef="push", insecure=True)  # a local http server
    crs = tmp_path / "crs.yaml"
    crs.write_text(yaml.safe_dump(cr), "utf-8")
    secrets = _secrets(tmp_path, registry_token, git_http_server, "default")
    code = cli.main(["promote", str(crs), "--secrets", str(secrets), "--workdir", str(tmp_path / "w")])
    assert code == cli.EXIT_READY
    bare = git_http_server.repo_path("import-flux")
    assert git_http.read_file(bare, "main", "apps/podinfo/deployment.yaml").decode() == deployment.replace(":5.0.0 #", ":5.0.3 #")
    assert git_http.log(bare, "main", "%an <%ae>")[0] == "fluxcdbot <fluxcdbot@users.noreply.github.com>"


@pytest.mark.servers
def test_argocd_git_kustomization_example_promotes_end_to_end(
    tmp_path: Path,
    registry_token: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
) -> None:
    """Argo CD Image Updater's e2e 007 (git write-back, kustomization), imported and promoted."""
    registry_token.push_image(repo_name, tags=["1.0.0", "1.0.2", "1.1.0", "2.0.0"])
    image = f"{registry_token.host}/{repo_name}"
    kustomization = KUSTOMIZATION.format(image=image)
    url = git_http_server.create_repo(
        "import-argocd",
        {"001-simple-kustomize-app/kustomization.yaml": kustomization, "001-simple-kustomize-app/deployment.yaml": "kind: Deployment\n"},
        branch="master",
    )
    [cr] = _imported(tmp_path, "argocd-e2e-007-git-kustomization.yaml")
    assert cr["spec"]["semverRange"] == "1.X.X"
    cr["spec"].update(image=image, insecure=True, imagePullSecret="pull")
    cr["spec"]["git"].update(url=url, secretRef="push", insecure=True)  # a local http server
    cr["spec"]["targets"][0]["kustomizeImage"] = image
    crs = tmp_path / "crs.yaml"
    crs.write_text(yaml.safe_dump(cr), "utf-8")
    secrets = _secrets(tmp_path, registry_token, git_http_server, cr["metadata"]["namespace"])
    code = cli.main(["promote", str(crs), "--secrets", str(secrets), "--workdir", str(tmp_path / "w")])
    assert code == cli.EXIT_READY
    bare = git_http_server.repo_path("import-argocd")
    after = git_http.read_file(bare, "master", "001-simple-kustomize-app/kustomization.yaml").decode()
    assert after == kustomization.replace("newTag: 1.0.0 ", "newTag: 1.1.0 ")


# --- every valid translation of every fixture, promoted on the real servers ------------------

# One tag for every choice the fixtures make (ranges 5.0.x, 5.1.x, 1.X.X, 1.1.0, 1.17.10, 1.20,
# seven hex digits, RELEASE.<time>Z, the digest strategy's `latest`, and anything semver/newest).
POOL = ["5.0.3", "5.1.2", "1.0.2", "1.1.0", "1.17.10", "1.20", "a1b2c3d", "latest",
        "RELEASE.2024-01-02T03-04-05Z", "7"]  # fmt: skip


# The documented sample combines the semver strategy with allowTags ^[0-9a-f]{7}$: no tag can be
# both, in Image Updater as here, so these translations end NoMatchingTag, faithfully.
NO_TAG_CAN_QUALIFY = {
    "argocd-sample-imageupdater.yaml": {
        "argocd-image-updater-sample-test1",
        "argocd-image-updater-sample-nginx",
        "argocd-image-updater-sample-nginx-2",
    }
}


def _files_for(cr: dict[str, Any]) -> dict[str, str]:
    """A repository holding what each target of `cr` needs, before any promotion."""
    files: dict[str, Any] = {}
    namespace, name = cr["metadata"]["namespace"], cr["metadata"]["name"]
    for target in cr["spec"]["targets"]:
        path = target["path"]
        if target.get("markers"):
            folder = "" if path == "." else f"{path}/"
            files[f"{folder}app.yaml"] = (
                f'image: old:0 # {{"$imagepolicy": "{namespace}:{name}"}}\n'
            )
        elif "kustomizeImage" in target:
            field = "digest" if target.get("value") == "${digest}" else "newTag"
            files[path] = yaml.safe_dump({"images": [{"name": target["kustomizeImage"], field: "0"}]})
        else:
            data = files.setdefault(path, {})
            node = data
            *parents, last = (str(s) for s in spec.key_segments(target["key"]))
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = "0"
    return {p: v if isinstance(v, str) else yaml.safe_dump(v) for p, v in files.items()}


@pytest.mark.servers
@pytest.mark.parametrize("fixture", [e[0] for e in EXPECTED])
def test_every_valid_translation_promotes_end_to_end(
    fixture: str,
    tmp_path: Path,
    registry_token: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
) -> None:
    """Each translated CR, pointed at the local servers, ends Ready=True (Promoted).

    Pointing it there replaces the image, the pull Secret and the git URL and Secret, which is
    also what a user does with a placeholder we noted; a CR our spec still rejects after that
    (a range our grammar does not read) must be one the translation marked invalid.
    """
    registry_token.push_image(repo_name, tags=POOL)
    docs = list(yaml.safe_load_all((FIXTURES / fixture).read_text("utf-8")))
    translations = translate.translate([d for d in docs if d and translate.relevant(d)])
    crs, namespaces = [], set()
    for number, translation in enumerate(translations):
        cr = translation.manifest()
        cr["spec"].update(
            image=f"{registry_token.host}/{repo_name}", insecure=True, imagePullSecret="pull"
        )
        cr["spec"]["git"].update(url="https://example.com/x.git", secretRef="push")
        try:
            spec.parse(cr["spec"])
        except spec.SpecErrors:
            assert not translation.valid, cr["metadata"]["name"]
            continue
        repo = f"every-{fixture.removesuffix('.yaml')}-{number}"
        branch = cr["spec"]["git"].get("branch", "main")
        url = git_http_server.create_repo(repo, _files_for(cr), branch=branch)
        cr["spec"]["git"].update(url=url, secretRef="push", insecure=True)  # a local http server
        crs.append(cr)
        namespaces.add(cr["metadata"]["namespace"])
    assert crs, "no translation of this fixture is runnable"
    path = tmp_path / "crs.yaml"
    path.write_text(yaml.safe_dump_all(crs), "utf-8")
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        "---\n".join(
            _secrets(tmp_path, registry_token, git_http_server, ns).read_text() for ns in namespaces
        ),
        "utf-8",
    )
    out = tmp_path / "status.json"
    argv = ["promote", str(path), "--secrets", str(secrets), "--workdir", str(tmp_path / "w")]
    code = _run_json(argv, out)
    statuses = {e["name"]: e["status"] for e in json.loads(out.read_text())}
    not_ready = {
        name: [c["message"] for c in status["conditions"]]
        for name, status in statuses.items()
        if status["conditions"][0]["status"] != "True"
    }
    expected = NO_TAG_CAN_QUALIFY.get(fixture, set())
    assert set(not_ready) == expected, not_ready
    assert all("is not a version" in m[0] for n, m in not_ready.items()), not_ready
    assert code == (cli.EXIT_NOT_READY if expected else cli.EXIT_READY)
    promoted = [s for n, s in statuses.items() if n not in expected]
    assert promoted and all(s["conditions"][0]["reason"] == "Promoted" for s in promoted)


def _run_json(argv: list[str], out: Path) -> int:
    """Run `imagepromoter promote ... -o json`, the JSON written to `out`."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main([*argv, "--output", "json"])
    out.write_text(buffer.getvalue(), "utf-8")
    return code
