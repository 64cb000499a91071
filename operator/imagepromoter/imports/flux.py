"""Flux image automation -> ImagePromotions: one per ImagePolicy, with the same name and namespace.

Flux splits the job over four objects: an ImageRepository scans (image, interval, pull secret,
exclusionList), an ImagePolicy chooses (filterTags, semver/alphabetical/numerical), an
ImageUpdateAutomation writes (the GitRepository to push to, branch, author, `update.path`) and
the files carry setter markers `# {"$imagepolicy": "<namespace>:<policy>"}`. An ImagePromotion
named like the ImagePolicy, with a `markers: true` target on the automation's `update.path`,
therefore sets exactly the values Flux would, with the user's files left unchanged.

What maps exactly is translated silently; everything else gets a Note: a Go commit template
(ours are `${...}`), `alphabetical`/`numerical` in descending order, Flux's float parsing of
numerical tags, an `extract` that is not one named group, cloud `provider` auth, checkout of a
tag or commit, push refspecs, signing keys, and missing objects (placeholders are written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imagepromoter import errors, policy, semver, spec
from imagepromoter import imports as common

IMAGE_GROUP = "image.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
DEFAULT_EXCLUSIONS = ["^.*\\.sig$"]  # Flux's default exclusionList (cosign signatures)
_TEMPLATE_MARKS = ("{{",)


def relevant(doc: Mapping[str, Any]) -> bool:
    """True for the Flux objects this translator reads."""
    return any(
        common.kind_of(doc, IMAGE_GROUP, kind)
        for kind in ("ImageRepository", "ImagePolicy", "ImageUpdateAutomation")
    ) or common.kind_of(doc, SOURCE_GROUP, "GitRepository")


def translate(docs: Sequence[Mapping[str, Any]]) -> list[common.Translation]:
    """An ImagePromotion for every ImagePolicy among `docs`."""
    repositories = _index(docs, IMAGE_GROUP, "ImageRepository")
    sources = _index(docs, SOURCE_GROUP, "GitRepository")
    automations = [d for d in docs if common.kind_of(d, IMAGE_GROUP, "ImageUpdateAutomation")]
    return [
        _policy(doc, repositories, sources, automations)
        for doc in docs
        if common.kind_of(doc, IMAGE_GROUP, "ImagePolicy")
    ]


def _index(
    docs: Sequence[Mapping[str, Any]], group: str, kind: str
) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {common.meta(d): d for d in docs if common.kind_of(d, group, kind)}


def _policy(
    doc: Mapping[str, Any],
    repositories: Mapping[tuple[str, str], Mapping[str, Any]],
    sources: Mapping[tuple[str, str], Mapping[str, Any]],
    automations: Sequence[Mapping[str, Any]],
) -> common.Translation:
    namespace, name = common.meta(doc)
    body = doc.get("spec") or {}
    out = common.Translation(
        name=name, namespace=namespace, spec={}, source=f"Flux ImagePolicy {namespace}/{name}"
    )
    ref = body.get("imageRepositoryRef") or {}
    repo_key = (str(ref.get("namespace") or namespace), str(ref.get("name") or ""))
    repository = repositories.get(repo_key)
    _repository(out, repository, repo_key)
    _choice(out, body)
    _automation(out, doc, sources, automations)
    reflection = str(body.get("digestReflectionPolicy") or "Never")
    if reflection != "Never":
        out.spec["targets"][0]["value"] = "${image}:${tag}@${digest}"
        if reflection == "IfNotPresent":
            out.note(
                ("targets", 0, "value"),
                "digestReflectionPolicy IfNotPresent keeps a tag's first digest; imagepromoter "
                "writes the digest the tag has when it is promoted",
            )
    return out


def _repository(
    out: common.Translation, repository: Mapping[str, Any] | None, key: tuple[str, str]
) -> None:
    """spec.image, interval, imagePullSecret, insecure, excludeTags from the ImageRepository."""
    if repository is None:
        out.spec["image"] = common.PLACEHOLDER_IMAGE
        out.note(
            ("image",),
            f"the ImageRepository {key[0]}/{key[1]} was not among the files: set the image "
            "(and interval, pull secret, exclusions) by hand, or import it too",
        )
        return
    body = repository.get("spec") or {}
    out.spec["image"] = str(body.get("image") or common.PLACEHOLDER_IMAGE)
    secret = (body.get("secretRef") or {}).get("name")
    if secret:
        out.spec["imagePullSecret"] = str(secret)
    if body.get("insecure"):
        out.spec["insecure"] = True
        out.note(
            ("insecure",),
            "Flux's insecure allows plain HTTP; imagepromoter's also accepts unverified TLS",
        )
    exclusions = body.get("exclusionList")
    exclusions = DEFAULT_EXCLUSIONS if exclusions is None else [str(x) for x in exclusions]
    if exclusions:
        out.spec["excludeTags"] = exclusions
    interval = body.get("interval")
    if interval:
        parsed = spec.parse_interval(str(interval))
        if parsed is None:
            out.note(
                ("interval",),
                f"Flux interval {interval!r} is not an h/m/s duration; the default 5m is used",
            )
        else:
            out.spec["interval"] = str(interval)
    if body.get("suspend"):
        out.spec["suspend"] = True
    provider = body.get("provider")
    if provider and provider != "generic":
        out.note(
            ("imagePullSecret",),
            f"provider {provider} (cloud workload identity) has no equivalent: put registry "
            "credentials in a pull Secret",
        )
    for name, why in (
        ("certSecretRef", "a custom CA or client certificate"),
        ("proxySecretRef", "a proxy"),
        ("serviceAccountName", "image pull secrets of a service account"),
    ):
        if body.get(name):
            out.note(("image",), f"{name} ({why}) is not supported and was left out")


def _choice(out: common.Translation, body: Mapping[str, Any]) -> None:
    """tagRegex, policy and semverRange from the ImagePolicy."""
    filters = body.get("filterTags") or {}
    pattern = str(filters.get("pattern") or "")
    extract = str(filters.get("extract") or "").strip()
    tag_regex = common.search_regex(pattern) if pattern else "^.*$"
    if extract:
        group = _single_group(extract)
        if group is None:
            out.note(
                ("tagRegex",),
                f"extract {extract!r} is not one named group ($name): the policy orders the "
                "whole tag; put the part to order in a group named `version`",
            )
        elif group != "version":
            renamed = tag_regex.replace(f"(?P<{group}>", "(?P<version>").replace(
                f"(?<{group}>", "(?P<version>"
            )
            if renamed == tag_regex:
                out.note(("tagRegex",), f"extract ${group} names no group of the pattern")
            tag_regex = renamed
    try:
        policy.compile_tag_regex(tag_regex)
    except errors.InvalidSpec as exc:
        out.note(("tagRegex",), f"the pattern does not compile here: {exc.problem}")
    out.spec["tagRegex"] = tag_regex
    choice = body.get("policy") or {}
    if "semver" in choice:
        out.spec["policy"] = "semver"
        rng = str((choice.get("semver") or {}).get("range") or "").strip()
        if rng:
            out.spec["semverRange"] = rng
            try:
                semver.parse_range(rng)
            except errors.InvalidSpec as exc:
                out.note(("semverRange",), f"the range does not parse here: {exc.problem}")
    elif "alphabetical" in choice:
        out.spec["policy"] = "alphabetical"
        if str((choice.get("alphabetical") or {}).get("order") or "asc") == "desc":
            out.note(
                ("policy",),
                "order: desc (first in byte order) has no equivalent: alphabetical picks the last",
            )
    elif "numerical" in choice:
        out.spec["policy"] = "numerical"
        out.note(
            ("policy",),
            "Flux parses numerical tags as floating-point (1e3, 0x1F, Inf count); imagepromoter "
            "orders plain integers and decimals exactly and skips other forms",
        )
        if str((choice.get("numerical") or {}).get("order") or "asc") == "desc":
            out.note(
                ("policy",),
                "order: desc (lowest number) has no equivalent: numerical picks the highest",
            )
    else:
        out.spec["policy"] = "semver"
        out.note(("policy",), f"policy {sorted(choice) or 'none'} is not known; semver is used")


def _single_group(extract: str) -> str | None:
    """`ts` for `$ts` or `${ts}`, else None."""
    text = extract[1:] if extract.startswith("$") else ""
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return text if text.isidentifier() else None


def _automation(
    out: common.Translation,
    policy_doc: Mapping[str, Any],
    sources: Mapping[tuple[str, str], Mapping[str, Any]],
    automations: Sequence[Mapping[str, Any]],
) -> None:
    """git and targets from the ImageUpdateAutomation selecting this policy (and its source)."""
    namespace, _ = common.meta(policy_doc)
    labels = (policy_doc.get("metadata") or {}).get("labels") or {}
    chosen = [a for a in automations if common.meta(a)[0] == namespace and _selects(out, a, labels)]
    if not chosen:
        out.spec["git"] = {"url": common.PLACEHOLDER_URL}
        out.spec["targets"] = [{"path": ".", "markers": True}]
        out.note(
            ("git", "url"),
            "no ImageUpdateAutomation in this namespace selects the policy (or none was among "
            "the files): set git.url and the target's path",
        )
        return
    automation = chosen[0]
    a_ns, a_name = common.meta(automation)
    if len(chosen) > 1:
        others = ", ".join(common.meta(a)[1] for a in chosen[1:])
        out.note(("git",), f"also selected by {others}; only {a_name} was translated")
    body = automation.get("spec") or {}
    source_ref = body.get("sourceRef") or {}
    source_key = (str(source_ref.get("namespace") or a_ns), str(source_ref.get("name") or ""))
    git: dict[str, Any] = {}
    source = sources.get(source_key)
    if source is None:
        git["url"] = common.PLACEHOLDER_URL
        out.note(
            ("git", "url"),
            f"the GitRepository {source_key[0]}/{source_key[1]} was not among the files: set "
            "git.url (and branch, secretRef)",
        )
    else:
        source_body = source.get("spec") or {}
        git["url"] = str(source_body.get("url") or common.PLACEHOLDER_URL)
        branch = (source_body.get("ref") or {}).get("branch")
        if branch:
            git["branch"] = str(branch)
        secret = (source_body.get("secretRef") or {}).get("name")
        if secret:
            git["secretRef"] = str(secret)
    update_git = body.get("git") or {}
    checkout = (update_git.get("checkout") or {}).get("ref") or {}
    if checkout.get("branch"):
        git["branch"] = str(checkout["branch"])
    for other in ("tag", "semver", "name", "commit"):
        if checkout.get(other):
            out.note(("git", "branch"), f"checkout of a {other} has no equivalent: name a branch")
    push = update_git.get("push") or {}
    if push.get("branch") and push["branch"] != git.get("branch"):
        git["pushBranch"] = str(push["branch"])
    if push.get("refspec") or push.get("options"):
        out.note(("git",), "push refspec/options have no equivalent (pushBranch is a branch)")
    commit = update_git.get("commit") or {}
    author = commit.get("author") or {}
    if author.get("name") or author.get("email"):
        git["author"] = {k: str(author[k]) for k in ("name", "email") if author.get(k)}
    if commit.get("signingKey"):
        out.note(("git",), "commits were signed (signingKey): signing is not translated")
    message = commit.get("messageTemplate")
    if message:
        if any(mark in str(message) for mark in _TEMPLATE_MARKS):
            out.note(
                ("git",),
                "the Go messageTemplate was not translated (imagepromoter templates are "
                "${name}); the default message is used",
            )
        else:
            git["commitMessage"] = str(message)
    if "secretRef" in git and str(git["url"]).lower().startswith("http://"):
        git["insecure"] = True
        out.note(
            ("git", "insecure"), "plain http:// with credentials: they cross the network in clear"
        )
    out.spec["git"] = git
    update = body.get("update") or {}
    path = str(update.get("path") or "./").strip()
    target = {"path": _path(path), "markers": True}
    if str(update.get("strategy") or "Setters") != "Setters":
        out.note(("targets", 0), f"update strategy {update.get('strategy')} is not Setters")
    out.spec["targets"] = [target]
    if body.get("suspend"):
        out.spec["suspend"] = True


def _selects(
    out: common.Translation, automation: Mapping[str, Any], labels: Mapping[str, Any]
) -> bool:
    """True when the automation's policySelector selects a policy with these labels."""
    selector = (automation.get("spec") or {}).get("policySelector") or {}
    wanted = selector.get("matchLabels") or {}
    if selector.get("matchExpressions"):
        out.note(("git",), "the automation's policySelector.matchExpressions were not evaluated")
    return all(str(labels.get(k)) == str(v) for k, v in wanted.items())


def _path(path: str) -> str:
    """Flux's update.path (`./clusters/dev`) as a target path (`clusters/dev`, `.`)."""
    trimmed = path.strip().lstrip("/")
    while trimmed.startswith("./"):
        trimmed = trimmed[2:]
    return trimmed.rstrip("/") or "."
