"""The CRD: a valid apiextensions.k8s.io/v1 CRD whose schema accepts the examples and rejects the
documented mistakes (API.md: missing image, tagRegex, git.url or targets; a target with both or
neither of key and regex; an unknown policy; a malformed interval).

The schema is checked with jsonschema on `openAPIV3Schema` (the OpenAPI subset used here reads
the same in JSON Schema; `x-kubernetes-*` keys are ignored by it). The one CEL rule cannot run
without an API server, so `cel_problems` evaluates exactly the rule shape we use, and a test pins
that the rule text is that shape.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from imagepromoter import spec as spec_module
from imagepromoter import status as status_module

ROOT = Path(__file__).resolve().parent.parent
CRD_PATH = ROOT / "crds" / "imagepromotion.yaml"
CRD: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]
CEL_TERM = re.compile(r"\(has\(self\.(\w+)\)(?: && self\.(\w+))? \? 1 : 0\)")
CEL_RULE = re.compile(rf"^{CEL_TERM.pattern}(?: \+ {CEL_TERM.pattern})* == 1$")


def cel_problems(doc: Any, schema: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """Evaluate the x-kubernetes-validations rules of `schema` over `doc` (our one rule shape).

    The shape: `(has(self.a) ? 1 : 0) + (has(self.b) && self.b ? 1 : 0) + ... == 1`, "exactly
    one of these fields is set (a boolean one: set to true)".
    """
    for rule in schema.get("x-kubernetes-validations", []):
        assert CEL_RULE.match(rule["rule"]), f"unsupported CEL rule: {rule['rule']}"
        if not isinstance(doc, Mapping):
            continue
        count = 0
        for name, truthy in CEL_TERM.findall(rule["rule"]):
            assert truthy in {"", name}, f"unsupported CEL term in {rule['rule']}"
            count += name in doc and (not truthy or bool(doc[name]))
        if count != 1:
            yield f"{path}: {rule['message']}"
    if isinstance(doc, Mapping):
        for key, sub in (schema.get("properties") or {}).items():
            if key in doc:
                yield from cel_problems(doc[key], sub, f"{path}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            yield from cel_problems(item, schema["items"], f"{path}[{i}]")


def problems(doc: Mapping[str, Any]) -> list[str]:
    """Everything the API server would reject in `doc` (schema and CEL)."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    found = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]
    return found + list(cel_problems(doc, SCHEMA))


def good() -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": "myapp-dev", "namespace": "gitops"},
        "spec": {
            "image": "ghcr.io/myorg/myapp",
            "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
            "git": {"url": "https://github.com/myorg/gitops.git"},
            "targets": [{"path": "environments/dev/values.yaml", "key": "image.tag"}],
        },
    }


def with_(path: str, value: Any) -> dict[str, Any]:
    """`good()` with one field set (value=...) or removed (value=DELETE); dotted path, [n] index."""
    doc = good()
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for part in parts[:-1]:
        node = node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return doc


DELETE = object()


# --- the CRD is a valid apiextensions.k8s.io/v1 CRD ---------------------------------------------


def structural_problems(schema: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """The structural-schema rules the API server enforces, for the keywords we use."""
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        yield f"{path or '<root>'}: no type"
    if "properties" in schema and schema.get("type") != "object":
        yield f"{path}: properties on a non-object"
    if "items" in schema and schema.get("type") != "array":
        yield f"{path}: items on a non-array"
    if schema.get("type") == "array" and "items" not in schema:
        yield f"{path}: array without items"
    for forbidden in ("$ref", "additionalItems", "patternProperties", "definitions"):
        if forbidden in schema:
            yield f"{path}: {forbidden} is not allowed"
    if "default" in schema:
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(schema["default"]))
        if errors:
            yield f"{path}: default does not validate: {errors[0].message}"
    for name in schema.get("required", []):
        if name not in (schema.get("properties") or {}):
            yield f"{path}: required {name} is not a property"
    for key, sub in (schema.get("properties") or {}).items():
        yield from structural_problems(sub, f"{path}.{key}")
    if "items" in schema:
        yield from structural_problems(schema["items"], f"{path}[]")


def test_crd_identity() -> None:
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["kind"] == "CustomResourceDefinition"
    spec = CRD["spec"]
    names = spec["names"]
    assert CRD["metadata"]["name"] == f"{names['plural']}.{spec['group']}"
    assert (spec["group"], names["kind"], names["plural"]) == (
        "imagepromoter.dev",
        "ImagePromotion",
        "imagepromotions",
    )
    assert spec["scope"] == "Namespaced"
    assert names["shortNames"] == ["ipr"]
    assert "imagepromoter" in names["categories"]
    assert [v["name"] for v in spec["versions"]] == ["v1alpha1"]
    assert [v["storage"] for v in spec["versions"]].count(True) == 1
    assert VERSION["served"] is True
    assert VERSION["subresources"] == {"status": {}}


def test_schema_is_structural() -> None:
    assert list(structural_problems(SCHEMA)) == []


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_printer_columns_as_api_md() -> None:
    columns = VERSION["additionalPrinterColumns"]
    default = [c["name"].upper() for c in columns if not c.get("priority")]
    wide = [c["name"].upper() for c in columns if c.get("priority") == 1]
    assert default == ["IMAGE", "LATEST", "PROMOTED", "READY", "REASON", "AGE"]
    assert wide == ["LAST COMMIT", "LAST SCAN", "WAITING UNTIL"]  # holds.md
    by_name = {c["name"].upper(): c for c in columns}
    assert by_name["READY"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert by_name["AGE"]["jsonPath"] == ".metadata.creationTimestamp"
    for column in columns:
        assert column["type"] in {"string", "integer", "number", "boolean", "date"}
        assert column["jsonPath"].startswith(".")


def test_cel_rule_present_on_targets() -> None:
    items = SCHEMA["properties"]["spec"]["properties"]["targets"]["items"]
    rules = items["x-kubernetes-validations"]
    assert len(rules) == 1
    assert all(CEL_RULE.match(r["rule"]) and r["message"] for r in rules)
    fields = [name for name, _ in CEL_TERM.findall(rules[0]["rule"])]
    assert fields == ["key", "regex", "kustomizeImage", "markers"]
    assert set(fields) < set(items["properties"])


def test_cel_rule_agrees_with_the_spec_parser() -> None:
    """Every combination of target kinds: the CRD and spec.parse accept the same ones."""
    kinds: dict[str, Any] = {
        "key": "image.tag",
        "regex": "tag: (.*)",
        "kustomizeImage": "ghcr.io/a/b",
        "markers": True,
    }
    for mask in range(16):
        target: dict[str, Any] = {"path": "apps/x.yaml"}
        target.update({k: v for n, (k, v) in enumerate(kinds.items()) if mask >> n & 1})
        for markers_false in (False, True):
            if markers_false and "markers" not in target:
                target = {**target, "markers": False}
            doc = with_("spec.targets", [target])
            by_crd = problems(doc) == []
            try:
                spec_module.parse(doc["spec"])
                by_spec = True
            except spec_module.SpecErrors:
                by_spec = False
            assert by_crd == by_spec, target


def test_status_fields_are_the_documented_ones() -> None:
    status = SCHEMA["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration",
        "latestTag",
        "latestDigest",
        "promotedTag",
        "lastCommit",
        "lastScanTime",
        "lastPromotionTime",
        "tagsScanned",
        "trigger",
        "conditions",
        *status_module.GATE_FIELDS,  # holds, pins and gates (docs/holds.md)
    }


# --- what the schema accepts and rejects -----------------------------------------------------


def example_docs() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc and doc.get("kind") == "ImagePromotion":
                found.append((f"{path.name}#{i}", doc))
    return found


def test_there_are_examples() -> None:
    assert len(example_docs()) >= 2


@pytest.mark.parametrize(("name", "doc"), example_docs(), ids=[n for n, _ in example_docs()])
def test_examples_validate(name: str, doc: dict[str, Any]) -> None:
    assert problems(doc) == []


GOOD = [
    ("minimal", good()),
    ("interval-30s", with_("spec.interval", "30s")),
    ("interval-1h30m", with_("spec.interval", "1h30m")),
    ("interval-2h45m10s", with_("spec.interval", "2h45m10s")),
    ("policy-newest", with_("spec.policy", "newest")),
    ("regex-target", with_("spec.targets", [{"path": "v.yaml", "regex": 'tag: "(.*)"'}])),
    ("scp-like-url", with_("spec.git.url", "git@github.com:myorg/gitops.git")),
    ("ssh-url", with_("spec.git.url", "ssh://git@example.com:2222/gitops.git")),
    ("http-url", with_("spec.git.url", "http://gitea.gitops.svc:3000/org/gitops.git")),
    ("registry-with-port", with_("spec.image", "registry.local:5000/team/app")),
    ("docker-hub-bare", with_("spec.image", "nginx")),
    ("push-branch", with_("spec.git.pushBranch", "imagepromoter/dev")),
    ("git-insecure", with_("spec.git.insecure", True)),
    ("exclude-tags", with_("spec.excludeTags", [".*-debug$"])),
    ("kustomize-target", with_("spec.targets", [{"path": "k.yaml", "kustomizeImage": "a/b"}])),
    ("markers-target", with_("spec.targets", [{"path": "apps/", "markers": True}])),
    (
        "markers-false-with-key",
        with_("spec.targets", [{"path": "v.yaml", "key": "a", "markers": False}]),
    ),
    (
        "selector-key",
        with_("spec.targets", [{"path": "d.yaml", "key": "spec.containers[name=app].image"}]),
    ),
]


@pytest.mark.parametrize(("name", "doc"), GOOD, ids=[n for n, _ in GOOD])
def test_good_crs_accepted(name: str, doc: dict[str, Any]) -> None:
    assert problems(doc) == []


BAD = [
    ("no-spec", with_("spec", DELETE), "spec"),
    ("no-image", with_("spec.image", DELETE), "image"),
    ("no-tagRegex", with_("spec.tagRegex", DELETE), "tagRegex"),
    ("no-git", with_("spec.git", DELETE), "git"),
    ("no-git-url", with_("spec.git.url", DELETE), "url"),
    ("no-targets", with_("spec.targets", DELETE), "targets"),
    ("empty-targets", with_("spec.targets", []), "spec.targets"),
    ("target-without-path", with_("spec.targets", [{"key": "image.tag"}]), "path"),
    (
        "target-key-and-regex",
        with_("spec.targets", [{"path": "v.yaml", "key": "a", "regex": "(b)"}]),
        "exactly one of key, regex, kustomizeImage and markers",
    ),
    (
        "target-neither",
        with_("spec.targets", [{"path": "v.yaml"}]),
        "exactly one of key, regex, kustomizeImage and markers",
    ),
    (
        "target-markers-false-alone",
        with_("spec.targets", [{"path": "apps/", "markers": False}]),
        "exactly one of key, regex, kustomizeImage and markers",
    ),
    (
        "target-kustomize-and-markers",
        with_("spec.targets", [{"path": "k.yaml", "kustomizeImage": "a", "markers": True}]),
        "exactly one of key, regex, kustomizeImage and markers",
    ),
    (
        "kustomizeImage-with-digest",
        with_("spec.targets", [{"path": "k.yaml", "kustomizeImage": "a@sha256:00"}]),
        "kustomizeImage",
    ),
    (
        "markers-string",
        with_("spec.targets", [{"path": "apps/", "markers": "true"}]),
        "markers",
    ),
    ("unknown-policy", with_("spec.policy", "latest"), "spec.policy"),
    ("interval-words", with_("spec.interval", "5 minutes"), "spec.interval"),
    ("interval-days", with_("spec.interval", "1d"), "spec.interval"),
    ("interval-order", with_("spec.interval", "5m1h"), "spec.interval"),
    ("interval-bare-number", with_("spec.interval", "300"), "spec.interval"),
    ("interval-empty", with_("spec.interval", ""), "spec.interval"),
    ("image-with-tag", with_("spec.image", "ghcr.io/myorg/myapp:1.0"), "spec.image"),
    ("image-with-digest", with_("spec.image", "ghcr.io/a/b@sha256:00"), "spec.image"),
    ("git-url-ftp", with_("spec.git.url", "ftp://example.com/repo.git"), "spec.git.url"),
    ("suspend-string", with_("spec.suspend", "yes"), "spec.suspend"),
    ("git-insecure-string", with_("spec.git.insecure", "yes"), "spec.git.insecure"),
    ("excludeTags-string", with_("spec.excludeTags", ".*-debug$"), "spec.excludeTags"),
    ("empty-tagRegex", with_("spec.tagRegex", ""), "spec.tagRegex"),
]


@pytest.mark.parametrize(("name", "doc", "mentions"), BAD, ids=[n for n, _, _ in BAD])
def test_bad_crs_rejected(name: str, doc: dict[str, Any], mentions: str) -> None:
    found = problems(doc)
    assert found, f"{name} was accepted"
    assert any(mentions in p for p in found), found


INTERVALS = ["30s", "5m", "1h", "1h30m", "2h45m10s", "90s", "1h0m0s", "5 m", "1d", "m", "5", "1m1h"]


@pytest.mark.parametrize("text", INTERVALS, ids=INTERVALS)
def test_interval_pattern_agrees_with_spec_parser(text: str) -> None:
    accepted = problems(with_("spec.interval", text)) == []
    assert accepted == (spec_module.parse_interval(text) is not None)


def test_defaults_are_the_documented_ones() -> None:
    props = SCHEMA["properties"]["spec"]["properties"]
    assert props["policy"]["default"] == "semver"
    assert props["interval"]["default"] == "5m"
    assert props["suspend"]["default"] is False
    assert props["policy"]["enum"] == list(spec_module.POLICIES)


def test_the_crd_declares_every_git_field_the_parser_accepts() -> None:
    """An undeclared field would be pruned by the API server: the CR would silently lose it."""
    git = SCHEMA["properties"]["spec"]["properties"]["git"]["properties"]
    assert set(git) == set(spec_module._GIT_FIELDS)
    assert git["insecure"]["type"] == "boolean" and git["insecure"]["default"] is False


def test_problems_do_not_mutate() -> None:
    doc = good()
    before = copy.deepcopy(doc)
    problems(doc)
    assert doc == before
