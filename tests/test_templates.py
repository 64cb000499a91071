"""`${name}` templates: substitution, the `$$` escape, malformed and unknown placeholders."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagepromoter import errors, templates

VARS = {
    "tag": "1.2.0-dev",
    "digest": "sha256:abc",
    "image": "ghcr.io/myorg/myapp",
    "version": "1.2.0",
    "path": "env/dev/values.yaml",
    "previous": "1.1.0-dev",
    "name": "myapp-dev",
    "namespace": "gitops",
    "build": "42",
    "empty": "",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${tag}", "1.2.0-dev"),
        ("plain text", "plain text"),
        ("", ""),
        ("v${version}-${build}", "v1.2.0-42"),
        ("${image}:${tag}", "ghcr.io/myorg/myapp:1.2.0-dev"),
        ("${tag}${tag}", "1.2.0-dev1.2.0-dev"),
        ("Promote ${image}:${tag} to ${path}\n\nwas ${previous}\n", None),
        ("$$", "$"),
        ("$${tag}", "${tag}"),
        ("$$${tag}", "$1.2.0-dev"),
        ("$$$$", "$$"),
        ("cost $5", "cost $5"),
        ("$", "$"),
        ("trailing $", "trailing $"),
        ("$tag", "$tag"),
        ("a}b{c", "a}b{c"),
        ("${empty}", ""),
        ("{tag}", "{tag}"),
        ("ünïcode ${tag} ✓", "ünïcode 1.2.0-dev ✓"),
        ("${name}.${namespace}", "myapp-dev.gitops"),
    ],
    ids=[
        "one-variable",
        "no-placeholder",
        "empty-template",
        "adjacent-literals",
        "image-and-tag",
        "repeated",
        "commit-message",
        "double-dollar",
        "escaped-placeholder",
        "dollar-then-placeholder",
        "four-dollars",
        "lone-dollar-in-text",
        "lone-dollar",
        "trailing-dollar",
        "shell-style-is-literal",
        "braces-alone",
        "empty-value-is-allowed-when-set",
        "braces-without-dollar",
        "unicode-text",
        "name-and-namespace",
    ],
)
def test_render(template: str, expected: str | None) -> None:
    if expected is None:
        expected = "Promote ghcr.io/myorg/myapp:1.2.0-dev to env/dev/values.yaml\n\nwas 1.1.0-dev\n"
    assert templates.render(template, VARS) == expected


@pytest.mark.parametrize(
    ("template", "in_message"),
    [
        ("${nope}", "unknown template variable ${nope}"),
        ("${Tag}", "${Tag}"),
        ("ok ${tag} then ${missing}", "${missing}"),
        ("${", "unclosed ${"),
        ("abc ${tag", "unclosed ${"),
        ("${}", "malformed placeholder ${}"),
        ("${ tag }", "write ${tag}"),
        ("${a.b}", "malformed placeholder ${a.b}"),
        ("${a-b}", "malformed placeholder"),
        ("${1tag}", "malformed placeholder"),
        ("${ta g:-x}", "malformed placeholder"),
        ("${oci.nope.x}", "malformed placeholder"),
        ("${a ${tag}", "malformed placeholder"),
        ("${missing} ${", "unclosed"),
    ],
    ids=[
        "unknown",
        "case-sensitive",
        "second-unknown",
        "bare-open",
        "unclosed-after-variable",
        "empty-name",
        "spaces-hint",
        "dotted",
        "dash",
        "leading-digit",
        "default-after-malformed-name",
        "oci-with-two-dots",
        "nested",
        "malformed-wins-over-unknown",
    ],
)
def test_render_raises_invalid_spec(template: str, in_message: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        templates.render(template, VARS, field="spec.targets[0].value")
    assert in_message in str(caught.value)
    assert caught.value.field == "spec.targets[0].value"


def test_unknown_variable_is_never_an_empty_string() -> None:
    with pytest.raises(errors.InvalidSpec):
        templates.render("${tga}", {"tag": "1"})


def test_render_default_field_and_positional_signature() -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        templates.render("${x}", {})
    assert caught.value.field == "template"


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("", set()),
        ("plain", set()),
        ("${tag}", {"tag"}),
        ("${tag}-${tag}", {"tag"}),
        ("${image}:${tag} ${path}", {"image", "tag", "path"}),
        ("$${tag}", set()),
        ("$$${tag}", {"tag"}),
        ("${_private9}", {"_private9"}),
        ("$tag", set()),
    ],
    ids=[
        "empty",
        "plain",
        "one",
        "repeated-once",
        "three",
        "escaped-not-counted",
        "escape-then-variable",
        "underscore-digits",
        "shell-style-not-counted",
    ],
)
def test_variables(template: str, names: set[str]) -> None:
    assert templates.variables(template) == names


@pytest.mark.parametrize(
    "template",
    ["${", "${}", "${ a }", "x${a"],
    ids=["open", "empty", "spaces", "unclosed"],
)
def test_variables_raises_for_malformed(template: str) -> None:
    with pytest.raises(errors.InvalidSpec):
        templates.variables(template)


@pytest.mark.parametrize(
    ("template", "groups", "ok"),
    [
        ("${tag}", (), True),
        ("${digest}${image}${version}${path}${name}${namespace}${previous}", (), True),
        ("${git_branch}", (), True),
        ("${commit_message}", (), True),
        ("${build}", ("build",), True),
        ("${build}", (), False),
        ("${branch}", ("build",), False),
        ("$${anything}", (), True),
    ],
    ids=[
        "builtin",
        "all-builtins",
        "webhook-field",
        "webhook-commit-message",
        "tagregex-group",
        "group-not-in-regex",
        "other-group",
        "escaped",
    ],
)
def test_check_against_known_variables(template: str, groups: tuple[str, ...], ok: bool) -> None:
    known = templates.known_variables(groups)
    if ok:
        templates.check(template, known, field="spec.git.commitMessage")
    else:
        with pytest.raises(errors.InvalidSpec) as caught:
            templates.check(template, known, field="spec.git.commitMessage")
        assert str(caught.value).startswith("spec.git.commitMessage: unknown template variable")


NAMES = st.sampled_from(sorted(VARS))
LITERALS = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=8)


@given(st.text())
def test_doubling_every_dollar_renders_any_text_literally(text: str) -> None:
    assert templates.render(text.replace("$", "$$"), {}) == text
    assert templates.variables(text.replace("$", "$$")) == set()


@given(st.lists(st.one_of(LITERALS, NAMES.map(lambda n: ("var", n))), max_size=8))
def test_render_is_the_concatenation_of_literals_and_values(
    pieces: list[str | tuple[str, str]],
) -> None:
    template = "".join(p if isinstance(p, str) else f"${{{p[1]}}}" for p in pieces)
    expected = "".join(p if isinstance(p, str) else VARS[p[1]] for p in pieces)
    assert templates.render(template, VARS) == expected
    assert templates.variables(template) == {p[1] for p in pieces if not isinstance(p, str)}


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("${tag:-x}", VARS, "1.2.0-dev"),
        ("${git_branch:-main}", VARS, "main"),
        ("${git_branch:-main}", {**VARS, "git_branch": "feat/x"}, "feat/x"),
        ("${git_branch:-}", VARS, ""),
        ("${nope:-a b:-c $x}", VARS, "a b:-c $x"),
        ("${oci.revision:-unknown}", VARS, "unknown"),
        ("${oci.revision}", {"oci.revision": "abc123"}, "abc123"),
        ("$${tag:-x}", VARS, "${tag:-x}"),
        ("${empty:-d}", VARS, ""),
    ],
    ids=["set-wins", "default", "payload-wins", "empty-default", "default-is-literal",
         "oci-default", "oci-set", "escaped", "set-but-empty-is-set"],
)  # fmt: skip
def test_defaults(template: str, variables: dict[str, str], expected: str) -> None:
    assert templates.render(template, variables) == expected


@pytest.mark.parametrize(
    ("template", "in_message"),
    [
        ("${git_branch}", "write ${git_branch:-default}"),
        ("${commit_message}", "no webhook announced this tag"),
        ("${oci.revision}", "no org.opencontainers.image.revision"),
    ],
    ids=["payload-field", "payload-field-2", "oci"],
)
def test_a_payload_or_oci_variable_this_tag_lacks_is_a_target_error(
    template: str, in_message: str
) -> None:
    with pytest.raises(errors.TargetError) as caught:
        templates.render(template, VARS, field="spec.targets[1].value")
    assert in_message in str(caught.value) and "spec.targets[1].value" in str(caught.value)


@pytest.mark.parametrize(
    ("template", "ok"),
    [
        ("${anything_from_a_payload:-x}", True),
        ("${oci.created}", True),
        ("${oci.nope}", False),
        ("${oci.nope:-x}", True),
        ("${docker_image_tag}", True),
        ("${typo}", False),
    ],
    ids=["default-allows-any-field", "oci", "unknown-oci", "unknown-oci-with-default",
         "seed-field", "typo"],
)  # fmt: skip
def test_check_with_defaults_and_oci(template: str, ok: bool) -> None:
    known = templates.known_variables(())
    if ok:
        templates.check(template, known)
    else:
        with pytest.raises(errors.InvalidSpec):
            templates.check(template, known)


def test_oci_variables_and_variables_strip_defaults() -> None:
    assert templates.oci_variables("${tag}", "${oci.source:-x} ${oci.revision}") == {
        "oci.source",
        "oci.revision",
    }
    assert templates.variables("${a:-b}${c}") == {"a", "c"}


# --- oci.* read from a real registry (annotations first, then config labels) --------------------


def _push_labelled(server: Any, repository: str, tag: str, *, index: bool) -> str:
    """An image whose config labels say version/source and whose manifest annotates revision."""
    from tests.servers import registry as reg

    labels = {
        "org.opencontainers.image.version": "from-label",
        "org.opencontainers.image.source": "https://github.com/myorg/myapp",
        "org.opencontainers.image.revision": "label-loses",
    }
    layer = f"layer {repository} {tag}".encode()
    rootfs = {"type": "layers", "diff_ids": [reg.digest_of(layer)]}
    config = reg.canonical_json(
        {"architecture": "amd64", "os": "linux", "config": {"Labels": labels}, "rootfs": rootfs}
    )
    manifest = reg.canonical_json({
        "schemaVersion": 2, "mediaType": reg.OCI_MANIFEST,
        "config": {"mediaType": reg.OCI_CONFIG, "digest": server.push_blob(repository, config),
                   "size": len(config)},
        "layers": [{"mediaType": reg.OCI_LAYER, "digest": server.push_blob(repository, layer),
                    "size": len(layer)}],
        "annotations": {"org.opencontainers.image.revision": "abc123"},
    })  # fmt: skip
    if not index:
        return str(server.push_manifest(repository, tag, manifest, reg.OCI_MANIFEST))
    child = server.push_manifest(repository, reg.digest_of(manifest), manifest, reg.OCI_MANIFEST)
    top = reg.canonical_json({
        "schemaVersion": 2, "mediaType": reg.OCI_INDEX,
        "manifests": [{"mediaType": reg.OCI_MANIFEST, "digest": child, "size": len(manifest),
                       "platform": {"os": "linux", "architecture": "amd64"}}],
        "annotations": {"org.opencontainers.image.created": "2026-12-01T00:00:00Z"},
    })  # fmt: skip
    return str(server.push_manifest(repository, tag, top, reg.OCI_INDEX))


@pytest.mark.servers
@pytest.mark.parametrize("index", [False, True], ids=["manifest", "index"])
async def test_oci_variables_from_the_registry(
    registry_open: Any, repo_name: str, index: bool
) -> None:
    from imagepromoter import reconcile, reference
    from imagepromoter.registry import client
    from tests.test_reconcile import NOW, MemoryGit, MemorySecrets, make_spec

    digest = _push_labelled(registry_open, repo_name, "1.1.0-dev", index=index)
    access = reference.RegistryAccess(image=reference.parse(f"{registry_open.host}/{repo_name}"),
                                      insecure=True)  # fmt: skip
    registry = client.RegistryClient()
    try:
        found = await registry.oci_labels(access, digest)
        expected = {"oci.revision": "abc123", "oci.version": "from-label",
                    "oci.source": "https://github.com/myorg/myapp"}  # fmt: skip
        if index:
            expected["oci.created"] = "2026-12-01T00:00:00Z"
        assert found == expected
        git = MemoryGit({"env/dev/values.yaml": b"image:\n  tag: 1.0.0-dev\n"})
        spec = make_spec(
            image=f"{registry_open.host}/{repo_name}", insecure=True,
            git={"url": "https://git.example.com/gitops.git",
                 "commitMessage": "${tag} from ${oci.revision} (${oci.created:-no date})"},
        )  # fmt: skip
        result = await reconcile.reconcile(
            reconcile.Resource("myapp-dev", "gitops", spec, {}, 1),
            registry=registry, git=git, secrets=MemorySecrets(), now=lambda: NOW,
        )  # fmt: skip
        assert result.outcome.reason == "Promoted", result.outcome.message
        date = "2026-12-01T00:00:00Z" if index else "no date"
        assert git.commits[0].message == f"1.1.0-dev from abc123 ({date})"
    finally:
        await registry.aclose()
