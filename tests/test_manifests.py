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
