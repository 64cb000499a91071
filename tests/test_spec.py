"""spec.parse: a CR spec becomes a frozen Promotion, or SpecErrors naming every bad field."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import errors, reference, spec

DELETE = object()
SAME = object()  # expected: the value as written

BASE: dict[str, Any] = {
    "image": "ghcr.io/myorg/myapp",
    "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-(?P<build>\d+)-dev$",
    "git": {"url": "https://github.com/myorg/gitops.git"},
    "targets": [{"path": "environments/dev/values.yaml", "key": "image.tag"}],
}


def edited(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with dotted paths (`git.url`, `targets.0.path`) set, or removed with DELETE."""
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        elif value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return doc


def test_the_full_api_example_parses_into_typed_fields() -> None:
    promotion = spec.parse(
        {
            "image": "ghcr.io/myorg/myapp",
            "imagePullSecret": "ghcr-pull",
            "insecure": False,
            "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
            "excludeTags": [".*-debug$"],
            "policy": "semver",
            "semverRange": ">=1.0.0 <2.0.0",
            "interval": "5m",
            "suspend": False,
            "git": {
                "url": "https://github.com/myorg/gitops.git",
                "branch": "main",
                "pushBranch": "",
                "secretRef": "gitops-write",
                "author": {"name": "imagepromoter", "email": "imagepromoter@example.com"},
                "commitMessage": "Promote ${image}:${tag} to ${path}\n",
            },
            "targets": [
                {"path": "environments/dev/values.yaml", "key": "image.tag", "value": "${tag}"},
                {
                    "path": "environments/dev/values.yaml",
                    "regex": 'git_branch: "(?P<value>.*)"',
                    "value": "${git_branch}",
                },
            ],
        }
    )
    assert promotion == spec.Promotion(
        image=reference.ImageReference("ghcr.io", "myorg/myapp"),
        image_text="ghcr.io/myorg/myapp",
        tag_regex=r"^(?P<version>\d+\.\d+\.\d+)-dev$",
        policy="semver",
        semver_range=">=1.0.0 <2.0.0",
        exclude_tags=(".*-debug$",),
        image_pull_secret="ghcr-pull",
        insecure=False,
        interval=timedelta(minutes=5),
        suspend=False,
        git=spec.GitSpec(
            url="https://github.com/myorg/gitops.git",
            branch="main",
            push_branch=None,
            secret_ref="gitops-write",
            author=spec.Author("imagepromoter", "imagepromoter@example.com"),
            commit_message="Promote ${image}:${tag} to ${path}\n",
        ),
        targets=(
            spec.Target("environments/dev/values.yaml", "image.tag", None, "${tag}"),
            spec.Target(
                "environments/dev/values.yaml", None, 'git_branch: "(?P<value>.*)"', "${git_branch}"
            ),
        ),
    )


def test_defaults_for_a_minimal_spec() -> None:
    promotion = spec.parse(BASE)
    assert promotion.policy == "semver"
    assert promotion.semver_range is None
    assert promotion.exclude_tags == ()
    assert promotion.interval == timedelta(minutes=5)
    assert promotion.suspend is False and promotion.insecure is False
    assert promotion.git.branch is None and promotion.git.push_branch is None
    assert promotion.git.author == spec.Author("imagepromoter", "imagepromoter@localhost")
    assert promotion.git.commit_message == spec.DEFAULT_COMMIT_MESSAGE
    assert promotion.targets == (
        spec.Target("environments/dev/values.yaml", "image.tag", None, "${tag}"),
    )
    assert promotion.image == reference.ImageReference("ghcr.io", "myorg/myapp")


def test_the_promotion_is_immutable() -> None:
    promotion = spec.parse(BASE)
    with pytest.raises(AttributeError):
        promotion.policy = "newest"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "attribute", "expected"),
    [
        (("interval", "30s"), "interval", timedelta(seconds=30)),
        (("interval", "1h"), "interval", timedelta(hours=1)),
        (("interval", "1h30m"), "interval", timedelta(minutes=90)),
        (("interval", "2h45m10s"), "interval", timedelta(hours=2, minutes=45, seconds=10)),
        (("interval", "90m"), "interval", timedelta(minutes=90)),
        (("interval", "1m0s"), "interval", timedelta(minutes=1)),
        (("interval", None), "interval", timedelta(minutes=5)),
        (("policy", "numerical"), "policy", "numerical"),
        (("policy", "alphabetical"), "policy", "alphabetical"),
        (("policy", "newest"), "policy", "newest"),
        (("semverRange", ""), "semver_range", None),
        (("semverRange", None), "semver_range", None),
        (("imagePullSecret", ""), "image_pull_secret", None),
        (
            ("image", "nginx"),
            "image",
            reference.ImageReference("registry-1.docker.io", "library/nginx"),
        ),
        (("image", "  ghcr.io/a/b  "), "image_text", "ghcr.io/a/b"),
        (("suspend", True), "suspend", True),
        (("insecure", True), "insecure", True),
        (("excludeTags", []), "exclude_tags", ()),
        (("excludeTags", ["-debug$", "^rc"]), "exclude_tags", ("-debug$", "^rc")),
        (("tagRegex", r"^(?<version>\d+)$"), "tag_regex", r"^(?<version>\d+)$"),
        (("semverRange", "1.2.x"), "semver_range", "1.2.x"),
        (("semverRange", "^1.2"), "semver_range", "^1.2"),
        (("semverRange", "~1.2"), "semver_range", "~1.2"),
        (("semverRange", ">=1 <2"), "semver_range", ">=1 <2"),
        (("semverRange", ">0,<2"), "semver_range", ">0,<2"),
        (("semverRange", "^1.0 || ^2.0"), "semver_range", "^1.0 || ^2.0"),
        (("semverRange", ">=1.2.0-rc.0"), "semver_range", ">=1.2.0-rc.0"),
        (("excludeTags", ["(?<x>debug)$"]), "exclude_tags", ("(?<x>debug)$",)),
    ],
    ids=[
        "interval-30s",
        "interval-1h",
        "interval-1h30m",
        "interval-2h45m10s",
        "interval-90m",
        "interval-1m0s",
        "interval-null-default",
        "policy-numerical",
        "policy-alphabetical",
        "policy-newest",
        "range-empty-is-absent",
        "range-null-is-absent",
        "pull-secret-empty-is-absent",
        "docker-hub-short-name",
        "image-text-stripped",
        "suspend",
        "insecure",
        "exclude-empty",
        "exclude-two",
        "javascript-named-group",
        "range-x",
        "range-caret",
        "range-tilde",
        "range-and",
        "range-comma",
        "range-or",
        "range-prerelease",
        "exclude-javascript-group",
    ],
)
def test_accepted_values(change: tuple[str, Any], attribute: str, expected: Any) -> None:
    assert getattr(spec.parse(edited(change)), attribute) == expected


@pytest.mark.parametrize(
    ("change", "attribute", "expected"),
    [
        (("git.url", "https://github.com/org/repo.git"), "url", SAME),
        (("git.url", "http://git.internal:8080/org/repo"), "url", SAME),
        (("git.url", "ssh://git@github.com/org/repo.git"), "url", SAME),
        (("git.url", "ssh://git@gitea.local:2222/org/repo.git"), "url", SAME),
        (("git.url", "git@github.com:org/repo.git"), "url", SAME),
        (("git.url", "https://[::1]:3000/org/repo"), "url", SAME),
        (
            ("git.url", "  https://github.com/org/repo.git "),
            "url",
            "https://github.com/org/repo.git",
        ),
        (("git.branch", "main"), "branch", "main"),
        (("git.branch", "release/1.x"), "branch", "release/1.x"),
        (("git.branch", "feature_A-2.0"), "branch", "feature_A-2.0"),
        (("git.branch", ""), "branch", None),
        (("git.pushBranch", "imagepromoter/dev"), "push_branch", "imagepromoter/dev"),
        (("git.pushBranch", ""), "push_branch", None),
        (("git.secretRef", "gitops-write"), "secret_ref", "gitops-write"),
        (("git.author", {"name": "Bot"}), "author", spec.Author("Bot", "imagepromoter@localhost")),
        (("git.author", {"email": "b@x.io"}), "author", spec.Author("imagepromoter", "b@x.io")),
        (("git.commitMessage", "bump ${tag} (${build})"), "commit_message", SAME),
        (("git.commitMessage", "costs $$5 ${commit_message}"), "commit_message", SAME),
    ],
    ids=[
        "https",
        "http-with-port",
        "ssh-scheme",
        "ssh-port",
        "scp-like",
        "ipv6-host",
        "url-stripped",
        "branch-main",
        "branch-with-slash",
        "branch-mixed",
        "branch-empty-is-default",
        "push-branch",
        "push-branch-empty",
        "secret-ref",
        "author-name-only",
        "author-email-only",
        "message-uses-group",
        "message-escape-and-webhook",
    ],
)
def test_accepted_git_values(change: tuple[str, Any], attribute: str, expected: Any) -> None:
    git = spec.parse(edited(change)).git
    assert getattr(git, attribute) == (change[1] if expected is SAME else expected)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"path": "a.yaml", "key": "image.tag"}, ("a.yaml", "image.tag", None, "${tag}")),
        (
            {"path": "./env//dev/values.yaml", "key": "a"},
            ("env/dev/values.yaml", "a", None, "${tag}"),
        ),
        ({"path": "env/x/../dev.yaml", "key": "a"}, ("env/dev.yaml", "a", None, "${tag}")),
        ({"path": "a.yaml", "key": r"annotations.app\.kubernetes\.io/version"}, None),
        ({"path": "a.yaml", "key": "containers.0.image"}, None),
        ({"path": "a.yaml", "key": "a\\\\b"}, None),
        ({"path": "a.yaml", "regex": "tag: (.*)"}, None),
        ({"path": "a.yaml", "regex": "tag: (?P<value>.*)", "value": "v${version}"}, None),
        ({"path": "a.yaml", "key": "t", "value": "${previous}-${build}-${digest}"}, None),
        ({"path": "a.yaml", "key": "t", "value": "literal"}, None),
        ({"path": ".github/values.yaml", "key": "t"}, None),
        ({"path": "gitops.yaml", "key": "t"}, None),
        ({"path": "a.yaml", "key": "t", "value": None}, ("a.yaml", "t", None, "${tag}")),
    ],
    ids=[
        "key",
        "path-normalised",
        "dotdot-inside-repo",
        "escaped-dot-key",
        "list-index-key",
        "escaped-backslash-key",
        "regex-first-group",
        "regex-value-group",
        "value-template",
        "value-literal",
        "dot-github-is-fine",
        "git-in-name-is-fine",
        "value-null-default",
    ],
)
def test_accepted_targets(target: dict[str, Any], expected: tuple[Any, ...] | None) -> None:
    (parsed,) = spec.parse(edited(("targets", [target]))).targets
    if expected is None:
        expected = (target["path"], target.get("key"), target.get("regex"), target.get("value"))
        expected = (*expected[:3], expected[3] or "${tag}")
    assert (parsed.path, parsed.key, parsed.regex, parsed.value) == expected


BAD: list[tuple[str, tuple[str, Any], str, str]] = [
    # (id, change, field, fragment of the problem)
    ("image-missing", ("image", DELETE), "spec.image", "is required"),
    ("image-empty", ("image", " "), "spec.image", "must not be empty"),
    ("image-number", ("image", 5), "spec.image", "must be a string"),
    ("image-with-tag", ("image", "ghcr.io/a/b:1.0"), "spec.image", "has a tag"),
    ("image-with-scheme", ("image", "https://ghcr.io/a/b"), "spec.image", "URL scheme"),
    ("image-uppercase", ("image", "ghcr.io/A/b"), "spec.image", "not a valid repository"),
    ("tagregex-missing", ("tagRegex", DELETE), "spec.tagRegex", "is required"),
    ("tagregex-empty", ("tagRegex", ""), "spec.tagRegex", "must not be empty"),
    ("tagregex-bad", ("tagRegex", "(unclosed"), "spec.tagRegex", ""),
    ("tagregex-bad-class", ("tagRegex", "[a-"), "spec.tagRegex", ""),
    ("group-shadows-tag", ("tagRegex", r"^(?P<tag>\d+)$"), "spec.tagRegex", "shadow"),
    ("group-shadows-path", ("tagRegex", r"^(?P<path>\d+)$"), "spec.tagRegex", "${path}"),
    ("exclude-not-list", ("excludeTags", "-debug$"), "spec.excludeTags", "must be a list"),
    ("exclude-bad", ("excludeTags", ["ok", "(bad"]), "spec.excludeTags[1]", ""),
    ("exclude-number", ("excludeTags", [3]), "spec.excludeTags[0]", "must be a string"),
    ("policy-unknown", ("policy", "latest"), "spec.policy", "semver, numerical"),
    ("policy-case", ("policy", "SemVer"), "spec.policy", "is not one of"),
    ("range-bad", ("semverRange", "garbage"), "spec.semverRange", ""),
    ("range-bad-op", ("semverRange", ">=garbage"), "spec.semverRange", ""),
    ("range-number", ("semverRange", 1), "spec.semverRange", "must be a string"),
    ("interval-zero", ("interval", "0s"), "spec.interval", "longer than zero"),
    ("interval-zero-compound", ("interval", "0h0m"), "spec.interval", "longer than zero"),
    ("interval-bare-number", ("interval", "5"), "spec.interval", "not a duration"),
    ("interval-int", ("interval", 300), "spec.interval", "must be a string"),
    ("interval-days", ("interval", "1d"), "spec.interval", "not a duration"),
    ("interval-order", ("interval", "5m1h"), "spec.interval", "not a duration"),
    ("interval-fraction", ("interval", "1.5h"), "spec.interval", "not a duration"),
    ("interval-negative", ("interval", "-5m"), "spec.interval", "not a duration"),
    ("interval-empty", ("interval", ""), "spec.interval", "not a duration"),
    ("interval-spaces", ("interval", "1h 30m"), "spec.interval", "not a duration"),
    ("interval-ms", ("interval", "500ms"), "spec.interval", "not a duration"),
    ("interval-huge", ("interval", "9000h"), "spec.interval", "longer than a year"),
    ("interval-overflow", ("interval", "99999999999999999h"), "spec.interval", "longer than"),
    ("suspend-string", ("suspend", "true"), "spec.suspend", "true or false"),
    ("insecure-int", ("insecure", 1), "spec.insecure", "true or false"),
    ("pull-secret-bad", ("imagePullSecret", "Ghcr_Pull"), "spec.imagePullSecret", "Secret name"),
    ("unknown-field", ("semverrange", "^1"), "spec.semverrange", "did you mean semverRange"),
    ("unknown-field-far", ("webhooks", {}), "spec.webhooks", "known: image"),
    ("git-missing", ("git", DELETE), "spec.git", "is required"),
    ("git-string", ("git", "https://x/y"), "spec.git", "must be a mapping"),
    ("git-url-missing", ("git.url", DELETE), "spec.git.url", "is required"),
    ("git-url-ftp", ("git.url", "ftp://host/repo"), "spec.git.url", "ftp:// is not supported"),
    ("git-url-file", ("git.url", "file:///srv/repo"), "spec.git.url", "not supported"),
    ("git-url-path", ("git.url", "/srv/repo.git"), "spec.git.url", "must be an https://"),
    ("git-url-word", ("git.url", "gitops"), "spec.git.url", "must be an https://"),
    ("git-url-no-host", ("git.url", "https:///org/repo"), "spec.git.url", "needs a host"),
    ("git-url-no-path", ("git.url", "https://github.com/"), "spec.git.url", "no repository path"),
    (
        "git-url-user-pass",
        ("git.url", "https://bot:hunter2@github.com/o/r"),
        "spec.git.url",
        "secretRef",
    ),
    (
        "git-url-token-user",
        ("git.url", "https://ghp_token@github.com/o/r"),
        "spec.git.url",
        "contains credentials",
    ),
    (
        "git-url-ssh-password",
        ("git.url", "ssh://git:hunter2@host/o/r"),
        "spec.git.url",
        "contains credentials",
    ),
    (
        "git-url-scp-password",
        ("git.url", "git:hunter2@host:o/r"),
        "spec.git.url",
        "contains credentials",
    ),
    (
        "git-url-userinfo-after-a-port-like-path",
        ("git.url", "http://user:1234/SECRET@host/o/r.git"),
        "spec.git.url",
        "git.secretRef",
    ),
    (
        "git-url-at-in-path",
        ("git.url", "https://host/o/r@x.git"),
        "spec.git.url",
        "contains credentials",
    ),
    (
        "git-url-scp-at-in-path",
        ("git.url", "git@host:o/SECRET@r"),
        "spec.git.url",
        "contains credentials",
    ),
    ("git-url-space", ("git.url", "https://host/o r.git"), "spec.git.url", "spaces"),
    ("git-url-newline", ("git.url", "https://host/o\nr.git"), "spec.git.url", "control"),
    ("git-unknown-field", ("git.secretref", "x"), "spec.git.secretref", "did you mean secretRef"),
    ("branch-refs-prefix", ("git.branch", "refs/heads/main"), "spec.git.branch", "refs/heads/"),
    ("branch-dotdot", ("git.branch", "a..b"), "spec.git.branch", ".."),
    ("branch-space", ("git.branch", "my branch"), "spec.git.branch", "spaces"),
    ("branch-tilde", ("git.branch", "a~1"), "spec.git.branch", "~^:?*["),
    ("branch-colon", ("git.branch", "a:b"), "spec.git.branch", "not a valid branch"),
    ("branch-dash", ("git.branch", "-main"), "spec.git.branch", "must not start with -"),
    ("branch-trailing-slash", ("git.branch", "main/"), "spec.git.branch", "end with /"),
    ("branch-trailing-dot", ("git.branch", "main."), "spec.git.branch", "end with"),
    ("branch-lock", ("git.branch", "main.lock"), "spec.git.branch", ".lock"),
    ("branch-dot-component", ("git.branch", "a/.b"), "spec.git.branch", "start with ."),
    ("branch-at-brace", ("git.branch", "a@{1}"), "spec.git.branch", "@{"),
    ("branch-at", ("git.branch", "@"), "spec.git.branch", "reserved"),
    ("branch-head", ("git.branch", "HEAD"), "spec.git.branch", "reserved"),
    ("branch-double-slash", ("git.branch", "a//b"), "spec.git.branch", "//"),
    ("branch-number", ("git.branch", 1), "spec.git.branch", "must be a string"),
    ("push-branch-bad", ("git.pushBranch", "x y"), "spec.git.pushBranch", "not a valid branch"),
    ("secret-ref-bad", ("git.secretRef", "Write!"), "spec.git.secretRef", "Secret name"),
    ("author-string", ("git.author", "bot"), "spec.git.author", "must be a mapping"),
    ("author-name-empty", ("git.author", {"name": ""}), "spec.git.author.name", "not be empty"),
    ("author-name-angle", ("git.author", {"name": "a <b>"}), "spec.git.author.name", "<, >"),
    ("author-name-newline", ("git.author", {"name": "a\nb"}), "spec.git.author.name", "control"),
    (
        "author-email-bad",
        ("git.author", {"email": "nobody"}),
        "spec.git.author.email",
        "not an address",
    ),
    (
        "author-email-space",
        ("git.author", {"email": "a b@c"}),
        "spec.git.author.email",
        "not an address",
    ),
    ("author-unknown", ("git.author", {"mail": "a@b"}), "spec.git.author.mail", "did you mean"),
    (
        "message-unknown-var",
        ("git.commitMessage", "bump ${tga}"),
        "spec.git.commitMessage",
        "unknown template variable ${tga}",
    ),
    (
        "message-group-not-in-regex",
        ("git.commitMessage", "${branch}"),
        "spec.git.commitMessage",
        "${branch}",
    ),
    (
        "message-malformed",
        ("git.commitMessage", "bump ${tag"),
        "spec.git.commitMessage",
        "unclosed",
    ),
    ("message-empty", ("git.commitMessage", ""), "spec.git.commitMessage", "not be empty"),
    ("message-list", ("git.commitMessage", ["a"]), "spec.git.commitMessage", "must be a string"),
    ("targets-missing", ("targets", DELETE), "spec.targets", "is required"),
    ("targets-empty", ("targets", []), "spec.targets", "non-empty list"),
    ("targets-mapping", ("targets", {"path": "a"}), "spec.targets", "non-empty list"),
    ("target-string", ("targets", ["a.yaml"]), "spec.targets[0]", "must be a mapping"),
    ("target-no-path", ("targets", [{"key": "a"}]), "spec.targets[0].path", "is required"),
    ("target-neither", ("targets", [{"path": "a.yaml"}]), "spec.targets[0]", "exactly one"),
    (
        "target-both",
        ("targets", [{"path": "a.yaml", "key": "a", "regex": "(a)"}]),
        "spec.targets[0]",
        "both are set",
    ),
    ("target-unknown", ("targets.0.keys", "a"), "spec.targets[0].keys", "did you mean key"),
    ("path-absolute", ("targets.0.path", "/etc/passwd"), "spec.targets[0].path", "absolute"),
    (
        "path-escape",
        ("targets.0.path", "../other/values.yaml"),
        "spec.targets[0].path",
        "must stay inside the repository",
    ),
    (
        "path-escape-deep",
        ("targets.0.path", "a/../../b.yaml"),
        "spec.targets[0].path",
        "must stay inside the repository",
    ),
    ("path-dotdot", ("targets.0.path", ".."), "spec.targets[0].path", "inside the repository"),
    ("path-dot", ("targets.0.path", "."), "spec.targets[0].path", "inside the repository"),
    ("too-many-excludes", ("excludeTags", ["x"] * 101), "spec.excludeTags", "combine them with |"),
    ("path-git-dir", ("targets.0.path", ".git/config"), "spec.targets[0].path", ".git/"),
    ("path-git-nested", ("targets.0.path", "sub/.git/HEAD"), "spec.targets[0].path", ".git/"),
    ("path-git-case", ("targets.0.path", ".GIT/config"), "spec.targets[0].path", ".git/"),
    ("path-git-sneaky", ("targets.0.path", "a/../.git/config"), "spec.targets[0].path", ".git/"),
    # git's verify_path (hasDotgit): NTFS and HFS+ readings of `.git` are refused too
    ("path-git-trailing-dot", ("targets.0.path", ".git./config"), "spec.targets[0].path", ".git/"),
    (
        "path-git-trailing-space",
        ("targets.0.path", ".git /config"),
        "spec.targets[0].path",
        ".git/",
    ),
    ("path-git-dots-spaces", ("targets.0.path", "a/.Git. . /x"), "spec.targets[0].path", ".git/"),
    ("path-git-zwnj", ("targets.0.path", ".g\u200cit/config"), "spec.targets[0].path", ".git/"),
    ("path-git-bom", ("targets.0.path", "\ufeff.git/config"), "spec.targets[0].path", ".git/"),
    ("path-git-rlo", ("targets.0.path", ".gi\u202et/config"), "spec.targets[0].path", ".git/"),
    ("path-git-8.3", ("targets.0.path", "GIT~1/config"), "spec.targets[0].path", ".git/"),
    ("path-git-file", ("targets.0.path", "a/.git"), "spec.targets[0].path", ".git/"),
    ("path-invisible", ("targets.0.path", "a\u202e.yaml"), "spec.targets[0].path", "invisible"),
    ("path-c1-control", ("targets.0.path", "a\x85.yaml"), "spec.targets[0].path", "invisible"),
    ("path-backslash", ("targets.0.path", "env\\dev.yaml"), "spec.targets[0].path", "/ separators"),
    ("path-nul", ("targets.0.path", "a\x00.yaml"), "spec.targets[0].path", "control"),
    ("path-newline", ("targets.0.path", "a\n.yaml"), "spec.targets[0].path", "control"),
    ("path-directory", ("targets.0.path", "env/"), "spec.targets[0].path", "directory"),
    ("path-empty", ("targets.0.path", ""), "spec.targets[0].path", "not be empty"),
    ("key-empty", ("targets.0.key", ""), "spec.targets[0].key", "not be empty"),
    ("key-empty-segment", ("targets.0.key", "image..tag"), "spec.targets[0].key", "empty segment"),
    ("key-leading-dot", ("targets.0.key", ".tag"), "spec.targets[0].key", "empty segment"),
    ("key-trailing-dot", ("targets.0.key", "tag."), "spec.targets[0].key", "empty segment"),
    ("key-bad-escape", ("targets.0.key", r"a\b"), "spec.targets[0].key", r"write \. for a dot"),
    ("key-trailing-backslash", ("targets.0.key", "a\\"), "spec.targets[0].key", "backslash"),
    ("key-number", ("targets.0.key", 3), "spec.targets[0].key", "must be a string"),
    (
        "regex-bad",
        ("targets", [{"path": "a", "regex": "(a"}]),
        "spec.targets[0].regex",
        "is not a valid regular expression",
    ),
    (
        "regex-lookahead-is-not-linear-time",
        ("targets", [{"path": "a", "regex": "(?=tag)(?<value>a)"}]),
        "spec.targets[0].regex",
        "uses lookaround",
    ),
    (
        "regex-no-group",
        ("targets", [{"path": "a", "regex": "tag: .*"}]),
        "spec.targets[0].regex",
        "no group",
    ),
    (
        "regex-empty",
        ("targets", [{"path": "a", "regex": ""}]),
        "spec.targets[0].regex",
        "not be empty",
    ),
    ("value-unknown", ("targets.0.value", "${tga}"), "spec.targets[0].value", "${tga}"),
    ("value-malformed", ("targets.0.value", "${}"), "spec.targets[0].value", "malformed"),
    ("value-empty", ("targets.0.value", ""), "spec.targets[0].value", "not be empty"),
    ("value-number", ("targets.0.value", 1.1), "spec.targets[0].value", "quote it"),
    (
        "duplicate-target",
        ("targets", [{"path": "a.yaml", "key": "t"}, {"path": "./a.yaml", "key": "t"}]),
        "spec.targets[1]",
        "as spec.targets[0]",
    ),
]


@pytest.mark.parametrize(
    ("change", "field", "fragment"), [row[1:] for row in BAD], ids=[row[0] for row in BAD]
)
def test_rejected_values_name_their_field(
    change: tuple[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(edited(change))
    assert isinstance(caught.value, errors.InvalidSpec)
    assert isinstance(caught.value, ValueError)
    matching = [p for p in caught.value.problems if p.field == field]
    assert matching, [str(p) for p in caught.value.problems]
    assert any(fragment in p.problem for p in matching), [str(p) for p in matching]
    assert f"{field}: " in str(caught.value)


PLAIN = "http://git.internal:8080/org/gitops.git"
SECURE = "https://github.com/org/gitops.git"
REFUSED = "spec.git.url: is plain http:// and spec.git.secretRef push is set"


@pytest.mark.parametrize(
    ("url", "secret_ref", "insecure", "outcome"),
    [
        (PLAIN, "push", DELETE, REFUSED),
        (PLAIN, "push", False, REFUSED),
        ("HTTP://git.internal/org/gitops.git", "push", DELETE, REFUSED),
        (PLAIN, "push", True, True),
        (PLAIN, DELETE, DELETE, False),
        (PLAIN, "", DELETE, False),
        (SECURE, "push", DELETE, False),
        (SECURE, DELETE, True, True),
        ("ssh://git@git.internal/org/gitops.git", "push", DELETE, False),
        (PLAIN, "push", "yes", "spec.git.insecure: must be true or false, not 'yes'"),
    ],
    ids=[
        "http-secret-refused",
        "http-secret-insecure-false-refused",
        "http-upper-case-refused",
        "http-secret-insecure-opt-in",
        "http-anonymous",
        "http-secret-empty-is-anonymous",
        "https-secret",
        "https-insecure-changes-nothing-else",
        "ssh-secret",
        "insecure-not-boolean",
    ],
)
def test_credentials_go_over_plain_http_only_with_git_insecure(
    url: str, secret_ref: Any, insecure: Any, outcome: bool | str
) -> None:
    doc = edited(("git.url", url), ("git.secretRef", secret_ref), ("git.insecure", insecure))
    if isinstance(outcome, str):
        with pytest.raises(spec.SpecErrors) as caught:
            spec.parse(doc)
        assert outcome in str(caught.value)
        if outcome == REFUSED:
            assert "use an https:// URL, or set spec.git.insecure: true" in str(caught.value)
        return
    assert spec.parse(doc).git.insecure is outcome


def test_semver_range_with_another_policy_is_an_error() -> None:
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(edited(("policy", "numerical"), ("semverRange", "^1")))
    (problem,) = caught.value.problems
    assert problem.field == "spec.semverRange"
    assert "policy: semver" in problem.problem


def test_every_problem_is_reported_at_once_in_order() -> None:
    doc = edited(
        ("tagRegex", "(unclosed"),
        ("interval", "1d"),
        ("git.url", "ftp://x/y"),
        (
            "targets",
            [
                {"path": "ok.yaml", "key": "a"},
                {"path": "../escape.yaml", "key": "a"},
                {"path": "b.yaml"},
            ],
        ),
    )
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(doc)
    fields = [p.field for p in caught.value.problems]
    assert fields == [
        "spec.tagRegex",
        "spec.interval",
        "spec.git.url",
        "spec.targets[1].path",
        "spec.targets[2]",
    ]
    message = str(caught.value)
    assert message.startswith("spec.tagRegex: ")
    assert "; spec.targets[1].path: '../escape.yaml' must stay inside the repository; " in message
    assert caught.value.reason == "InvalidSpec" and caught.value.permanent


def test_unknown_variables_are_not_reported_when_tag_regex_is_broken() -> None:
    """Its groups are unknown, so only the regex is wrong: one problem, not a cascade."""
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(edited(("tagRegex", "(?P<build>"), ("targets.0.value", "${build}")))
    assert [p.field for p in caught.value.problems] == ["spec.tagRegex"]


@pytest.mark.parametrize(
    "url",
    [
        "https://bot:s3cr3t-t0ken@github.com/o/r.git",
        "http://user:1234/s3cr3t-t0ken@github.com/o/r.git",
        "ssh://git:s3cr3t-t0ken@host/o/r",
        "git:s3cr3t-t0ken@host:o/r",
    ],
    ids=["userinfo", "userinfo-after-port-like", "ssh-password", "scp-password"],
)
def test_a_url_with_credentials_is_never_echoed(url: str) -> None:
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(edited(("git.url", url)))
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in repr(caught.value.problems)


@pytest.mark.parametrize(
    ("component", "refused"),
    [
        (".git", True),
        (".GIT", True),
        (".git.", True),
        (".git ", True),
        (".git . .", True),
        (".g\u200cit", True),
        (".g\u200dit", True),
        ("\u206a.git", True),
        ("git~1", True),
        (".gitignore", False),
        (".github", False),
        ("git", False),
        ("x.git", False),
        (".g\u00e9t", False),
    ],
)
def test_is_dotgit_reads_names_as_git_does(component: str, refused: bool) -> None:
    assert spec.is_dotgit(component) is refused


def test_spec_that_is_not_a_mapping() -> None:
    with pytest.raises(spec.SpecErrors) as caught:
        spec.parse(["image"])  # type: ignore[arg-type]
    assert str(caught.value) == "spec: must be a mapping"


@pytest.mark.parametrize(
    ("key", "segments"),
    [
        ("image.tag", ["image", "tag"]),
        ("tag", ["tag"]),
        ("containers.0.image", ["containers", "0", "image"]),
        (r"a\.b.c", ["a.b", "c"]),
        ("a\\\\.b", ["a\\", "b"]),
        (r"podAnnotations.app\.kubernetes\.io/name", ["podAnnotations", "app.kubernetes.io/name"]),
    ],
    ids=["two", "one", "list-index", "escaped-dot", "escaped-backslash", "annotation"],
)
def test_key_segments(key: str, segments: list[str]) -> None:
    assert spec.key_segments(key) == segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        ("5", None),
        ("1d", None),
        ("", None),
        ("h", None),
        ("1h1h", None),
    ],
    ids=["s", "m", "hm", "zero-parses", "bare", "day", "empty", "unit-only", "repeated-unit"],
)
def test_parse_interval(text: str, expected: timedelta | None) -> None:
    assert spec.parse_interval(text) == expected


EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_shipped_examples_parse(path: Path) -> None:
    docs = [
        d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "ImagePromotion"
    ]
    for manifest in docs:
        promotion = spec.parse(manifest["spec"])
        assert promotion.targets and promotion.git.url.startswith("https://")


def test_there_are_examples_to_parse() -> None:
    kinds = [d.get("kind") for p in EXAMPLES for d in yaml.safe_load_all(p.read_text()) if d]
    assert kinds.count("ImagePromotion") >= 2
