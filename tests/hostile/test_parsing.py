"""Bounded parsing: hostile CR, Secret, values and tag-list documents end in one clear line.

Manifest files are usage errors: exit 2, one line on stderr naming the file and the limit, no
traceback, under an address-space limit (RLIMIT_AS) that the old behaviour (gigabytes for an
alias bomb) could not run in. Documents read during a pass (a values file, the registry's tag
JSON) end as the pass's typed reason naming the limit, never "unexpected <Exception>", and the
good CR of the same run is promoted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.hostile import _support

pytestmark = pytest.mark.servers

ADDRESS_SPACE = 1 << 30  # 1 GiB: the CLI needs well under half of it; the old alias bomb 3 GiB+
PEAK_RSS_KIB = 200 * 1024  # a pass over hostile documents stays within this (about 50 MiB seen)

CR_HEAD = "apiVersion: imagepromoter.dev/v1alpha1\nkind: ImagePromotion\n"


def _laughs(levels: int = 9) -> str:
    """A YAML alias bomb: each anchor is a list of nine copies of the one before."""
    lines = ['l0: &l0 ["ha","ha","ha","ha","ha","ha","ha","ha","ha"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _bomb_in(field: str) -> str:
    body = _laughs().replace("\n", "\n  ")
    if field == "metadata.name":
        return f"{CR_HEAD}x:\n  {body}\nmetadata: {{name: *l8}}\nspec: {{}}\n"
    return f"{CR_HEAD}x:\n  {body}\nmetadata: {{name: app}}\nspec: {{image: *l8}}\n"


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("alias-bomb-in-name", _bomb_in("metadata.name").encode(), "expands to more than 100000"),
    ("alias-bomb-in-image", _bomb_in("spec.image").encode(), "expands to more than 100000"),
    ("deep-cr", (CR_HEAD + "spec: " + "[" * 20_000 + "]" * 20_000 + "\n").encode(), "nests deeper"),
    ("not-utf8", CR_HEAD.encode() + b"metadata: {name: caf\xe9}\n", "not UTF-8 text (byte"),
    ("python-tag", (CR_HEAD + "spec: !!python/object/apply:os.system [id]\n").encode(), "line 3"),
    ("nul", (CR_HEAD + "metadata: {name: a\x00}\n").encode(), "a character YAML does not allow"),
    ("too-large", b"# " + b"x" * (4 << 20) + b"\n", "more than the limit of"),
    (
        "api-version",
        (CR_HEAD.replace("v1alpha1", "v1beta1") + "metadata: {name: app}\nspec: {}\n").encode(),
        "understands imagepromoter.dev/v1alpha1 only",
    ),
    (
        "same-cr-twice",
        (
            CR_HEAD + "metadata: {name: app}\nspec: {}\n---\n" + CR_HEAD + "metadata: {name: app}\n"
        ).encode(),
        "also defined in",
    ),
    (
        "name-not-k8s",
        (CR_HEAD + "metadata: {name: 'a\\nb'}\nspec: {}\n").encode(),
        "not a Kubernetes name",
    ),
    ("not-a-mapping", b"- a\n- b\n", "not a mapping"),
]


@pytest.mark.parametrize(
    ("content", "words"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_a_hostile_manifest_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes, words: str, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "cr.yaml"
    path.write_bytes(content)
    run = _support.run_cli(
        ["-vv", "promote", str(path), "--workdir", str(tmp_path / "w")],
        address_space=ADDRESS_SPACE,
        measure=("hostile manifest", request.node.callspec.id),
    )
    assert run.returncode == 2, run.text
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"imagepromoter: {path}"), lines[0]
    assert words in lines[0]
    assert "Traceback" not in run.stderr


SECRET_PASSWORD = "hunter2-correct-horse-battery"

SECRET_HEAD = "apiVersion: v1\nkind: Secret\nmetadata: {name: push}\n"

BAD_SECRETS: list[tuple[str, bytes, str]] = [
    (
        "yaml-error-on-the-password-line",
        f'{SECRET_HEAD}stringData:\n  password: "{SECRET_PASSWORD}\n'.encode(),
        "line 5",
    ),
    (
        "yaml-error-after-the-password",
        f"{SECRET_HEAD}stringData:\n  password: {SECRET_PASSWORD}: x\n".encode(),
        "line 5",
    ),
    (
        "not-base64",
        f"{SECRET_HEAD}data:\n  password: '{SECRET_PASSWORD}'\n".encode(),
        "Secret push: Secret key password: is not valid base64",
    ),
    (
        "deep",
        b"apiVersion: v1\nkind: Secret\ndata: " + b"{a: " * 20_000 + b"}" * 20_000,
        "nests deeper",
    ),
    (
        "not-utf8",
        b"apiVersion: v1\nkind: Secret\nmetadata: {name: push}\nstringData: {password: \xff\xfe}\n",
        "not UTF-8",
    ),
    (
        "number-password",
        b"apiVersion: v1\nkind: Secret\nmetadata: {name: push}\nstringData: {password: 0123}\n",
        "quote the value",
    ),
]


@pytest.mark.parametrize(
    ("content", "words"), [b[1:] for b in BAD_SECRETS], ids=[b[0] for b in BAD_SECRETS]
)
def test_a_broken_secrets_file_never_echoes_a_line(
    tmp_path: Path, content: bytes, words: str, request: pytest.FixtureRequest
) -> None:
    crs = tmp_path / "cr.yaml"
    crs.write_text(CR_HEAD + "metadata: {name: app}\nspec: {}\n", "utf-8")
    secrets = tmp_path / "secrets.yaml"
    secrets.write_bytes(content)
    run = _support.run_cli(
        ["-vv", "promote", str(crs), "--secrets", str(secrets), "--workdir", str(tmp_path / "w")],
        address_space=ADDRESS_SPACE,
        measure=("hostile secrets file", request.node.callspec.id),
    )
    assert run.returncode == 2, run.text
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert str(secrets) in run.stderr and words in run.stderr
    assert _support.leaks([run.text], [(None, SECRET_PASSWORD)]) == []
    assert "Traceback" not in run.stderr


def test_a_deep_values_file_is_a_target_error_and_the_good_cr_is_promoted(
    stage: Callable[..., _support.Stage],
) -> None:
    deep = "[" * 10_000 + "]" * 10_000 + "\n"
    st = stage(extra_files={"deep.yaml": deep})
    bad = st.spec(targets=[{"path": "deep.yaml", "key": "image.tag"}])
    st.write_crs(_support.promotion("good", **st.spec()), _support.promotion("bad", **bad))
    run = st.promote("--output", "json", measure=("hostile values file", "10,000-deep"))
    assert run.peak_rss_kib < PEAK_RSS_KIB, run.peak_rss_kib
    assert run.returncode == 1
    found = _support.statuses(run)
    assert _support.ready(found["good"])["reason"] == "Promoted"
    bad_ready = _support.ready(found["bad"])
    assert bad_ready["reason"] == "TargetError"
    assert (
        "deep.yaml" in bad_ready["message"]
        and "nests deeper than 200 levels" in bad_ready["message"]
    )
    assert "unexpected" not in bad_ready["message"]
    assert "1.2.3" in st.file()


def test_a_deep_tag_list_is_a_registry_error_naming_the_limit(
    stage: Callable[..., _support.Stage],
) -> None:
    st = stage()
    st.write_crs(_support.promotion("app", **st.spec()))
    body = b'{"name": "x", "tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    st.proxy.add("status", path=r"/tags/list", status=200, body=body, times=20)
    run = st.promote("--output", "json", measure=("hostile tag JSON", "100,000-deep"))
    assert run.peak_rss_kib < PEAK_RSS_KIB, run.peak_rss_kib
    assert run.returncode == 1
    condition = _support.ready(_support.statuses(run)["app"])
    assert condition["reason"] == "RegistryError"
    assert "nests deeper than 64 levels" in condition["message"]
    assert "unexpected" not in condition["message"]


def test_many_key_targets_on_one_file_are_planned_in_one_parse(
    stage: Callable[..., _support.Stage],
) -> None:
    apps = 1000
    values = "".join(f"app{i}:\n  image:\n    tag: 1.0.0\n" for i in range(apps))
    st = stage(values=values)
    targets = [{"path": "values.yaml", "key": f"app{i}.image.tag"} for i in range(apps)]
    st.write_crs(_support.promotion("app", **st.spec(targets=targets)))
    run = st.promote("--output", "json", measure=("many targets", f"{apps} keys, one file"))
    assert run.peak_rss_kib < PEAK_RSS_KIB, run.peak_rss_kib
    assert run.returncode == 0, run.text[-2000:]
    assert st.file() == values.replace("tag: 1.0.0", "tag: 1.2.3")
    assert st.commits() == 2


def test_a_secret_file_as_json_list_is_read() -> None:
    """A sanity row: JSON is YAML, and a List of Secrets is accepted by the bounded loader."""
    from imagepromoter import manifests

    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            yaml.safe_load(
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: x}\n"
            )
        ],
    }
    loaded = manifests.load({"s.json": json.dumps(doc).encode()})
    assert loaded.secrets[("default", "s")] == {"password": "x"}
