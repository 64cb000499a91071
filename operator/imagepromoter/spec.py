r"""The ImagePromotion spec as typed, immutable objects, or a list of errors naming fields.

`parse` is the only way from a CR's `spec` dict to a `Promotion`: the reconcile never reads the
raw dict. Everything the OpenAPI schema cannot check (regexes compile, ranges parse, paths stay in
the repository, templates name known variables) is checked here, and every problem is reported at
once, each naming its field, so a user fixes the CR in one edit. The schema's own checks (required
fields, enums, the interval grammar) are repeated, because `imagepromoter promote` reads manifests
from files that no API server has validated.

Rules worth knowing (each one is a row in tests/test_spec.py):
- An optional field set to null (`semverRange:` with no value) or, for the strings
  `imagePullSecret`, `semverRange`, `git.branch`, `git.pushBranch` and `git.secretRef`, to '' is
  absent. An unknown field is an error naming the nearest known one: a misspelt `semverrange`
  would otherwise silently promote pre-releases or versions outside the range.
- `semverRange` with a policy other than semver is an error, not ignored: the user asked for a
  range and would not get one.
- `interval` is a Go duration made of hours, minutes and seconds in that order (`30s`, `5m`,
  `1h30m`, `2h45m10s`), greater than zero and at most 8760h (a year).
- `git.url` is https://, http://, ssh:// or scp-like `user@host:path`. A URL carrying credentials
  is refused and never echoed back: they belong in the Secret named by `git.secretRef`. Any `@`
  other than an ssh user name's counts (`http://user:1234/SECRET@host/` is read as userinfo by
  some parsers), and so do spaces and control characters. A plain http:// URL with a
  `git.secretRef` is refused unless `git.insecure: true` (the credentials would cross the network
  in clear); `git.insecure` changes nothing else.
- Branch names follow `git check-ref-format --branch`, simplified: no `..`, `@{`, `//`, control
  characters, space or any of ~^:?*[\, no leading `-` or `/`, no trailing `/`, `.` or `.lock`
  component, no component starting with `.`, not `@` or `HEAD`, and written without `refs/heads/`.
- A target path is relative, stays inside the repository after normalisation, does not enter
  `.git/` as git itself reads a name (`is_dotgit`: any letter case, `.git.`, `.git `, `git~1`,
  with invisible Unicode skipped), and has no backslash or control character; `./a//b.yaml` is
  stored normalised as `a/b.yaml`. Two targets may not edit the same key or regex of one file.
- A key is dotted segments with `\.` for a literal dot and `\\` for a backslash; no segment is
  empty; `[field=value]` selects a list item (the values editor's own grammar, `_selectors`). A
  target regex must compile for RE2 (`regexes`: linear time, so no backreferences or
  lookaround) and have a group to replace (`value` or the first group). So must tagRegex and
  every excludeTags entry.
- A target has exactly one of key, regex, kustomizeImage and `markers: true` (false is unset).
  Only a markers target may name a folder (`apps/`, or `.` for the whole repository); its value
  template, the whole-reference form, defaults to `${image}:${tag}`.
- Templates (`git.commitMessage`, `targets[].value`) may use the variables of
  `templates.known_variables(groups)`, where `groups` are tagRegex's named groups. A named group
  may not shadow another built-in variable (`tag`, `path`, ...); `version` is the ordering group.
- `minAge` and `from.after` are h/m/s durations of 0s or more; `pin` must pass tagRegex and
  excludeTags; `onManualChange` is hold or overwrite (docs/holds.md; checks in gates/stages).
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from imagepromoter import _selectors as selectors
from imagepromoter import (
    errors,
    gates,
    holds,
    policy,
    reference,
    regexes,
    semver,
    stages,
    templates,
    values,
)

T = TypeVar("T")

DEFAULT_INTERVAL = timedelta(minutes=5)
DEFAULT_AUTHOR_NAME = "imagepromoter"
DEFAULT_AUTHOR_EMAIL = "imagepromoter@localhost"
DEFAULT_COMMIT_MESSAGE = "Promote ${image}:${tag} to ${path}"
POLICIES = ("semver", "numerical", "alphabetical", "newest")
MAX_EXCLUDES = 100


@dataclass(frozen=True)
class Target:
    """What to edit in one file (or folder): exactly one of key, regex, kustomize_image, markers."""

    path: str
    key: str | None
    regex: str | None
    value: str = "${tag}"
    kustomize_image: str | None = None  # the `images:` entry's name in a kustomization
    markers: bool = False  # Flux-style setter markers in the file, or every YAML file below

    @property
    def kind(self) -> str:
        """The target's kind as the CR names it: key, regex, kustomizeImage or markers."""
        if self.markers:
            return "markers"
        if self.kustomize_image is not None:
            return "kustomizeImage"
        return "key" if self.key is not None else "regex"


@dataclass(frozen=True)
class Author:
    name: str = DEFAULT_AUTHOR_NAME
    email: str = DEFAULT_AUTHOR_EMAIL


@dataclass(frozen=True)
class GitSpec:
    url: str
    branch: str | None = None  # None: the remote's default branch (its HEAD)
    push_branch: str | None = None
    secret_ref: str | None = None
    author: Author = Author()
    commit_message: str = DEFAULT_COMMIT_MESSAGE
    insecure: bool = False  # lets a Secret's credentials go to a plain http:// url


@dataclass(frozen=True)
class Notify:
    """One `spec.notify` entry: who is told after a push (API.md, Notifications)."""

    type: str  # argocd | generic
    url: str
    secret_ref: str | None = None  # Secret key `secret`: the HMAC key


NOTIFY_TYPES = ("argocd", "generic")


@dataclass(frozen=True)
class Promotion:
    """A validated ImagePromotion spec."""

    image: reference.ImageReference
    image_text: str  # as the user wrote it, for messages and the ${image} variable
    tag_regex: str
    policy: str = "semver"
    semver_range: str | None = None
    exclude_tags: tuple[str, ...] = ()
    image_pull_secret: str | None = None
    insecure: bool = False
    interval: timedelta = DEFAULT_INTERVAL
    suspend: bool = False
    git: GitSpec = GitSpec(url="")
    targets: tuple[Target, ...] = ()
    notify: tuple[Notify, ...] = ()
    # Holds, pins and gates (holds.py, gates.py, stages.py)
    min_age: timedelta = timedelta(0)
    pin: str | None = None
    on_manual_change: str = "hold"
    follow: stages.From | None = None


class SpecErrors(errors.InvalidSpec):
    """Every problem of one spec; `problems` holds each as its own InvalidSpec."""

    def __init__(self, problems: Sequence[errors.InvalidSpec]) -> None:
        self.problems = list(problems)
        joined = "; ".join(str(problem) for problem in self.problems)
        super().__init__("spec", joined)
        self.args = (joined,)  # str() is "spec.a: ...; spec.b: ...", each naming its own field


SPEC_FIELDS = (  # every field of spec, in the order the docs and `import` write them
    "image",
    "imagePullSecret",
    "insecure",
    "tagRegex",
    "excludeTags",
    "policy",
    "semverRange",
    "interval",
    "suspend",
    "git",
    "targets",
    "notify",
    "minAge",
    "pin",
    "onManualChange",
    "from",
)
_GIT_FIELDS = ("url", "insecure", "branch", "pushBranch", "secretRef", "author", "commitMessage")
_AUTHOR_FIELDS = ("name", "email")
_TARGET_FIELDS = ("path", "key", "regex", "kustomizeImage", "markers", "value")
_TARGET_KINDS = ("key", "regex", "kustomizeImage", "markers")
MARKERS_DEFAULT_VALUE = "${image}:${tag}"
_NOTIFY_FIELDS = ("type", "url", "secretRef")
_SHADOWING_GROUPS = templates.BUILTIN_VARIABLES - {"version"}
_MAX_INTERVAL = timedelta(hours=8760)
_INTERVAL = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\Z")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)\Z", re.DOTALL)
_SCP_LIKE = re.compile(r"([^@/:\s]+)@([^@/:\s]+):(\S+)\Z")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_EMAIL = re.compile(r"[^\s<>@]+@[^\s<>@]+\Z")


def parse(spec: Mapping[str, Any]) -> Promotion:
    """Validate a CR's `spec` into a Promotion; raise SpecErrors listing every problem."""
    check = _Checker()
    if not isinstance(spec, Mapping):
        raise SpecErrors([errors.InvalidSpec("spec", "must be a mapping")])
    check.unknown_fields("spec", spec, SPEC_FIELDS)
    image_text = check.required_string("spec.image", spec.get("image"))
    image = check.run(reference.parse, image_text) if image_text is not None else None
    tag_regex = check.required_string("spec.tagRegex", spec.get("tagRegex"))
    groups = check.tag_regex_groups(tag_regex) if tag_regex is not None else None
    policy = check.policy(spec.get("policy"))
    semver_range = check.semver_range(spec.get("semverRange"), policy)
    exclude_tags = check.exclude_tags(spec.get("excludeTags"))
    pull_secret = check.k8s_name("spec.imagePullSecret", spec.get("imagePullSecret"))
    insecure = check.boolean("spec.insecure", spec.get("insecure"), default=False)
    interval = check.interval(spec.get("interval"))
    suspend = check.boolean("spec.suspend", spec.get("suspend"), default=False)
    known = templates.known_variables(groups) if groups is not None else None
    git = check.git(spec.get("git"), known)
    targets = check.targets(spec.get("targets"), known)
    notify = check.notify(spec.get("notify"))
    gated = _gates(check, spec, tag_regex if groups is not None else None, exclude_tags)
    if check.problems:
        raise SpecErrors(check.problems)
    assert image is not None and image_text is not None and tag_regex is not None
    assert git is not None and policy is not None
    return Promotion(
        image=image,
        image_text=image_text.strip(),
        tag_regex=tag_regex,
        policy=policy,
        semver_range=semver_range,
        exclude_tags=exclude_tags,
        image_pull_secret=pull_secret,
        insecure=insecure,
        interval=interval,
        suspend=suspend,
        git=git,
        targets=targets,
        notify=notify,
        **gated,
    )


class _Checker:
    """Collects problems; each method returns the parsed value, or None after recording why."""

    def __init__(self) -> None:
        self.problems: list[errors.InvalidSpec] = []

    def add(self, field: str, problem: str) -> None:
        self.problems.append(errors.InvalidSpec(field, problem))

    def run(self, parse_text: Callable[..., T], *args: Any) -> T | None:
        """Call a parser that raises InvalidSpec; record the error and return None instead."""
        try:
            return parse_text(*args)
        except SpecErrors as exc:
            self.problems.extend(exc.problems)
        except errors.InvalidSpec as exc:
            self.problems.append(exc)
        return None

    def unknown_fields(self, where: str, mapping: Mapping[str, Any], fields: Sequence[str]) -> None:
        for name in mapping:
            if name not in fields:
                near = difflib.get_close_matches(str(name), fields, n=1, cutoff=0.6)
                near = near or [f for f in fields if f.lower() == str(name).lower()]
                hint = f"; did you mean {near[0]}?" if near else f"; known: {', '.join(fields)}"
                self.add(f"{where}.{name}", f"unknown field{hint}")

    def required_string(self, field: str, value: Any) -> str | None:
        if value is None:
            self.add(field, "is required")
            return None
        return self.string(field, value, allow_empty=False)

    def string(self, field: str, value: Any, *, allow_empty: bool = True) -> str | None:
        if not isinstance(value, str):
            self.add(field, f"must be a string, not {_kind(value)} (quote it in YAML)")
            return None
        if not allow_empty and not value.strip():
            self.add(field, "must not be empty")
            return None
        return value

    def optional_string(self, field: str, value: Any) -> str | None:
        """A string where null and '' both mean "not set"."""
        if value is None or value == "":
            return None
        return self.string(field, value)

    def boolean(self, field: str, value: Any, *, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(field, f"must be true or false, not {value!r}")
            return default
        return value

    def k8s_name(self, field: str, value: Any) -> str | None:
        name = self.optional_string(field, value)
        if name is not None and (len(name) > 253 or not _K8S_NAME.match(name)):
            self.add(field, f"{name!r} is not a Secret name (lowercase letters, digits, - and .)")
            return None
        return name

    def tag_regex_groups(self, pattern: str) -> frozenset[str] | None:
        compiled = self.run(policy.compile_tag_regex, pattern, "spec.tagRegex")
        if compiled is None:
            return None
        groups = frozenset(compiled.groupindex)
        for group in sorted(groups & _SHADOWING_GROUPS):
            self.add(
                "spec.tagRegex",
                f"the named group {group!r} would shadow the template variable ${{{group}}}; "
                "rename it (only `version` has a special meaning)",
            )
        return groups

    def exclude_tags(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add("spec.excludeTags", f"must be a list of regexes, not {_kind(value)}")
            return ()
        if len(value) > MAX_EXCLUDES:  # each one runs on every tag of every scan
            self.add(
                "spec.excludeTags",
                f"has {len(value)} entries, more than {MAX_EXCLUDES}; combine them with | "
                "(e.g. '-debug$|-test$')",
            )
            return ()
        patterns: list[str] = []
        for index, item in enumerate(value):
            field = f"spec.excludeTags[{index}]"
            pattern = self.string(field, item, allow_empty=False)
            if pattern is None:
                continue
            if self.run(policy.compile_tag_regex, pattern, field) is not None:
                patterns.append(pattern)
        return tuple(patterns)

    def policy(self, value: Any) -> str | None:
        if value is None:
            return "semver"
        if value not in POLICIES:
            self.add("spec.policy", f"{value!r} is not one of {', '.join(POLICIES)}")
            return None
        return str(value)

    def semver_range(self, value: Any, policy: str | None) -> str | None:
        text = self.optional_string("spec.semverRange", value)
        if text is None:
            return None
        if policy is not None and policy != "semver":
            self.add(
                "spec.semverRange",
                f"applies only to policy semver (policy is {policy}); remove it or set "
                "policy: semver",
            )
            return None
        self.run(semver.parse_range, text, "spec.semverRange")
        return text

    def interval(self, value: Any) -> timedelta:
        if value is None:
            return DEFAULT_INTERVAL
        text = self.string("spec.interval", value)
        if text is None:
            return DEFAULT_INTERVAL
        interval = parse_interval(text)
        if interval is None:
            self.add(
                "spec.interval",
                f"{text!r} is not a duration; write hours, minutes and seconds like 30s, 5m, "
                "1h or 1h30m",
            )
        elif interval <= timedelta(0):
            self.add("spec.interval", f"{text!r} must be longer than zero")
        elif interval > _MAX_INTERVAL:
            self.add("spec.interval", f"{text!r} is longer than a year (8760h)")
        else:
            return interval
        return DEFAULT_INTERVAL

    def git(self, value: Any, known: frozenset[str] | None) -> GitSpec | None:
        if value is None:
            self.add("spec.git", "is required (at least git.url)")
            return None
        if not isinstance(value, Mapping):
            self.add("spec.git", f"must be a mapping, not {_kind(value)}")
            return None
        self.unknown_fields("spec.git", value, _GIT_FIELDS)
        url = self.required_string("spec.git.url", value.get("url"))
        if url is not None:
            url = self.run(_check_git_url, url.strip())
        message = value.get("commitMessage")
        if message is None:
            message = DEFAULT_COMMIT_MESSAGE
        else:
            message = self.template("spec.git.commitMessage", message, known)
        author = self.author(value.get("author"))
        branch = self.branch("spec.git.branch", value.get("branch"))
        push_branch = self.branch("spec.git.pushBranch", value.get("pushBranch"))
        secret_ref = self.k8s_name("spec.git.secretRef", value.get("secretRef"))
        insecure = self.boolean("spec.git.insecure", value.get("insecure"), default=False)
        if url is not None and secret_ref is not None and not insecure and _plain_http(url):
            self.add(
                "spec.git.url",
                f"is plain http:// and spec.git.secretRef {secret_ref} is set: its credentials "
                "would cross the network in clear; use an https:// URL, or set "
                "spec.git.insecure: true if you trust the network",
            )
        if url is None or message is None or author is None:
            return None
        return GitSpec(
            url=url,
            branch=branch,
            push_branch=push_branch,
            secret_ref=secret_ref,
            author=author,
            commit_message=message,
            insecure=insecure,
        )

    def branch(self, field: str, value: Any) -> str | None:
        name = self.optional_string(field, value)
        if name is None:
            return None
        problem = ref_name_problem(name)
        if problem:
            self.add(field, f"{name!r} is not a valid branch name: {problem}")
            return None
        return name

    def author(self, value: Any) -> Author | None:
        if value is None:
            return Author()
        if not isinstance(value, Mapping):
            self.add("spec.git.author", f"must be a mapping of name and email, not {_kind(value)}")
            return None
        self.unknown_fields("spec.git.author", value, _AUTHOR_FIELDS)
        name, email = value.get("name"), value.get("email")
        ok = True
        if name is not None:
            name = self.string("spec.git.author.name", name, allow_empty=False)
            if name is not None and re.search(r"[<>\x00-\x1f]", name):
                self.add("spec.git.author.name", "must not contain <, > or control characters")
                name = None
            ok = ok and name is not None
        if email is not None:
            email = self.string("spec.git.author.email", email, allow_empty=False)
            if email is not None and not _EMAIL.match(email):
                self.add("spec.git.author.email", f"{email!r} is not an address like a@b.example")
                email = None
            ok = ok and email is not None
        if not ok:
            return None
        return Author(name=name or DEFAULT_AUTHOR_NAME, email=email or DEFAULT_AUTHOR_EMAIL)

    def template(self, field: str, value: Any, known: frozenset[str] | None) -> str | None:
        """A template string; its variables are checked only when tagRegex's groups are known."""
        text = self.string(field, value, allow_empty=False)
        if text is None:
            return None
        try:
            if known is None:
                templates.variables(text, field=field)
            else:
                templates.check(text, known, field=field)
        except errors.InvalidSpec as exc:
            self.problems.append(exc)
            return None
        return text

    def notify(self, value: Any) -> tuple[Notify, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add("spec.notify", f"must be a list of {{type, url}} entries, not {_kind(value)}")
            return ()
        parsed: list[Notify] = []
        for index, item in enumerate(value):
            where = f"spec.notify[{index}]"
            if not isinstance(item, Mapping):
                self.add(where, f"must be a mapping with type and url, not {_kind(item)}")
                continue
            self.unknown_fields(where, item, _NOTIFY_FIELDS)
            kind = item.get("type")
            if kind not in NOTIFY_TYPES:
                self.add(f"{where}.type", f"{kind!r} is not one of {', '.join(NOTIFY_TYPES)}")
            url = self.required_string(f"{where}.url", item.get("url"))
            if url is not None and not re.match(r"https?://[^\s/]+\S*\Z", url.strip()):
                self.add(f"{where}.url", f"{url!r} is not an http:// or https:// URL")
                url = None
            secret_ref = self.k8s_name(f"{where}.secretRef", item.get("secretRef"))
            if kind in NOTIFY_TYPES and url is not None:
                parsed.append(Notify(type=str(kind), url=url.strip(), secret_ref=secret_ref))
        return tuple(parsed)

    def targets(self, value: Any, known: frozenset[str] | None) -> tuple[Target, ...]:
        if value is None:
            self.add("spec.targets", "is required: list at least one {path, key} target")
            return ()
        if not isinstance(value, list) or not value:
            self.add("spec.targets", "must be a non-empty list of {path, key or regex} targets")
            return ()
        parsed: list[Target] = []
        seen: dict[tuple[str, str | None, str | None, str | None, bool], int] = {}
        for index, item in enumerate(value):
            target = self.target(f"spec.targets[{index}]", item, known)
            if target is None:
                continue
            identity = (
                target.path,
                target.key,
                target.regex,
                target.kustomize_image,
                target.markers,
            )
            if identity in seen:
                what = target.kind
                self.add(
                    f"spec.targets[{index}]",
                    f"edits the same {what} of {target.path} as spec.targets[{seen[identity]}]; "
                    "remove one of them",
                )
                continue
            seen[identity] = index
            parsed.append(target)
        return tuple(parsed)

    def target(self, where: str, value: Any, known: frozenset[str] | None) -> Target | None:
        if not isinstance(value, Mapping):
            self.add(where, f"must be a mapping with path and key or regex, not {_kind(value)}")
            return None
        self.unknown_fields(where, value, _TARGET_FIELDS)
        marked = self.boolean(f"{where}.markers", value.get("markers"), default=False)
        path = self.required_string(f"{where}.path", value.get("path"))
        if path is not None:
            path = self.run(_check_path, path, f"{where}.path", marked)
        key, regex = value.get("key"), value.get("regex")
        image = value.get("kustomizeImage")
        kinds = [
            kind
            for kind, given in zip(_TARGET_KINDS, (key, regex, image, marked or None), strict=True)
            if given is not None
        ]
        if len(kinds) != 1:
            set_ = " and ".join(kinds)
            both = f" (both are set: {set_})" if len(kinds) == 2 else f" ({set_} are set)"
            both = both if kinds else ""
            self.add(
                where, f"needs exactly one of key, regex, kustomizeImage and markers: true{both}"
            )
            key = regex = None
            ok = False
        elif marked:
            ok = True
        elif image is not None:
            image = self.string(f"{where}.kustomizeImage", image, allow_empty=False)
            if image is not None and re.search(r"[\s@]", image):
                self.add(
                    f"{where}.kustomizeImage",
                    f"{image!r} must be an image name as in the kustomization's images: "
                    "(no spaces, no @digest)",
                )
                image = None
            ok = image is not None
        elif key is not None:
            key = self.string(f"{where}.key", key, allow_empty=False)
            key = self.run(_check_key, key, f"{where}.key") if key is not None else None
            ok = key is not None
        else:
            regex = self.string(f"{where}.regex", regex, allow_empty=False)
            regex = self.run(_check_target_regex, regex, f"{where}.regex") if regex else None
            ok = regex is not None
        raw_value = value.get("value")
        default = MARKERS_DEFAULT_VALUE if marked else "${tag}"
        template = (
            default if raw_value is None else self.template(f"{where}.value", raw_value, known)
        )
        if path is None or not ok or template is None:
            return None
        return Target(
            path=path,
            key=key if not marked and image is None else None,
            regex=regex if not marked and image is None else None,
            value=template,
            kustomize_image=image if not marked else None,
            markers=marked,
        )


def _gates(
    check: _Checker, spec: Mapping[str, Any], tag_regex: str | None, exclude: tuple[str, ...]
) -> dict[str, Any]:
    """minAge, pin, onManualChange and from (see holds.py, gates.py, stages.py)."""
    gated: dict[str, Any] = {}
    if spec.get("minAge") is not None:
        gated["min_age"] = check.run(gates.parse_duration, "spec.minAge", spec["minAge"])
    pin = check.optional_string("spec.pin", spec.get("pin"))
    if pin is not None:
        gated["pin"] = check.run(gates.check_pin, pin.strip(), tag_regex, exclude)
    mode = spec.get("onManualChange")
    if mode is not None and mode not in holds.MODES:
        check.add("spec.onManualChange", f"{mode!r} is not one of {', '.join(holds.MODES)}")
    elif mode is not None:
        gated["on_manual_change"] = mode
    if spec.get("from") is not None:
        gated["follow"] = check.run(stages.parse_from, spec["from"])
    return {name: value for name, value in gated.items() if value is not None}


def parse_interval(text: str) -> timedelta | None:
    """`1h30m` -> timedelta; None when the text is not an h/m/s Go duration."""
    match = _INTERVAL.match(text.strip())
    if not text.strip() or match is None:
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    if hours > 10**6 or minutes > 10**8 or seconds > 10**10:
        return timedelta.max
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def ref_name_problem(name: str) -> str | None:
    """Why `name` is not a valid branch name (simplified git check-ref-format), or None."""
    if name.startswith("refs/"):
        return "write the branch name without refs/heads/"
    if name in {"@", "HEAD"}:
        return f"{name} is reserved"
    if name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return "must not start with - or / or end with / or ."
    if ".." in name or "@{" in name or "//" in name:
        return "must not contain .., @{ or //"
    if _REF_FORBIDDEN.search(name):
        return "must not contain spaces, control characters or any of ~^:?*[\\"
    for component in name.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            return "no part may start with . or end with .lock"
    return None


def key_segments(key: str) -> list[selectors.Step]:
    """Split a key (names and [field=value] selectors) with the grammar `values` edits by."""
    return list(values.split_key(key))


def _check_key(key: str, field: str) -> str:
    try:
        key_segments(key)
    except ValueError as exc:
        raise errors.InvalidSpec(field, str(exc)) from None
    return key


def _check_path(path: str, field: str, folder: bool = False) -> str:
    """The normalised path; a folder (`apps/`, `.` for the root) only when `folder`."""
    if "\\" in path or re.search(r"[\x00-\x1f\x7f]", path):
        raise errors.InvalidSpec(field, "must use / separators and no control characters")
    if path.startswith("/"):
        raise errors.InvalidSpec(
            field, f"{path!r} is absolute; give the path relative to the repository root"
        )
    if path.endswith("/") and not folder:
        raise errors.InvalidSpec(field, f"{path!r} names a directory; name the values file")
    normal = posixpath.normpath(path)
    if normal == "." and folder:
        return normal
    if normal == "." or normal == ".." or normal.startswith("../"):
        raise errors.InvalidSpec(field, f"{path!r} must stay inside the repository")
    if any(is_dotgit(part) for part in normal.split("/")):
        raise errors.InvalidSpec(
            field, f"{_shown(path)} points into .git/ (as git reads it); name a file in the tree"
        )
    if not normal.isprintable():
        raise errors.InvalidSpec(field, f"{_shown(path)} has an invisible or control character")
    return normal


# Code points HFS+ ignores when it compares names, which git's `is_hfs_dotgit` skips too.
_IGNORABLE = frozenset(
    [0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def is_dotgit(component: str) -> bool:
    """True for a path component git's verify_path refuses as `.git` (any OS's reading of it).

    As git does (`is_hfs_dotgit`, `is_ntfs_dotgit`): letter case is ignored, ignorable Unicode
    code points are skipped, trailing dots and spaces are dropped (`.git.`, `.git `), and the
    NTFS short name `git~1` counts too.
    """
    name = "".join(c for c in component if ord(c) not in _IGNORABLE).lower()
    name = name.rstrip(" .")
    return name in {".git", "git~1"}


def _shown(text: str) -> str:
    """`text` quoted for a message: repr escapes control and invisible characters."""
    return repr(text if len(text) <= 200 else text[:197] + "...")


def _check_target_regex(pattern: str, field: str) -> str:
    compiled = regexes.compile(pattern, field, multiline=True)
    if compiled.groups == 0:
        raise errors.InvalidSpec(
            field, "has no group; put (?P<value>...) around the part to replace"
        )
    return pattern


def _check_git_url(url: str) -> str:
    field = "spec.git.url"
    if not url.isprintable() or any(c.isspace() for c in url):
        raise errors.InvalidSpec(field, "must not contain spaces, control or invisible characters")
    scheme = _URL_SCHEME.match(url)
    if scheme is None:
        scp = _SCP_LIKE.match(url)
        if scp is None:
            if "@" in url:
                raise _credentials_in_url()
            raise errors.InvalidSpec(
                field, "must be an https://, http://, ssh:// or git@host:path URL"
            )
        if "@" in scp.group(3) or ":" in scp.group(1):
            raise _credentials_in_url()
        return url
    name, rest = scheme.group(1).lower(), scheme.group(2)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo = authority.rpartition("@")[0] if "@" in authority else None
    if userinfo is not None and (name != "ssh" or ":" in userinfo):
        raise _credentials_in_url()
    if "@" in rest[len(authority) :] or "@" in (userinfo or ""):
        # `http://user:1234/SECRET@host/...`: another parser reads userinfo where we read a path
        raise _credentials_in_url()
    if name not in {"https", "http", "ssh"}:
        raise errors.InvalidSpec(
            field,
            f"scheme {name}:// is not supported; use https://, http://, ssh:// or git@host:path",
        )
    host = authority.rpartition("@")[2]
    path = rest[len(authority) :]
    if not re.match(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?\Z", host):
        raise errors.InvalidSpec(field, f"{name}:// URL needs a host such as github.com")
    if path.strip("/") == "":
        raise errors.InvalidSpec(field, "names no repository path after the host")
    return url


def _plain_http(url: str) -> bool:
    return url[:7].lower() == "http://"


def _credentials_in_url() -> errors.InvalidSpec:
    return errors.InvalidSpec(
        "spec.git.url",
        "contains credentials; remove them from the URL, put them in a Secret (username and "
        "password, or identity and known_hosts) and name it in spec.git.secretRef",
    )


def _well_formed(template: str, field: str) -> str:
    templates.variables(template, field=field)
    return template


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(
        type(value), "a mapping" if isinstance(value, Mapping) else type(value).__name__
    )
