"""The Helm chart (charts/imagepromoter), through Helm's own engine (helm-python-sdk bundles
Helm's Go library): `helm lint` and `helm template` with default and non-default values.

With default values the chart renders exactly the objects of `kubectl apply -k manifests/`
(less the Namespace, which `helm install --create-namespace` makes), once Helm's bookkeeping
labels are set aside; tests/test_deploy_manifests.py runs its checks (RBAC least privilege,
hardening, probes, HA) on both. Here: what only the chart has (values and their schema).
"""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import helm_python as helm
import pytest
import yaml

from imagepromoter import cli
from tests.test_deploy_manifests import (
    CHART,
    CUSTOM_VALUES,
    NAMESPACE,
    ROOT,
    SOURCES,
    Docs,
    by_kind,
    helm_template,
    one,
)

HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version")
WEBHOOKS = {
    "webhooks": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": ["promoter.example.com"],
            "tls": [{"secretName": "promoter-tls", "hosts": ["promoter.example.com"]}],
        },
    }
}
VALUE_SETS = {"defaults": None, "custom": CUSTOM_VALUES, "webhooks": WEBHOOKS,
              "single": {"replicas": 1}}  # fmt: skip


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_helm_lint_is_clean(values: dict[str, Any] | None) -> None:
    oldest = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    assert oldest == ">=1.25.0-0", "CEL validation rules in the CRD need 1.25"
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.25.0")
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == []


def without_helm_labels(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for holder in (doc, doc.get("spec", {}).get("template", {})):
        labels = holder.get("metadata", {}).get("labels", {})
        for label in HELM_LABELS:
            labels.pop(label, None)
    return doc


def objects(docs: Docs) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): without_helm_labels(d) for _, d in docs}


def test_default_values_render_the_objects_of_the_kustomization() -> None:
    manifests = objects(SOURCES["kustomize"])
    del manifests[("Namespace", NAMESPACE)]  # helm install --namespace ... --create-namespace
    chart = objects(SOURCES["helm-defaults"])
    assert sorted(chart) == sorted(manifests)
    for key, expected in manifests.items():
        expected["metadata"].get("labels", {}).pop("app.kubernetes.io/instance", None)
        chart[key]["metadata"].get("labels", {}).pop("app.kubernetes.io/instance", None)
        assert chart[key] == expected, key


def test_the_chart_crds_are_the_repository_crds() -> None:
    link = CHART / "crds" / "imagepromotion.yaml"  # one source: a link to the canonical CRD
    assert link.is_symlink() and link.resolve() == (ROOT / "crds" / "imagepromotion.yaml")
    def crds(docs: Docs) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for d in by_kind(docs)["CustomResourceDefinition"]}

    assert crds(helm_template()) == crds(SOURCES["kustomize"]), "every CRD manifests/ installs"


def test_chart_and_image_versions_follow_the_package() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["version"] == meta["appVersion"] == version
    image = one("Deployment", "imagepromoter", SOURCES["helm-defaults"])
    assert image["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{version}")


def pod_of(docs: Docs, name: str = "imagepromoter") -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment", name, docs)["spec"]["template"]["spec"]
    return spec


def test_secret_access_is_one_role_binding_per_listed_namespace() -> None:
    docs = SOURCES["helm-custom"]
    bindings = by_kind(docs)["RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["gitops", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": "ClusterRole", "name": "imagepromoter-read-secrets"}
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "imagepromoter", "namespace": NAMESPACE}
        ]
    assert "RoleBinding" not in by_kind(SOURCES["helm-defaults"]), "none unless asked"


def test_custom_values_reach_the_pod() -> None:
    pod = pod_of(SOURCES["helm-custom"])
    container = pod["containers"][0]
    args = cli.build_parser().parse_args(["run", *container["args"]])
    assert args.namespace == ["gitops", "team-b"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["IMAGEPROMOTER_LOG_LEVEL"], env["IMAGEPROMOTER_LOG_FORMAT"]) == ("debug", "json")
    assert container["resources"] == CUSTOM_VALUES["resources"]
    assert container["image"] == "ghcr.io/imagepromoter/imagepromoter:0.1.0-rc1"
    assert "requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]
    assert one("Deployment", "imagepromoter", SOURCES["helm-custom"])["spec"]["replicas"] == 3


def test_one_replica_runs_standalone_without_peering_or_budget() -> None:
    docs = helm_template({"replicas": 1})
    container = pod_of(docs)["containers"][0]
    assert cli.build_parser().parse_args(["run", *container["args"]]).standalone
    kinds = by_kind(docs)
    assert "PodDisruptionBudget" not in kinds and "ClusterKopfPeering" not in kinds
    assert "affinity" not in pod_of(docs)


def test_webhooks_off_means_no_receiver_no_service_no_ingress() -> None:
    docs = helm_template({"webhooks": {"enabled": False, "ingress": {"enabled": True}}})
    assert ("Service", "imagepromoter-webhooks") not in objects(docs)
    assert "Ingress" not in by_kind(docs)
    container = pod_of(docs)["containers"][0]
    assert "webhooks" not in {p["name"] for p in container["ports"]}
    assert cli.build_parser().parse_args(["run", *container["args"]]).webhook_port == 0
    assert "Ingress" not in by_kind(SOURCES["helm-defaults"]), "no Ingress unless asked"


def test_webhooks_service_and_ingress_are_ready_for_the_receiver() -> None:
    docs = helm_template(WEBHOOKS)
    service = one("Service", "imagepromoter-webhooks", docs)
    (port,) = service["spec"]["ports"]
    assert port == {"name": "webhooks", "port": 9443, "targetPort": "webhooks"}
    deployment = one("Deployment", "imagepromoter", docs)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    container = pod_of(docs)["containers"][0]
    assert {"name": "webhooks", "containerPort": 9443} in container["ports"]
    assert cli.build_parser().parse_args(["run", *container["args"]]).webhook_port == 9443
    ingress = one("Ingress", "imagepromoter-webhooks", docs)["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == WEBHOOKS["webhooks"]["ingress"]["tls"]
    (rule,) = ingress["rules"]
    assert rule["host"] == "promoter.example.com"
    assert [p["path"] for p in rule["http"]["paths"]] == ["/hook", "/repos"]
    for path in rule["http"]["paths"]:
        assert path["backend"] == {
            "service": {"name": "imagepromoter-webhooks", "port": {"name": "webhooks"}}
        }


def test_another_release_name_keeps_every_reference_consistent() -> None:
    chart = helm.Chart.load(CHART)
    rendered = chart.render({"secretNamespaces": ["gitops"]}, name="acme", namespace="ops")
    docs = [(n, d) for n, t in rendered.items() if n.endswith(".yaml")
            for d in yaml.safe_load_all(t) if d]  # fmt: skip
    names = {d["metadata"]["name"] for _, d in docs}
    assert {"acme-imagepromoter", "acme-imagepromoter-read-secrets"} <= names
    binding = one("ClusterRoleBinding", "acme-imagepromoter", docs)
    assert binding["subjects"][0] == {
        "kind": "ServiceAccount", "name": "acme-imagepromoter", "namespace": "ops"
    }  # fmt: skip
    (secrets,) = by_kind(docs)["RoleBinding"]
    assert secrets["roleRef"]["name"] == "acme-imagepromoter-read-secrets"
    assert secrets["subjects"] == binding["subjects"]
    pod = pod_of(docs, "acme-imagepromoter")
    assert pod["serviceAccountName"] == "acme-imagepromoter"
    args = cli.build_parser().parse_args(["run", *pod["containers"][0]["args"]])
    assert one("ClusterKopfPeering", args.peering, docs)


BAD_VALUES = [
    ({"logLevel": "verbose"}, "/logLevel"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"replicas": 0}, "/replicas"),
    ({"secretNamespaces": ["Not_A_Namespace"]}, "/secretNamespaces/0"),
    ({"antiAffinity": "sometimes"}, "/antiAffinity"),
    ({"webhooks": {"port": 70000}}, "/webhooks/port"),
    ({"imagePromoter": {}}, "additional properties"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_the_values_schema_rejects_mistakes_naming_the_value(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=named):
        helm.Chart.load(CHART).validate_schema(values)


def test_readme_shows_helm_install_next_to_kubectl_apply() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "kubectl apply -k manifests/" in readme
    assert "helm install imagepromoter charts/imagepromoter" in readme
