"""The ImageWebhook CRD: valid and structural, names as API.md, the documented mistakes rejected,
and its type enum the receiver's list; the ImagePromotion CRD's notify and status.trigger."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from imagepromoter import spec as spec_module
from imagepromoter.webhooks import model
from tests.test_crd import SCHEMA as IPR_SCHEMA
from tests.test_crd import good as good_ipr
from tests.test_crd import structural_problems

ROOT = Path(__file__).resolve().parent.parent
CRD: dict[str, Any] = yaml.safe_load((ROOT / "crds" / "imagewebhook.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]


def problems(doc: Any, schema: dict[str, Any] = SCHEMA) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def good() -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImageWebhook",
        "metadata": {"name": "upstream-ci", "namespace": "gitops"},
        "spec": {"type": "github-dispatch", "secretRef": "upstream-ci", "eventTypes": [],
                 "selector": {}},
    }  # fmt: skip


def test_identity_and_names() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "imagewebhooks.imagepromoter.dev"
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"]) == (
        "imagepromoter.dev", "ImageWebhook", "imagewebhooks",
    )  # fmt: skip
    assert spec["names"]["shortNames"] == ["iwh"] and spec["scope"] == "Namespaced"
    assert VERSION["subresources"] == {"status": {}}
    assert (ROOT / "crds" / "kustomization.yaml").read_text().count("imagewebhook.yaml") == 1


def test_schema_is_structural_and_valid() -> None:
    assert list(structural_problems(SCHEMA)) == []
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_types_are_the_receivers() -> None:
    assert SCHEMA["properties"]["spec"]["properties"]["type"]["enum"] == list(model.TYPES)


def test_status_fields_are_the_documented_ones() -> None:
    status = SCHEMA["properties"]["status"]["properties"]
    assert set(status) == {"observedGeneration", "path", "lastEvent", "conditions"}
    assert set(status["lastEvent"]["properties"]) == {"time", "delivery", "promotions"}


def with_spec(**changes: Any) -> dict[str, Any]:
    doc = good()
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key)
        else:
            doc["spec"][key] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "mentions"),
    [
        (with_spec(type=None), "'type' is a required property"),
        (with_spec(secretRef=None), "'secretRef' is a required property"),
        (with_spec(type="gitlab"), "is not one of"),
        (with_spec(eventTypes="update"), "is not of type 'array'"),
        (with_spec(selector={"matchExpressions": [{"key": "a", "operator": "Gt"}]}),
         "is not one of"),
    ],
    ids=["no-type", "no-secret", "unknown-type", "event-types-not-list", "bad-operator"],
)  # fmt: skip
def test_rejects(doc: dict[str, Any], mentions: str) -> None:
    found = problems(doc)
    assert any(mentions in p for p in found), found


def test_accepts_every_type() -> None:
    for type_ in model.TYPES:
        assert problems(with_spec(type=type_)) == []


def notify_doc(entries: Any) -> dict[str, Any]:
    doc = copy.deepcopy(good_ipr())
    doc["spec"]["notify"] = entries
    return doc


@pytest.mark.parametrize(
    ("entries", "ok"),
    [
        ([{"type": "argocd", "url": "https://argocd.example/api/webhook", "secretRef": "a"}], True),
        ([{"type": "generic", "url": "http://hooks.local/p"}], True),
        ([{"type": "slack", "url": "https://x"}], False),
        ([{"type": "argocd"}], False),
        ([{"type": "argocd", "url": "ftp://x"}], False),
    ],
    ids=["argocd", "generic", "unknown-type", "no-url", "not-http"],
)
def test_notify_schema_agrees_with_spec_parser(entries: Any, ok: bool) -> None:
    doc = notify_doc(entries)
    assert (problems(doc, IPR_SCHEMA) == []) is ok
    if ok:
        parsed = spec_module.parse(doc["spec"])
        assert [(n.type, n.url) for n in parsed.notify] == [(e["type"], e["url"]) for e in entries]
    else:
        with pytest.raises(spec_module.SpecErrors):
            spec_module.parse(doc["spec"])


def test_status_trigger_schema() -> None:
    doc = good_ipr()
    when = "2026-12-01T00:00:00Z"
    doc["status"] = {"trigger": {"tag": "1.0.0", "source": "s", "receivedAt": when,
                                 "fields": {"git_branch": "main"}}}  # fmt: skip
    assert problems(doc, IPR_SCHEMA) == []
    doc["status"]["trigger"]["fields"] = {"n": 1}
    assert problems(doc, IPR_SCHEMA) != []


def test_shipped_image_webhook_examples_validate() -> None:
    docs = [
        d
        for p in sorted((ROOT / "examples").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d and d.get("kind") == "ImageWebhook"
    ]
    assert len(docs) >= 2
    for doc in docs:
        assert problems(doc) == []
