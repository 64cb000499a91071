"""Argo CD Image Updater -> ImagePromotions: one per (Application, image).

Two inputs say the same thing: the `ImageUpdater` CR (applicationRefs by name pattern, images
with settings at three levels: global, per application group, per image; image wins) and the
legacy `argocd-image-updater.argoproj.io/*` annotations on an Application. Both are first turned
into one `_Image` (alias, image, constraint, settings, write-back), then into one ImagePromotion
in the Application's namespace, writing to the Application's repository (`spec.source.repoURL`,
or the `git-repository` override) at its `path`.

Exact: semver with a constraint (-> semverRange), newest-build/latest (-> newest),
alphabetical/name, `regexp:` allow-tags (-> whole-tag tagRegex), ignore-tags globs
(-> excludeTags), `pullsecret:` Secrets in the same namespace, `git:secret:` and branches, and
write-back targets `kustomization[:path]` (-> kustomizeImage) and `helmvalues:path` (-> key
targets on helm.image-name/-tag/-spec, default image.name and image.tag). Noted: the `digest`
strategy (approximated by one fixed tag whose digest is written), `platforms`, `secret:`/`env:`/
`ext:` credentials, Secrets in other namespaces, the `argocd` write-back method and the default
`.argocd-source-<app>.yaml` target (both write something a git target cannot), Go templates in
branch names, label selectors.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagepromoter import errors, semver
from imagepromoter import imports as common

CR_GROUP = "argocd-image-updater.argoproj.io"
APP_GROUP = "argoproj.io"
ANNOTATION = "argocd-image-updater.argoproj.io/"
_STRATEGIES = {
    "semver": "semver",
    "latest": "newest",
    "newest-build": "newest",
    "name": "alphabetical",
    "alphabetical": "alphabetical",
}
_SETTINGS = ("updateStrategy", "allowTags", "ignoreTags", "pullSecret", "platforms")


@dataclass
class _Image:
    """One image to update for one Application, settings already merged."""

    alias: str
    image: str
    constraint: str
    settings: dict[str, Any]
    write_back: dict[str, Any]
    helm: dict[str, str] = field(default_factory=dict)
    kustomize_name: str = ""
    source: str = ""
    owner: str = ""  # the ImageUpdater it came from, for names when no Application matched
    namespace: str = "argocd"


def relevant(doc: Mapping[str, Any]) -> bool:
    """True for ImageUpdater CRs and Applications (annotated or not)."""
    return common.kind_of(doc, CR_GROUP, "ImageUpdater") or common.kind_of(
        doc, APP_GROUP, "Application"
    )


def translate(docs: Sequence[Mapping[str, Any]]) -> list[common.Translation]:
    """ImagePromotions for every ImageUpdater and every annotated Application among `docs`."""
    apps = [d for d in docs if common.kind_of(d, APP_GROUP, "Application")]
    found: list[tuple[Mapping[str, Any] | None, _Image, list[str]]] = []
    for doc in docs:
        if common.kind_of(doc, CR_GROUP, "ImageUpdater"):
            found += _from_cr(doc, apps)
    for app in apps:
        if _annotations(app).get("image-list"):
            found += [(app, image, []) for image in _from_annotations(app)]
    return [_promotion(app, image, notes) for app, image, notes in found]


# --- reading the two forms ----------------------------------------------------------------


def _annotations(app: Mapping[str, Any]) -> dict[str, str]:
    raw = (app.get("metadata") or {}).get("annotations") or {}
    return {k[len(ANNOTATION) :]: str(v) for k, v in raw.items() if k.startswith(ANNOTATION)}


def _from_annotations(app: Mapping[str, Any]) -> list[_Image]:
    """The images of an Application's legacy annotations."""
    notes = _annotations(app)
    _, app_name = common.meta(app)
    images = []
    for entry in (e.strip() for e in notes.get("image-list", "").split(",")):
        if not entry:
            continue
        alias, _, reference = entry.rpartition("=")
        image, constraint = _split_reference(reference)
        alias = alias or image.rsplit("/", 1)[-1]
        key = alias.replace("/", "_")

        def get(name: str, key: str = key) -> str | None:
            return notes.get(f"{key}.{name}", notes.get(name))

        settings: dict[str, Any] = {}
        for setting, annotation in (
            ("updateStrategy", "update-strategy"),
            ("allowTags", "allow-tags"),
            ("pullSecret", "pull-secret"),
        ):
            if get(annotation) is not None:
                settings[setting] = get(annotation)
        for setting, annotation in (("ignoreTags", "ignore-tags"), ("platforms", "platforms")):
            value = get(annotation)
            if value is not None:
                settings[setting] = [v.strip() for v in value.split(",") if v.strip()]
        helm = {
            part: value
            for part in ("name", "tag", "spec")
            if (value := notes.get(f"{key}.helm.image-{part}")) is not None
        }
        write_back = {
            "method": notes.get("write-back-method", "argocd"),
            "repository": notes.get("git-repository"),
            "branch": notes.get("git-branch"),
            "writeBackTarget": notes.get("write-back-target"),
        }
        images.append(
            _Image(
                alias=alias,
                image=image,
                constraint=constraint,
                settings=settings,
                write_back=write_back,
                helm=helm,
                kustomize_name=notes.get(f"{key}.kustomize.image-name", ""),
                source=f"Argo CD Image Updater annotations on {app_name}, image {alias}",
            )
        )
    return images


def _from_cr(
    doc: Mapping[str, Any], apps: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any] | None, _Image, list[str]]]:
    """(Application or None, image, notes) for every image of every applicationRef."""
    namespace, cr_name = common.meta(doc)
    body = doc.get("spec") or {}
    out: list[tuple[Mapping[str, Any] | None, _Image, list[str]]] = []
    for ref in body.get("applicationRefs") or []:
        pattern = str(ref.get("namePattern") or "*")
        matched = [
            a
            for a in apps
            if common.meta(a)[0] == namespace and fnmatch.fnmatchcase(common.meta(a)[1], pattern)
        ]
        notes = []
        if ref.get("labelSelectors"):
            notes.append(f"labelSelectors of applicationRef {pattern!r} were not evaluated")
        if ref.get("useAnnotations"):
            for app in matched:
                out += [(app, image, notes) for image in _from_annotations(app)]
            continue
        write_back = _merged(body.get("writeBackConfig"), ref.get("writeBackConfig"))
        for item in ref.get("images") or []:
            image, constraint = _split_reference(str(item.get("imageName") or ""))
            settings = {
                k: v
                for level in (body, ref, item)
                for k, v in (level.get("commonUpdateSettings") or {}).items()
                if k in _SETTINGS
            }
            targets = item.get("manifestTargets") or {}
            flat = {
                "method": write_back.get("method", "argocd"),
                **(write_back.get("gitConfig") or {}),
            }
            alias = str(item.get("alias") or image.rsplit("/", 1)[-1])
            made = _Image(
                alias=alias,
                image=image,
                constraint=constraint,
                settings=settings,
                write_back=flat,
                helm={k: str(v) for k, v in (targets.get("helm") or {}).items()},
                kustomize_name=str((targets.get("kustomize") or {}).get("name") or ""),
                source=f"Argo CD Image Updater ImageUpdater {namespace}/{cr_name}, image {alias}",
                owner=cr_name,
                namespace=namespace,
            )
            if not matched:
                out.append(
                    (
                        None,
                        made,
                        [*notes, f"no Application named like {pattern!r} was among the files"],
                    )
                )
            out += [(app, made, notes) for app in matched]
    return out


def _merged(*configs: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for config in configs:
        if isinstance(config, Mapping):
            for key, value in config.items():
                if key == "gitConfig" and isinstance(value, Mapping):
                    merged["gitConfig"] = {**merged.get("gitConfig", {}), **value}
                else:
                    merged[key] = value
    return merged


def _split_reference(reference: str) -> tuple[str, str]:
    """`nginx:1.2.x` -> (`nginx`, `1.2.x`); a port is not a tag (`reg:5000/a` -> no tag)."""
    reference = reference.strip()
    head, sep, tail = reference.rpartition(":")
    if sep and "/" not in tail:
        return head, tail
    return reference, ""


# --- one ImagePromotion -------------------------------------------------------------------


def _promotion(
    app: Mapping[str, Any] | None, image: _Image, notes: list[str]
) -> common.Translation:
    namespace, app_name = common.meta(app) if app is not None else (image.namespace, "")
    out = common.Translation(
        name=common.k8s_name(app_name or image.owner, image.alias),
        namespace=namespace,
        spec={"image": image.image or common.PLACEHOLDER_IMAGE},
        source=image.source + (f" (Application {app_name})" if app_name else ""),
    )
    for text in notes:
        out.note(("targets",), text)
    _choice(out, image)
    _credentials(out, image, namespace)
    source = (app.get("spec") or {}).get("source") or {} if app is not None else {}
    if app is not None and not source:
        sources = (app.get("spec") or {}).get("sources") or []
        source = sources[0] if sources else {}
        if len(sources) > 1:
            out.note(("git",), "a multi-source Application: the first source was translated")
    _git(out, image, source, namespace)
    _targets(out, image, source, app_name)
    return out


def _choice(out: common.Translation, image: _Image) -> None:
    strategy = str(image.settings.get("updateStrategy") or "semver")
    allow = str(image.settings.get("allowTags") or "any").strip()
    if allow == "any":
        tag_regex = "^.*$"
    elif allow.startswith("regexp:"):
        tag_regex = common.search_regex(allow[len("regexp:") :])
    else:
        tag_regex = "^.*$"
        out.note(
            ("tagRegex",), f"allow-tags {allow!r} is not regexp:... or any; every tag qualifies"
        )
    if strategy == "digest":
        tag = image.constraint or "latest"
        out.spec["tagRegex"] = f"^{_escape(tag)}$"
        out.spec["policy"] = "alphabetical"
        out.note(
            ("policy",),
            f"the digest strategy follows the mutable tag {tag}: translated as that one tag with "
            "its digest written (targets use ${digest}); check the target values",
        )
    elif strategy in _STRATEGIES:
        out.spec["tagRegex"] = tag_regex
        out.spec["policy"] = _STRATEGIES[strategy]
        if strategy == "semver" and image.constraint and image.constraint != "latest":
            out.spec["semverRange"] = image.constraint
            try:
                semver.parse_range(image.constraint)
            except errors.InvalidSpec as exc:
                out.note(("semverRange",), f"the constraint does not parse here: {exc.problem}")
    else:
        out.spec["tagRegex"] = tag_regex
        out.spec["policy"] = "semver"
        out.note(("policy",), f"update strategy {strategy!r} is not known; semver is used")
    ignore = image.settings.get("ignoreTags") or []
    if ignore:
        out.spec["excludeTags"] = [common.glob_regex(str(g)) for g in ignore]
    if image.settings.get("platforms"):
        out.note(
            ("image",),
            f"platforms {image.settings['platforms']} are not checked: imagepromoter does not "
            "filter tags by platform",
        )


def _escape(tag: str) -> str:
    return "".join(f"\\{c}" if c in ".+*?()[]{}|^$\\" else c for c in tag)


def _credentials(out: common.Translation, image: _Image, namespace: str) -> None:
    pull = str(image.settings.get("pullSecret") or "")
    if not pull:
        return
    kind, _, rest = pull.partition(":")
    secret_ns, _, secret = rest.partition("/") if "/" in rest else (namespace, "", rest)
    secret = secret.split("#", 1)[0]
    if kind == "pullsecret" and secret:
        out.spec["imagePullSecret"] = secret
        if secret_ns != namespace:
            out.note(("imagePullSecret",), f"copy the Secret {secret_ns}/{secret} into {namespace}")
    elif kind == "secret" and secret:
        out.spec["imagePullSecret"] = secret
        out.note(
            ("imagePullSecret",),
            f"{pull} names one field holding user:password; imagepromoter reads a "
            "dockerconfigjson Secret or username and password keys: convert the Secret",
        )
    else:
        out.note(("imagePullSecret",), f"pull secret {pull!r} (env: or ext:) has no equivalent")


def _git(out: common.Translation, image: _Image, source: Mapping[str, Any], namespace: str) -> None:
    wb = image.write_back
    url = str(wb.get("repository") or source.get("repoURL") or common.PLACEHOLDER_URL)
    git: dict[str, Any] = {"url": url}
    if url == common.PLACEHOLDER_URL:
        out.note(("git", "url"), "the repository is not known (no Application): set git.url")
    method = str(wb.get("method") or "argocd")
    if method == "argocd":
        out.note(
            ("git",),
            "write-back method argocd changes the Application's parameters, not git: this "
            "ImagePromotion commits to the repository instead",
        )
    elif method.startswith("git:secret:"):
        rest = method[len("git:secret:") :]
        secret_ns, _, secret = rest.partition("/") if "/" in rest else (namespace, "", rest)
        if secret:
            git["secretRef"] = secret
        if secret_ns != namespace:
            out.note(("git", "secretRef"), f"copy the Secret {secret_ns}/{secret} into {namespace}")
        if url.startswith(("ssh://", "git@")):
            out.note(
                ("git", "secretRef"),
                "rename the Secret's sshPrivateKey to identity and add known_hosts",
            )
    elif method in {"git", "git:repocreds"}:
        out.note(
            ("git",),
            "git write-back used Argo CD's repository credentials: create a Secret and set "
            "git.secretRef",
        )
    branch = str(wb.get("branch") or "")
    revision = str(source.get("targetRevision") or "")
    base, sep, write = branch.partition(":")
    if not base and revision and revision != "HEAD":
        base = revision
    if base:
        git["branch"] = base
    if sep and write:
        if "{{" in write:
            out.note(("git", "pushBranch"), f"the branch template {write!r} was not translated")
        else:
            git["pushBranch"] = write
    if "secretRef" in git and url.lower().startswith("http://"):
        git["insecure"] = True
        out.note(
            ("git", "insecure"), "plain http:// with credentials: they cross the network in clear"
        )
    out.spec["git"] = git


def _targets(out: common.Translation, image: _Image, source: Mapping[str, Any], app: str) -> None:
    base = posixpath.normpath(str(source.get("path") or ".").strip("/") or ".")
    target = str(image.write_back.get("writeBackTarget") or "")
    kind, _, where = target.partition(":")
    helm_app = bool(source.get("helm")) or kind == "helmvalues" or bool(image.helm)
    tag_value = "${digest}" if str(image.settings.get("updateStrategy")) == "digest" else "${tag}"
    if kind == "kustomization" or (not kind and not helm_app):
        folder = _relative(base, where) if where else base
        path = (
            posixpath.join(folder, "kustomization.yaml") if folder != "." else "kustomization.yaml"
        )
        if not kind:
            out.note(
                ("targets", 0, "path"),
                f"the default write-back target is .argocd-source-{app}.yaml, which imagepromoter "
                "does not write: the Application's kustomization is edited instead",
            )
        out.spec["targets"] = [
            {"path": path, "kustomizeImage": image.kustomize_name or image.image, **(
                {"value": "${digest}"} if tag_value == "${digest}" else {}
            )}
        ]  # fmt: skip
        return
    value_files = (source.get("helm") or {}).get("valueFiles") or []
    guess = str(value_files[0]) if value_files else "values.yaml"
    path = _relative(base, where) if where else _relative(base, guess)
    if not kind:
        out.note(
            ("targets", 0, "path"),
            f"the default write-back target is .argocd-source-{app}.yaml, which imagepromoter "
            f"does not write: the chart's {guess} is edited instead",
        )
    elif not where:
        out.note(("targets", 0, "path"), f"helmvalues names no file: {guess} is assumed")
    if "spec" in image.helm:
        value = "${image}:${tag}" if tag_value == "${tag}" else "${image}@${digest}"
        targets = [{"path": path, "key": image.helm["spec"], "value": value}]
    else:
        targets = [
            {"path": path, "key": image.helm.get("name", "image.name"), "value": "${image}"},
            {"path": path, "key": image.helm.get("tag", "image.tag"), "value": tag_value},
        ]
    out.spec["targets"] = targets


def _relative(base: str, where: str) -> str:
    """A write-back path: `/x` from the repository root, anything else from the source path."""
    joined = where.lstrip("/") if where.startswith("/") else posixpath.join(base, where)
    normal = posixpath.normpath(joined)
    return "." if normal in {"", "."} else normal
