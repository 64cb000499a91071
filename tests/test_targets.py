"""targets.apply, the planner's dispatch: every kind on one file, composed in order.

The kinds are tested in their own files (test_values, test_selectors, test_kustomize,
test_markers); here: that targets see each other's edits, that `${previous}` is what each
target replaced, that errors name the target they came from, and that nothing is written
twice.
"""

from __future__ import annotations

import pytest

from imagepromoter import errors, spec, targets

VARIABLES = {
    "image": "ghcr.io/myorg/myapp",
    "tag": "1.4.0",
    "digest": "sha256:ab",
    "name": "myapp",
    "namespace": "gitops",
    "version": "1.4.0",
}

MANIFEST = """\
# one file, four kinds of target
images:
- name: ghcr.io/myorg/myapp
  newTag: 1.3.0
spec:
  containers:
  - name: sidecar
    image: envoy:1
  - name: app
    image: ghcr.io/myorg/myapp:1.3.0 # {"$imagepolicy": "gitops:myapp"}
  env:
    git_branch: "release/1.3"
"""


def _t(**kind: object) -> spec.Target:
    fields: dict[str, object] = {"path": "f.yaml", "key": None, "regex": None, **kind}
    return spec.Target(**fields)  # type: ignore[arg-type]


def test_every_kind_on_one_file_composes_in_order() -> None:
    edits = targets.apply(
        [
            _t(kustomize_image="ghcr.io/myorg/myapp"),
            _t(markers=True, value=spec.MARKERS_DEFAULT_VALUE),
            _t(key="spec.containers[name=sidecar].image", value="envoy:2"),
            _t(regex='git_branch: "(?P<value>[^"]*)"', value="release/${tag}"),
        ],
        lambda path: MANIFEST.encode(),
        VARIABLES,
    )
    expected = (
        MANIFEST.replace("newTag: 1.3.0", "newTag: 1.4.0")
        .replace("myapp:1.3.0 #", "myapp:1.4.0 #")
        .replace("envoy:1", "envoy:2")
        .replace("release/1.3", "release/1.4.0")
    )
    assert edits.edited["f.yaml"] == expected
    assert edits.previous == ["1.3.0", "ghcr.io/myorg/myapp:1.3.0", "envoy:1", "release/1.3"]
    [change] = edits.changes()
    assert change.before == MANIFEST.encode() and change.after == expected.encode()


def test_previous_of_a_regex_target_is_its_group_at_the_first_match() -> None:
    text = 'git_branch: "feature/a"\nother: "x"\n'
    target = _t(regex='git_branch: "(.*)"', value="${previous}-2")
    edits = targets.apply([target], lambda path: text.encode(), VARIABLES)
    assert edits.edited["f.yaml"] == 'git_branch: "feature/a-2"\nother: "x"\n'
    assert edits.previous == ["feature/a"]


def test_a_target_that_changes_nothing_records_no_previous() -> None:
    text = "image: {tag: 1.4.0}\n"
    edits = targets.apply([_t(key="image.tag")], lambda path: text.encode(), VARIABLES)
    assert edits.changes() == () and edits.previous == []


def test_errors_name_the_target_and_file() -> None:
    with pytest.raises(errors.TargetError) as caught:
        targets.apply(
            [_t(key="image.tag"), _t(key="spec.containers[name=web].image")],
            lambda path: b"image: {tag: 1}\nspec: {containers: [{name: app}]}\n",
            VARIABLES,
        )
    assert str(caught.value).startswith("spec.targets[1] (f.yaml): key spec.containers[name=web]")


def test_each_file_is_read_once() -> None:
    reads: list[str] = []

    def read(path: str) -> bytes:
        reads.append(path)
        return b"a: 1\nb: 2\n"

    targets.apply([_t(key="a"), _t(key="b")], read, VARIABLES)
    assert reads == ["f.yaml"]


def test_not_utf8_is_a_target_error() -> None:
    with pytest.raises(errors.TargetError, match="is not UTF-8 text"):
        targets.apply([_t(key="a")], lambda path: b"a: \xff\n", VARIABLES)
