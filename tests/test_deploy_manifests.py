"""The deploy manifests (manifests/): `kubectl apply -k manifests/` installs everything, with
least-privilege RBAC and a hardened Deployment. (tests/test_manifests.py is about the manifest
files `imagepromoter promote` reads; this file is about installing the operator.)

`RBAC_NEEDED` is what the operator does against the API; tests/test_operator_e2e.py records the
requests Kopf and the handlers really make and checks each one against `allows` below.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import cli

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"


def kustomize(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The documents a kustomization lists, following directory resources (no patches used)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources"}, "only plain resources"
    for entry in kustomization["resources"]:
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory.name}/kustomization.yaml lists missing {entry}"
        if path.is_dir():
            yield from kustomize(path)
        else:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    yield str(path.relative_to(ROOT)), doc


DOCS = list(kustomize(MANIFESTS))
BY_KIND: dict[str, list[dict[str, Any]]] = {}
for _, _doc in DOCS:
    BY_KIND.setdefault(_doc["kind"], []).append(_doc)


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in BY_KIND.get(kind, []) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_every_yaml_file_is_listed() -> None:
    listed = {path for path, _ in DOCS}
    on_disk = {str(p.relative_to(ROOT)) for p in MANIFESTS.glob("*.yaml")}
    on_disk.discard("manifests/kustomization.yaml")
    assert on_disk <= listed


def test_installs_everything() -> None:
    assert {"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole",
            "ClusterRoleBinding", "Deployment", "Service"} <= set(BY_KIND)  # fmt: skip
    crds = {d["metadata"]["name"] for d in BY_KIND["CustomResourceDefinition"]}
    assert {"imagepromotions.imagepromoter.dev", "clusterkopfpeerings.kopf.dev"} <= crds


def test_every_document_is_well_formed() -> None:
    for path, doc in DOCS:
        assert doc.get("apiVersion") and doc.get("kind"), path
        assert doc.get("metadata", {}).get("name"), path


NAMESPACED = {"ServiceAccount", "Deployment", "Service", "RoleBinding", "Role"}


def test_namespaced_objects_live_in_the_operator_namespace() -> None:
    namespace = one("Namespace", "imagepromoter-system")["metadata"]["name"]
    for path, doc in DOCS:
        if doc["kind"] in NAMESPACED:
            assert doc["metadata"].get("namespace") == namespace, path


# --- RBAC ------------------------------------------------------------------------------------

RULES = one("ClusterRole", "imagepromoter")["rules"]
SECRETS_ROLE = one("ClusterRole", "imagepromoter-read-secrets")


def allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    """Whether RBAC `rules` allow `verb` on `group`/`resource` (resource may be 'x/status')."""
    return any(
        group in r.get("apiGroups", []) and resource in r.get("resources", [])
        and verb in r.get("verbs", [])
        for r in rules
    )  # fmt: skip


RBAC_NEEDED = [
    ("imagepromoter.dev", "imagepromotions", "list"),
    ("imagepromoter.dev", "imagepromotions", "watch"),
    ("imagepromoter.dev", "imagepromotions", "patch"),
    ("imagepromoter.dev", "imagepromotions/status", "patch"),
    ("", "events", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "list"),
    ("kopf.dev", "clusterkopfpeerings", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "patch"),
]


@pytest.mark.parametrize(("group", "resource", "verb"), RBAC_NEEDED,
                         ids=[f"{v}-{r}" for _, r, v in RBAC_NEEDED])  # fmt: skip
def test_rbac_allows_what_the_operator_does(group: str, resource: str, verb: str) -> None:
    assert allows(RULES, group, resource, verb)


RBAC_DENIED = [
    ("imagepromoter.dev", "imagepromotions", "create"),
    ("imagepromoter.dev", "imagepromotions", "delete"),
    ("", "secrets", "get"),
    ("", "secrets", "list"),
    ("", "events", "delete"),
    ("apps", "deployments", "get"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "create"),
]


@pytest.mark.parametrize(("group", "resource", "verb"), RBAC_DENIED,
                         ids=[f"{v}-{r or 'core'}" for _, r, v in RBAC_DENIED])  # fmt: skip
def test_rbac_denies_what_the_operator_never_does(group: str, resource: str, verb: str) -> None:
    assert not allows(RULES, group, resource, verb)


def test_no_wildcards_anywhere() -> None:
    for kind in ("ClusterRole", "Role"):
        for role in BY_KIND.get(kind, []):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(field, []), (role["metadata"]["name"], field)


def test_secrets_are_readable_only_where_bound_per_namespace() -> None:
    assert SECRETS_ROLE["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    ]
    for binding in BY_KIND.get("ClusterRoleBinding", []):
        assert binding["roleRef"]["name"] != "imagepromoter-read-secrets", "never cluster-wide"


def test_binding_targets_the_deployment_service_account() -> None:
    binding = one("ClusterRoleBinding", "imagepromoter")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "imagepromoter"
    }  # fmt: skip
    namespace = one("ServiceAccount", "imagepromoter")["metadata"]["namespace"]
    subject = {"kind": "ServiceAccount", "name": "imagepromoter", "namespace": namespace}
    assert binding["subjects"] == [subject]
    assert DEPLOYMENT_POD["serviceAccountName"] == "imagepromoter"


# --- Deployment --------------------------------------------------------------------------------

DEPLOYMENT = one("Deployment", "imagepromoter")
DEPLOYMENT_POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = DEPLOYMENT_POD["containers"][0]
RUN_ARGS = cli.build_parser().parse_args(["run", *CONTAINER.get("args", [])])


def test_deployment_is_hardened() -> None:
    pod_sc = DEPLOYMENT_POD["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = CONTAINER["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not DEPLOYMENT_POD.get("hostNetwork") and not sc.get("privileged")


def test_git_workspaces_are_on_an_empty_dir() -> None:
    env = {e["name"]: e["value"] for e in CONTAINER["env"]}
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    volumes = {v["name"]: v for v in DEPLOYMENT_POD["volumes"]}
    workdir = env["IMAGEPROMOTER_WORKDIR"]
    assert "emptyDir" in volumes[mounts[workdir]]
    assert "emptyDir" in volumes[mounts[env["HOME"]]]


def test_resources_are_bounded() -> None:
    resources = CONTAINER["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])


def test_probes_and_ports_match_the_operator_args() -> None:
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert ports["metrics"] == RUN_ARGS.metrics_port
    liveness_port = int(RUN_ARGS.liveness.rsplit(":", 1)[1].split("/")[0])
    liveness_path = "/" + RUN_ARGS.liveness.rsplit(":", 1)[1].split("/", 1)[1]
    assert ports["health"] == liveness_port
    for probe in ("livenessProbe", "readinessProbe"):
        http = CONTAINER[probe]["httpGet"]
        assert http["port"] == "health" and http["path"] == liveness_path
    service = one("Service", "imagepromoter-metrics")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == DEPLOYMENT["spec"]["selector"]["matchLabels"]


def test_ha_runs_two_replicas_with_peering() -> None:
    assert DEPLOYMENT["spec"]["replicas"] == 2
    assert not RUN_ARGS.standalone
    peering = one("ClusterKopfPeering", RUN_ARGS.peering)
    assert peering["apiVersion"] == "kopf.dev/v1"


def test_labels_select_the_pods() -> None:
    selector = DEPLOYMENT["spec"]["selector"]["matchLabels"]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
