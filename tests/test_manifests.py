"""Reading manifests for `imagepromoter promote`: multi-document files, Lists, Secrets."""

from __future__ import annotations

import base64

import pytest

from imagepromoter import manifests

CR = """\
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {name: app-dev, namespace: gitops}
spec: {image: ghcr.io/o/app}
"""

SECRET = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: push, namespace: gitops}}
data:
  password: {base64.b64encode(b"tok").decode()}
stringData:
  username: bot
"""


def test_multi_document_file_with_crs_secrets_and_other_kinds() -> None:
    text = CR + "---\n" + SECRET + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    loaded = manifests.load({"all.yaml": text})
    assert [p["metadata"]["name"] for p in loaded.promotions] == ["app-dev"]
    assert loaded.secrets[("gitops", "push")] == {"password": "tok", "username": "bot"}
    assert loaded.ignored == ("ConfigMap/x",)


def test_kind_list_is_unpacked_and_namespace_defaults() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        "- " + line + "\n" if i == 0 else "  " + line + "\n"
        for i, line in enumerate(CR.replace("namespace: gitops", "namespace: ''").splitlines())
    )
    loaded = manifests.load({"list.yaml": text})
    assert len(loaded.promotions) == 1


@pytest.mark.parametrize(
    ("text", "in_message"),
    [
        ("a: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "not a mapping"),
        ("apiVersion: v1\nkind: Secret\nmetadata: {}\n", "without metadata.name"),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: '%%%'}\n",
            "base64",
        ),
    ],
    ids=["bad-yaml", "not-a-mapping", "no-name", "bad-base64"],
)
def test_unreadable_manifests_are_usage_errors(text: str, in_message: str) -> None:
    with pytest.raises(manifests.ManifestError, match=in_message):
        manifests.load({"f.yaml": text})


BAD = [
    ("same-cr-twice", CR + "---\n" + CR, "is also defined in f.yaml"),
    ("other-api-version", CR.replace("v1alpha1", "v2"), "understands imagepromoter.dev/v1alpha1"),
    ("name-not-a-string", CR.replace("name: app-dev", "name: [a]"), "not a Kubernetes name"),
    ("name-with-newline", CR.replace("name: app-dev", "name: 'a\\nb'"), "not a Kubernetes name"),
    ("namespace-uppercase", CR.replace("namespace: gitops", "namespace: GitOps"), "namespace"),
    (
        "secret-data-a-list",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [a]\n",
        "mapping",
    ),
    (
        "secret-key-bad",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {'a b': x}\n",
        "key",
    ),
    (
        "not-utf8",
        b"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {p: \xff}\n",
        "UTF-8",
    ),
    (
        "alias-bomb",
        "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n"
            for i in range(5)
        ),
        "expands to more than 100000 values",
    ),
]


@pytest.mark.parametrize(("text", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_hostile_manifests_are_usage_errors_naming_the_file(text: str | bytes, words: str) -> None:
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load({"f.yaml": text})
    assert str(caught.value).startswith("f.yaml") and words in str(caught.value)


def test_a_secret_problem_never_quotes_the_value() -> None:
    text = 'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  p: "hunter2-secret\n'
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load({"s.yaml": text.encode()})
    assert "hunter2" not in str(caught.value) and "line 5" in str(caught.value)


def test_the_same_name_in_two_namespaces_is_two_crs() -> None:
    other = CR.replace("namespace: gitops", "namespace: other")
    loaded = manifests.load({"a.yaml": CR, "b.yaml": other.encode()})
    assert len(loaded.promotions) == 2
