"""The reconcile sequence with in-memory adapters: what each outcome looks like to the user.

The adapters here are not mocks of our HTTP or git clients (those are tested on real servers in
test_registry_* and test_git_*); they are the simplest honest implementations of the Protocols,
so these tests pin down the sequencing: which reason wins, what the status says, what is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from imagepromoter import changes, credentials, errors, reconcile, reference, spec

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)

VALUES = """\
# dev environment
image:
  repository: ghcr.io/myorg/myapp
  tag: 1.0.0-dev   # bumped by imagepromoter
replicas: 2
"""


@dataclass
class MemoryRegistry:
    tags: list[str]
    times: dict[str, datetime] = field(default_factory=dict)
    fail: errors.PromotionError | None = None
    seen: list[reference.RegistryAccess] = field(default_factory=list)

    async def list_tags(self, access: reference.RegistryAccess) -> list[str]:
        self.seen.append(access)
        if self.fail:
            raise self.fail
        return list(self.tags)

    async def digest(self, access: reference.RegistryAccess, tag: str) -> str:
        return "sha256:" + format(abs(hash(tag)), "x").rjust(64, "0")[:64]

    async def created(
        self, access: reference.RegistryAccess, tags: Sequence[str]
    ) -> dict[str, datetime]:
        return {t: self.times[t] for t in tags if t in self.times}


@dataclass
class MemoryGit:
    files: dict[str, bytes]
    commits: list[changes.Changeset] = field(default_factory=list)
    creds: list[credentials.GitCredentials | None] = field(default_factory=list)

    def write(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plan: changes.Planner,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> changes.WriteResult:
        self.creds.append(creds)

        def read(path: str) -> bytes:
            if path not in self.files:
                raise errors.TargetError(f"{path} does not exist on branch {git.branch}")
            return self.files[path]

        changeset = plan(read)
        commit = None
        if changeset.changes and not dry_run:
            for change in changeset.changes:
                self.files[change.path] = change.after
            self.commits.append(changeset)
            commit = f"{len(self.commits):040x}"
        return changes.WriteResult(
            commit=commit, branch=git.branch or "main", base="0" * 40, changeset=changeset
        )


@dataclass
class MemorySecrets:
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get((namespace, name))


def make_spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image": "ghcr.io/myorg/myapp",
        "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
        "git": {"url": "https://git.example.com/gitops.git", "branch": "main"},
        "targets": [{"path": "env/dev/values.yaml", "key": "image.tag"}],
    }
    base.update(overrides)
    return base


async def run(
    spec_dict: dict[str, Any],
    registry: MemoryRegistry,
    git: MemoryGit,
    secrets: MemorySecrets | None = None,
    *,
    status: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> reconcile.Result:
    resource = reconcile.Resource(
        name="myapp-dev", namespace="gitops", spec=spec_dict, status=status or {}, generation=3
    )
    return await reconcile.reconcile(
        resource,
        registry=registry,
        git=git,
        secrets=secrets or MemorySecrets(),
        now=lambda: NOW,
        dry_run=dry_run,
    )


def ready(result: reconcile.Result) -> dict[str, Any]:
    (condition,) = [c for c in result.status["conditions"] if c["type"] == "Ready"]
    return condition


async def test_promotes_the_highest_dev_tag_and_only_its_bytes() -> None:
    registry = MemoryRegistry(["1.0.0-dev", "1.2.0-dev", "1.10.0-stable", "1.1.0-dev", "latest"])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    result = await run(make_spec(), registry, git)
    assert ready(result)["reason"] == "Promoted", ready(result)
    assert result.status["latestTag"] == "1.2.0-dev"
    assert result.status["promotedTag"] == "1.2.0-dev"
    assert result.status["tagsScanned"] == 5
    assert result.status["lastCommit"] == f"{1:040x}"
    assert git.files["env/dev/values.yaml"].decode() == VALUES.replace("1.0.0-dev", "1.2.0-dev")
    assert len(git.commits) == 1


async def test_second_pass_on_unchanged_registry_is_up_to_date_and_commits_nothing() -> None:
    registry = MemoryRegistry(["1.0.0-dev", "1.2.0-dev"])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    first = await run(make_spec(), registry, git)
    second = await run(make_spec(), registry, git, status=first.status)
    assert second.outcome.reason == "UpToDate"
    assert ready(second) == ready(first), "the Promoted condition is kept (status.py)"
    assert len(git.commits) == 1
    assert second.status["lastCommit"] == first.status["lastCommit"]


async def test_dry_run_plans_the_diff_but_writes_nothing() -> None:
    registry = MemoryRegistry(["1.2.0-dev"])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    result = await run(make_spec(), registry, git, dry_run=True)
    assert result.write is not None
    (change,) = result.write.changeset.changes
    assert b"1.2.0-dev" in change.after
    assert git.commits == []
    assert git.files["env/dev/values.yaml"] == VALUES.encode()
    assert "Dry run" in ready(result)["message"]


async def test_three_targets_make_one_changeset_and_templates_see_every_variable() -> None:
    registry = MemoryRegistry(["1.2.0-dev"])
    git = MemoryGit(
        {
            "a.yaml": b"image:\n  tag: old\n",
            "b.yaml": b'app:\n  version: "0.9"\ngit_branch: "x"\n',
        }
    )
    spec_dict = make_spec(
        targets=[
            {"path": "a.yaml", "key": "image.tag"},
            {"path": "b.yaml", "key": "app.version", "value": "${version}"},
            {"path": "b.yaml", "regex": 'git_branch: "(?P<value>.*)"', "value": "${name}-${tag}"},
        ],
        git={
            "url": "https://git.example.com/gitops.git",
            "branch": "main",
            "commitMessage": "Promote ${image}:${tag} to ${path} (was ${previous})",
        },
    )
    result = await run(spec_dict, registry, git)
    assert ready(result)["reason"] == "Promoted", ready(result)
    (changeset,) = git.commits
    assert [c.path for c in changeset.changes] == ["a.yaml", "b.yaml"]
    assert git.files["a.yaml"] == b"image:\n  tag: 1.2.0-dev\n"
    assert git.files["b.yaml"] == b'app:\n  version: "1.2.0"\ngit_branch: "myapp-dev-1.2.0-dev"\n'
    assert changeset.message == (
        "Promote ghcr.io/myorg/myapp:1.2.0-dev to a.yaml, b.yaml (was old)"
    )


@pytest.mark.parametrize(
    ("spec_overrides", "registry_tags", "reason", "in_message"),
    [
        ({"tagRegex": "(unclosed"}, ["1.0.0-dev"], "InvalidSpec", "spec.tagRegex"),
        ({"image": "ghcr.io/myorg/myapp:1.0"}, ["1.0.0-dev"], "InvalidSpec", "spec.image"),
        ({"suspend": True}, ["1.0.0-dev"], "Suspended", "suspend"),
        ({}, ["latest", "1.0.0-stable"], "NoMatchingTag", "ghcr.io/myorg/myapp"),
        (
            {"tagRegex": r"^\d+\.\d+\.\d+-dev$"},
            ["1.0.0-dev"],
            "NoMatchingTag",
            "(?P<version>",
        ),
        (
            {"targets": [{"path": "env/dev/values.yaml", "key": "image.tga"}]},
            ["1.0.0-dev"],
            "TargetError",
            "image.tag",
        ),
        (
            {"targets": [{"path": "env/missing.yaml", "key": "image.tag"}]},
            ["1.0.0-dev"],
            "TargetError",
            "env/missing.yaml",
        ),
        (
            {"imagePullSecret": "ghcr-pull"},
            ["1.0.0-dev"],
            "AuthError",
            "ghcr-pull does not exist",
        ),
        (
            {"git": {"url": "https://git.example.com/g.git", "secretRef": "gitops-write"}},
            ["1.0.0-dev"],
            "GitError",
            "gitops-write does not exist",
        ),
    ],
    ids=[
        "bad-regex",
        "tag-in-image",
        "suspended",
        "no-tag-matches",
        "all-dropped-as-prerelease-shows-fix",
        "misspelt-key-names-nearest",
        "missing-file",
        "missing-pull-secret",
        "missing-git-secret",
    ],
)
async def test_failures_become_a_condition_naming_the_fix(
    spec_overrides: dict[str, Any], registry_tags: list[str], reason: str, in_message: str
) -> None:
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    result = await run(make_spec(**spec_overrides), MemoryRegistry(registry_tags), git)
    condition = ready(result)
    assert condition["status"] == "False"
    assert condition["reason"] == reason
    assert in_message in condition["message"]
    assert git.commits == []
    assert git.files["env/dev/values.yaml"] == VALUES.encode()


async def test_registry_error_keeps_what_was_known_before() -> None:
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    first = await run(make_spec(), MemoryRegistry(["1.2.0-dev"]), git)
    broken = MemoryRegistry([], fail=errors.RegistryError("ghcr.io answered 503; will retry"))
    second = await run(make_spec(), broken, git, status=first.status)
    assert ready(second)["reason"] == "RegistryError"
    assert second.status["promotedTag"] == "1.2.0-dev"
    assert second.status["lastCommit"] == first.status["lastCommit"]
    assert isinstance(second.error, errors.RegistryError)


async def test_secrets_are_read_from_the_resource_namespace() -> None:
    registry = MemoryRegistry(["1.2.0-dev"])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    secrets = MemorySecrets(
        {
            ("gitops", "pull"): {"username": "robot", "password": "s3cr3t-pull"},
            ("gitops", "push"): {"username": "bot", "password": "s3cr3t-push"},
        }
    )
    spec_dict = make_spec(
        imagePullSecret="pull",
        git={"url": "https://git.example.com/g.git", "branch": "main", "secretRef": "push"},
    )
    result = await run(spec_dict, registry, git, secrets)
    assert ready(result)["reason"] == "Promoted"
    assert registry.seen[0].credentials == credentials.BasicCredentials("robot", "s3cr3t-pull")
    assert registry.seen[0].secret_name == "pull"
    assert git.creds == [credentials.BasicCredentials("bot", "s3cr3t-push")]
    assert "s3cr3t" not in repr(result.status)


async def test_an_adapter_bug_still_reaches_the_user_as_a_condition() -> None:
    class Broken(MemoryRegistry):
        async def list_tags(self, access: reference.RegistryAccess) -> list[str]:
            raise KeyError("boom")

    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    result = await run(make_spec(), Broken([]), git)
    assert ready(result)["reason"] == "RegistryError"
    assert "KeyError" in ready(result)["message"]


async def test_newest_policy_asks_created_only_for_candidates() -> None:
    asked: list[list[str]] = []

    class Recording(MemoryRegistry):
        async def created(
            self, access: reference.RegistryAccess, tags: Sequence[str]
        ) -> dict[str, datetime]:
            asked.append(list(tags))
            return await super().created(access, tags)

    registry = Recording(
        ["a-dev", "b-dev", "c-stable"],
        times={
            "a-dev": datetime(2026, 1, 2, tzinfo=UTC),
            "b-dev": datetime(2026, 1, 1, tzinfo=UTC),
            "c-stable": datetime(2026, 1, 3, tzinfo=UTC),
        },
    )
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    result = await run(make_spec(tagRegex=".*-dev$", policy="newest"), registry, git)
    assert asked == [["a-dev", "b-dev"]]
    assert result.status["latestTag"] == "a-dev"


@pytest.mark.parametrize(
    ("secret", "spec_overrides", "reason"),
    [
        ({"token": "x"}, {"imagePullSecret": "s"}, "AuthError"),
        (
            {"identity": "-----BEGIN OPENSSH PRIVATE KEY-----"},
            {"git": {"url": "ssh://git@example.com/g.git", "secretRef": "s"}},
            "GitError",
        ),
    ],
    ids=["pull-secret-without-credentials", "ssh-secret-without-known-hosts"],
)
async def test_a_malformed_secret_is_retried_not_a_spec_error(
    secret: dict[str, str], spec_overrides: dict[str, Any], reason: str
) -> None:
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    secrets = MemorySecrets({("gitops", "s"): secret})
    result = await run(make_spec(**spec_overrides), MemoryRegistry(["1.0.0-dev"]), git, secrets)
    assert ready(result)["reason"] == reason
    assert "Secret s" in ready(result)["message"]
    assert result.error is not None and not result.error.permanent


# --- a pass that scanned but found nothing still records the scan -----------------------------


async def test_no_matching_tag_records_the_scan() -> None:
    registry = MemoryRegistry(["latest", "1.0.0-stable", "nightly"])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    result = await run(make_spec(), registry, git)
    assert ready(result)["reason"] == "NoMatchingTag"
    assert result.status["lastScanTime"] == "2026-11-29T10:00:00Z"
    assert result.status["tagsScanned"] == 3
    assert result.outcome.scan_time is not None, "counts as a scan in the metrics"
    assert git.commits == []


# --- ${previous} for regex targets ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "regex", "expected"),
    [
        ('git_branch: "old-1"\n', 'git_branch: "(?P<value>.*)"', "old-1"),
        ("tag: v1\r\nother: x\r\n", "^tag: (.*)$", "v1"),
        ("a: 1\nb: 2\n", r"^(?:a): (?P<value>\d+)$", "1"),
    ],
    ids=["named-group", "first-group-crlf", "first-match"],
)
async def test_previous_works_for_regex_targets(text: str, regex: str, expected: str) -> None:
    registry = MemoryRegistry(["1.2.0-dev"])
    git = MemoryGit({"f.yaml": text.encode()})
    spec_dict = make_spec(
        targets=[{"path": "f.yaml", "regex": regex, "value": "${previous}+${tag}"}],
        git={
            "url": "https://git.example.com/gitops.git",
            "branch": "main",
            "commitMessage": "was ${previous}",
        },
    )
    result = await run(spec_dict, registry, git)
    assert ready(result)["reason"] == "Promoted", ready(result)
    (changeset,) = git.commits
    assert changeset.message == f"was {expected}\n" or changeset.message == f"was {expected}"
    assert f"{expected}+1.2.0-dev".encode() in git.files["f.yaml"]


# --- CPU work off the event loop ---------------------------------------------------------------


async def test_tag_selection_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from imagepromoter import policy

    threads: list[str] = []
    evaluate = policy.evaluate

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(policy, "evaluate", recording)
    registry = MemoryRegistry([f"1.{n}.0-dev" for n in range(5000)])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    result = await run(make_spec(), registry, git)
    assert ready(result)["reason"] == "Promoted"
    assert threads and threading.main_thread().name not in threads
    assert all(name.startswith("imagepromoter-cpu") for name in threads)


# --- the pass deadline on each network phase ---------------------------------------------------


@dataclass
class HangingRegistry(MemoryRegistry):
    """Answers list_tags only when `release` is set (never, in these tests)."""

    hang: str = "list_tags"

    async def list_tags(self, access: reference.RegistryAccess) -> list[str]:
        if self.hang == "list_tags":
            await asyncio.Event().wait()
        return await super().list_tags(access)

    async def digest(self, access: reference.RegistryAccess, tag: str) -> str:
        if self.hang == "digest":
            await asyncio.Event().wait()
        return await super().digest(access, tag)


@dataclass
class HangingSecrets(MemorySecrets):
    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        await asyncio.Event().wait()
        return None


@pytest.mark.parametrize(
    ("hang", "reason", "phrase"),
    [
        (
            "list_tags",
            "RegistryError",
            "listing the tags of ghcr.io/myorg/myapp at registry ghcr.io",
        ),
        ("digest", "RegistryError", "reading the digest of ghcr.io/myorg/myapp:1.2.0-dev"),
    ],
    ids=["list-tags", "digest"],
)
async def test_registry_phase_ends_at_the_pass_deadline(
    hang: str, reason: str, phrase: str
) -> None:
    registry = HangingRegistry(["1.2.0-dev"], hang=hang)
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    resource = reconcile.Resource(name="a", namespace="gitops", spec=make_spec(), generation=1)
    result = await reconcile.reconcile(
        resource, registry=registry, git=git, secrets=MemorySecrets(), now=lambda: NOW,
        deadline=0.2,
    )  # fmt: skip
    assert result.outcome.reason == reason
    assert phrase in result.outcome.message and "deadline (0.2s)" in result.outcome.message
    assert git.commits == []


async def test_git_secret_read_ends_at_the_pass_deadline() -> None:
    registry = MemoryRegistry(["1.2.0-dev"])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    spec_dict = make_spec(git={"url": "https://git.example.com/g.git", "secretRef": "w"})
    resource = reconcile.Resource(name="a", namespace="gitops", spec=spec_dict, generation=1)
    result = await reconcile.reconcile(
        resource, registry=registry, git=git, secrets=HangingSecrets(), now=lambda: NOW,
        deadline=0.2,
    )  # fmt: skip
    assert result.outcome.reason == "GitError"
    assert "reading Secret w in namespace gitops from the Kubernetes API" in result.outcome.message


async def test_a_spent_budget_fails_the_next_phase_at_once() -> None:
    clock = iter([0.0, 100.0, 100.0, 100.0])
    budget = reconcile.Budget.start(10.0, clock=lambda: next(clock))
    with pytest.raises(errors.GitError) as caught:
        async with budget.phase(errors.GitError, "pushing to git.example.com"):
            raise AssertionError("must not run")
    assert "was used up before pushing to git.example.com" in caught.value.message


async def test_an_adapter_timeout_is_not_taken_for_the_deadline() -> None:
    budget = reconcile.Budget.start(30.0)
    with pytest.raises(TimeoutError):
        async with budget.phase(errors.RegistryError, "x"):
            raise TimeoutError("the adapter's own")


async def test_reading_the_upstream_of_spec_from_ends_at_the_pass_deadline() -> None:
    class HangingUpstreams:
        async def read(self, namespace: str, name: str) -> Any:
            await asyncio.Event().wait()

    registry = MemoryRegistry(["1.2.0-dev"])
    git = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    spec_dict = make_spec(**{"from": {"imagePromotion": "myapp-dev", "after": "1h"}})
    resource = reconcile.Resource(name="prod", namespace="gitops", spec=spec_dict, generation=1)
    result = await reconcile.reconcile(
        resource, registry=registry, git=git, secrets=MemorySecrets(), now=lambda: NOW,
        upstreams=HangingUpstreams(), deadline=0.2,
    )  # fmt: skip
    assert result.outcome.reason == "Waiting", result.outcome
    assert "reading ImagePromotion myapp-dev (spec.from)" in result.outcome.message
    assert registry.seen == [] and git.commits == []
