"""The chart's `shards` value: one Deployment per shard, each with its selector and peering.

With `shards: 0` (the default) the chart renders exactly manifests/ (tests/test_chart.py). With
`shards: N` it renders N Deployments whose pod selectors are disjoint (the shard label), whose
arguments are what `imagepromoter run` accepts (parsed here by the real parser), each with its
own ClusterKopfPeering and PodDisruptionBudget, while the Services still reach every shard.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from imagepromoter import cli, shards
from tests.test_deploy_manifests import CHART, NAMESPACE, by_kind, helm_template

SHARD = shards.SHARD_LABEL


def args_of(deployment: dict[str, Any]) -> list[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def test_shards_render_one_deployment_per_shard() -> None:
    docs = helm_template({"shards": 3})
    kinds = by_kind(docs)
    deployments = {d["metadata"]["name"]: d for d in kinds["Deployment"]}
    assert sorted(deployments) == [f"imagepromoter-shard-{i}" for i in range(3)]
    selectors = []
    for i in range(3):
        deployment = deployments[f"imagepromoter-shard-{i}"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector[SHARD] == str(i) and selector.items() <= pod_labels.items()
        selectors.append(selector)
        args = cli.build_parser().parse_args(["run", *args_of(deployment)])
        assert shards.parse(args.selector).labels == {SHARD: str(i)}
        assert args.peering == f"imagepromoter-shard-{i}" and not args.standalone
        assert deployment["spec"]["replicas"] == 2
    for i, selector in enumerate(selectors):  # no pod of one shard matches another's selector
        pods = [deployments[f"imagepromoter-shard-{j}"]["spec"]["template"]["metadata"]["labels"]
                for j in range(3) if j != i]  # fmt: skip
        assert not any(selector.items() <= pod.items() for pod in pods)
    peerings = sorted(p["metadata"]["name"] for p in kinds["ClusterKopfPeering"])
    assert peerings == [f"imagepromoter-shard-{i}" for i in range(3)]
    budgets = {b["metadata"]["name"]: b for b in kinds["PodDisruptionBudget"]}
    assert sorted(budgets) == [f"imagepromoter-shard-{i}" for i in range(3)]
    for name, budget in budgets.items():
        assert budget["spec"]["selector"] == deployments[name]["spec"]["selector"]
    for service in kinds["Service"]:  # metrics and webhooks: every shard's pods
        for deployment in deployments.values():
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert service["spec"]["selector"].items() <= pod_labels.items()


def test_single_replica_shards_run_standalone() -> None:
    docs = helm_template({"shards": 2, "replicas": 1})
    kinds = by_kind(docs)
    assert len(kinds["Deployment"]) == 2
    assert "ClusterKopfPeering" not in kinds and "PodDisruptionBudget" not in kinds
    for deployment in kinds["Deployment"]:
        assert "--standalone" in args_of(deployment)


@pytest.mark.parametrize("shards_value", [0, 2])
def test_helm_lint_is_clean_with_shards(shards_value: int) -> None:
    report = helm.lint(
        CHART, {"shards": shards_value}, strict=True, namespace=NAMESPACE, kube_version="v1.25.0"
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("value", [-1, "2", 65], ids=["negative", "string", "too-many"])
def test_the_schema_rejects_a_bad_shards_value(value: Any) -> None:
    with pytest.raises(helm.HelmValuesError, match="shards"):
        helm.Chart.load(CHART).validate_schema({"shards": value})
