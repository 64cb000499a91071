"""How the operator is installed: `kubectl apply -k manifests/`, or the Helm chart in charts/, with
least-privilege RBAC and a hardened Deployment. Every check here runs on three renderings: the
kustomization, the chart with its default values, and the chart with non-default values (Helm's
own engine, from helm-python-sdk). tests/test_chart.py checks what only the chart has.
(tests/test_manifests.py is about the manifest files `imagepromoter promote` reads.)

`RBAC_NEEDED` is what the operator does against the API; tests/test_operator_e2e.py records the
requests Kopf and the handlers really make and checks each one against `allows` below.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from imagepromoter import cli

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
CHART = ROOT / "charts" / "imagepromoter"
RELEASE, NAMESPACE = "imagepromoter", "imagepromoter-system"
Docs = list[tuple[str, dict[str, Any]]]


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


def helm_template(values: dict[str, Any] | None = None, *, crds: bool = True) -> Docs:
    """What `helm template imagepromoter charts/imagepromoter -n imagepromoter-system` prints."""
    chart = helm.Chart.load(CHART)
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    files = [(c["name"], c["data"]) for c in chart.crds] if crds else []
    files += [(name, text) for name, text in sorted(rendered.items()) if name.endswith(".yaml")]
    return [
        (name, doc) for name, text in files for doc in yaml.safe_load_all(text) if doc
    ]  # fmt: skip


# Non-default values exercising every switch that changes the objects the shared checks look at.
CUSTOM_VALUES: dict[str, Any] = {
    "replicas": 3,
    "secretNamespaces": ["gitops", "team-b"],
    "watchNamespaces": ["gitops", "team-b"],
    "logLevel": "debug",
    "logFormat": "json",
    "antiAffinity": "required",
    "resources": {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    },
    "image": {"tag": "0.1.0-rc1"},
}
SOURCES: dict[str, Docs] = {
    "kustomize": list(kustomize(MANIFESTS)),
    "helm-defaults": helm_template(),
    "helm-custom": helm_template(CUSTOM_VALUES),
}
DOCS = SOURCES["kustomize"]


def by_kind(docs: Docs) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for _, doc in docs:
        found.setdefault(doc["kind"], []).append(doc)
    return found


def one(kind: str, name: str, docs: Docs = DOCS) -> dict[str, Any]:
    found = [d for d in by_kind(docs).get(kind, []) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.fixture(params=list(SOURCES), ids=list(SOURCES))
def docs(request: pytest.FixtureRequest) -> Docs:
    """Each rendering in turn: the kustomization, the chart's defaults, the chart customised."""
    return SOURCES[request.param]


def test_every_yaml_file_is_listed() -> None:
    listed = {path for path, _ in DOCS}
    on_disk = {str(p.relative_to(ROOT)) for p in MANIFESTS.glob("*.yaml")}
    on_disk.discard("manifests/kustomization.yaml")
    assert on_disk <= listed


def test_installs_everything(docs: Docs) -> None:
    kinds = set(by_kind(docs))
    assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "Deployment", "Service", "PodDisruptionBudget"} <= kinds  # fmt: skip
    crds = {d["metadata"]["name"] for d in by_kind(docs)["CustomResourceDefinition"]}
    assert {"imagepromotions.imagepromoter.dev", "clusterkopfpeerings.kopf.dev"} <= crds


def test_every_document_is_well_formed(docs: Docs) -> None:
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path
        assert doc.get("metadata", {}).get("name"), path


NAMESPACED = {"ServiceAccount", "Deployment", "Service", "Role", "PodDisruptionBudget", "Ingress"}


def test_namespaced_objects_live_in_the_operator_namespace(docs: Docs) -> None:
    for path, doc in docs:
        if doc["kind"] in NAMESPACED:
            assert doc["metadata"].get("namespace") == NAMESPACE, path


def test_the_kustomization_makes_the_operator_namespace_restricted() -> None:
    labels = one("Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


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
def test_rbac_allows_what_the_operator_does(
    docs: Docs, group: str, resource: str, verb: str
) -> None:
    assert allows(one("ClusterRole", "imagepromoter", docs)["rules"], group, resource, verb)


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
def test_rbac_denies_what_the_operator_never_does(
    docs: Docs, group: str, resource: str, verb: str
) -> None:
    assert not allows(one("ClusterRole", "imagepromoter", docs)["rules"], group, resource, verb)


def test_no_wildcards_anywhere(docs: Docs) -> None:
    for kind in ("ClusterRole", "Role"):
        for role in by_kind(docs).get(kind, []):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(field, []), (role["metadata"]["name"], field)


def test_secrets_are_readable_only_where_bound_per_namespace(docs: Docs) -> None:
    role = one("ClusterRole", "imagepromoter-read-secrets", docs)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    for binding in by_kind(docs).get("ClusterRoleBinding", []):
        assert binding["roleRef"]["name"] != "imagepromoter-read-secrets", "never cluster-wide"
    for binding in by_kind(docs).get("RoleBinding", []):
        assert binding["metadata"]["namespace"] != NAMESPACE or binding["roleRef"]["name"] != (
            "imagepromoter-read-secrets"
        ), "not even in the operator's own namespace unless asked"


def test_binding_targets_the_deployment_service_account(docs: Docs) -> None:
    binding = one("ClusterRoleBinding", "imagepromoter", docs)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "imagepromoter"
    }  # fmt: skip
    namespace = one("ServiceAccount", "imagepromoter", docs)["metadata"]["namespace"]
    subject = {"kind": "ServiceAccount", "name": "imagepromoter", "namespace": namespace}
    assert binding["subjects"] == [subject]
    assert pod(docs)["serviceAccountName"] == "imagepromoter"


# --- Deployment --------------------------------------------------------------------------------


def deployment(docs: Docs) -> dict[str, Any]:
    return one("Deployment", "imagepromoter", docs)


def pod(docs: Docs) -> dict[str, Any]:
    spec: dict[str, Any] = deployment(docs)["spec"]["template"]["spec"]
    return spec


def container(docs: Docs) -> dict[str, Any]:
    first: dict[str, Any] = pod(docs)["containers"][0]
    return first


def run_args(docs: Docs) -> Any:
    """The container's args as `imagepromoter run` parses them."""
    return cli.build_parser().parse_args(["run", *container(docs).get("args", [])])


# The kustomization's objects under fixed names, for other test modules (test_webhook_manifests).
BY_KIND = by_kind(DOCS)
DEPLOYMENT = deployment(DOCS)
CONTAINER = container(DOCS)
RUN_ARGS = run_args(DOCS)


def test_deployment_is_hardened(docs: Docs) -> None:
    pod_sc = pod(docs)["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(docs)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not pod(docs).get("hostNetwork") and not sc.get("privileged")


def test_git_workspaces_are_on_an_empty_dir(docs: Docs) -> None:
    env = {e["name"]: e["value"] for e in container(docs)["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(docs)["volumes"]}
    workdir = env["IMAGEPROMOTER_WORKDIR"]
    assert "emptyDir" in volumes[mounts[workdir]]
    assert "emptyDir" in volumes[mounts[env["HOME"]]]


def test_log_level_and_format_are_ones_the_cli_accepts(docs: Docs) -> None:
    env = {e["name"]: e["value"] for e in container(docs)["env"]}
    assert env["IMAGEPROMOTER_LOG_LEVEL"] in cli.LOG_LEVELS
    assert env["IMAGEPROMOTER_LOG_FORMAT"] in ("text", "json")


def test_resources_are_bounded(docs: Docs) -> None:
    resources = container(docs)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])


def test_probes_and_ports_match_the_operator_args(docs: Docs) -> None:
    args = run_args(docs)
    ports = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}
    assert ports["metrics"] == args.metrics_port
    liveness_port = int(args.liveness.rsplit(":", 1)[1].split("/")[0])
    liveness_path = "/" + args.liveness.rsplit(":", 1)[1].split("/", 1)[1]
    assert ports["health"] == liveness_port
    live = container(docs)["livenessProbe"]["httpGet"]
    assert live == {"port": "health", "path": liveness_path}
    ready = container(docs)["readinessProbe"]["httpGet"]
    assert ready == {"port": "metrics", "path": "/metrics"}, "readiness is not liveness"
    service = one("Service", "imagepromoter-metrics", docs)
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == deployment(docs)["spec"]["selector"]["matchLabels"]
    assert args.webhook_port == ports["webhooks"] == 9443  # API.md: the receiver's port
    webhooks = one("Service", "imagepromoter-webhooks", docs)
    (port,) = webhooks["spec"]["ports"]
    assert port == {"name": "webhooks", "port": 9443, "targetPort": "webhooks"}
    assert webhooks["spec"]["selector"] == deployment(docs)["spec"]["selector"]["matchLabels"]


def test_ha_runs_replicas_with_peering_spread_and_a_disruption_budget(docs: Docs) -> None:
    assert deployment(docs)["spec"]["replicas"] >= 2
    args = run_args(docs)
    assert not args.standalone
    peering = one("ClusterKopfPeering", args.peering, docs)
    assert peering["apiVersion"] == "kopf.dev/v1"
    selector = deployment(docs)["spec"]["selector"]["matchLabels"]
    anti = pod(docs)["affinity"]["podAntiAffinity"]
    terms = [t.get("podAffinityTerm", t) for terms in anti.values() for t in terms]
    assert [t["topologyKey"] for t in terms] == ["kubernetes.io/hostname"]
    assert terms[0]["labelSelector"]["matchLabels"] == selector
    budget = one("PodDisruptionBudget", "imagepromoter", docs)["spec"]
    assert budget == {"minAvailable": 1, "selector": {"matchLabels": selector}}


def test_labels_select_the_pods(docs: Docs) -> None:
    selector = deployment(docs)["spec"]["selector"]["matchLabels"]
    labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
