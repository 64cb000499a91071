"""A webhook's payload in a pass: fields become variables only for the tag they announced.

The payload is a hint (API.md): the pass reads the registry and applies tagRegex, excludeTags
and the policy as always. These rows run the real reconcile with the in-memory adapters of
test_reconcile (honest Protocol implementations, not mocks of our clients).
"""

from __future__ import annotations

from typing import Any

import pytest

from imagepromoter import reconcile
from imagepromoter.webhooks import model
from tests.test_reconcile import NOW, MemoryGit, MemoryRegistry, MemorySecrets, make_spec

SEED_VALUES = 'imageTag: "1.0.0-dev"\ngit_branch: "main"\n'
SEED_TARGETS = [
    {"path": "environments/dev/values.yaml", "regex": 'imageTag: "(?P<value>.*)"'},
    {
        "path": "environments/dev/values.yaml",
        "regex": 'git_branch: "(?P<value>.*)"',
        "value": "${git_branch:-main}",
    },
]
SEED_MESSAGE = (
    "Branch ${git_branch:-unknown} led to updated Docker image '${tag}': "
    "${commit_message:-no message}"
)


def trigger(tag: str | None, **fields: str) -> model.Trigger:
    return model.Trigger(
        tag=tag,
        source="upstream-ci",
        type="github-dispatch",
        delivery="d-1",
        received_at="2026-11-29T09:59:59Z",
        fields=fields,
    )


async def run(
    tags: list[str],
    *,
    trigger_: model.Trigger | None,
    status: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
) -> tuple[reconcile.Result, MemoryGit]:
    git = MemoryGit(files or {"environments/dev/values.yaml": SEED_VALUES.encode()})
    spec = make_spec(
        targets=SEED_TARGETS,
        git={"url": "https://git.example.com/gitops.git", "commitMessage": SEED_MESSAGE},
    )
    result = await reconcile.reconcile(
        reconcile.Resource("myapp-dev", "gitops", spec, status or {}, 1),
        registry=MemoryRegistry(tags),
        git=git,
        secrets=MemorySecrets(),
        now=lambda: NOW,
        trigger=trigger_,
    )
    return result, git


FIELDS = {"docker_image_tag": "1.1.0-dev", "git_branch": "feat/x", "commit_message": "Fix it"}


async def test_announced_tag_is_written_with_the_payload_fields() -> None:
    result, git = await run(["1.0.0-dev", "1.1.0-dev"], trigger_=trigger("1.1.0-dev", **FIELDS))
    assert result.outcome.reason == "Promoted", result.outcome.message
    text = git.files["environments/dev/values.yaml"].decode()
    assert text == 'imageTag: "1.1.0-dev"\ngit_branch: "feat/x"\n'
    assert git.commits[0].message == "Branch feat/x led to updated Docker image '1.1.0-dev': Fix it"
    assert result.status["trigger"] == {
        "tag": "1.1.0-dev",
        "source": "upstream-ci",
        "receivedAt": "2026-11-29T09:59:59Z",
        "fields": FIELDS,
    }


@pytest.mark.parametrize(
    ("tags", "announced", "chosen"),
    [
        (["1.0.0-dev", "1.1.0-dev", "1.2.0-dev"], "1.1.0-dev", "1.2.0-dev"),
        (["1.0.0-dev"], "9.9.9-dev", "1.0.0-dev"),
        (["1.0.0-dev", "1.1.0-dev"], "1.1.0-debug", "1.1.0-dev"),
    ],
    ids=["older-than-the-newest", "not-in-the-registry", "fails-the-regex"],
)
async def test_payload_is_only_a_hint(tags: list[str], announced: str, chosen: str) -> None:
    result, git = await run(tags, trigger_=trigger(announced, git_branch="evil"))
    assert result.status["latestTag"] == chosen
    text = git.files["environments/dev/values.yaml"].decode()
    assert "evil" not in text and "trigger" not in result.status
    assert announced not in text or announced == chosen


async def test_older_announcement_never_downgrades() -> None:
    files = {"environments/dev/values.yaml": b'imageTag: "1.1.0-dev"\ngit_branch: "main"\n'}
    result, git = await run(
        ["1.0.0-dev", "1.1.0-dev"], trigger_=trigger("1.0.0-dev", git_branch="old"), files=files
    )
    assert result.outcome.reason == "UpToDate" and git.commits == []


async def test_a_retried_pass_writes_the_same_values_from_status_trigger() -> None:
    first, git = await run(["1.1.0-dev"], trigger_=trigger("1.1.0-dev", **FIELDS))
    # the timer's pass: no fresh event (or an unrelated one), the file already promoted
    again, git2 = await run(
        ["1.1.0-dev"],
        trigger_=trigger("0.1.0-dev", git_branch="other"),
        status=first.status,
        files=dict(git.files),
    )
    assert again.outcome.reason == "UpToDate" and git2.commits == []
    assert again.status["trigger"] == first.status["trigger"]


async def test_another_tag_promoted_drops_status_trigger() -> None:
    first, git = await run(["1.1.0-dev"], trigger_=trigger("1.1.0-dev", **FIELDS))
    later, git2 = await run(
        ["1.1.0-dev", "1.2.0-dev"], trigger_=None, status=first.status, files=dict(git.files)
    )
    assert later.outcome.reason == "Promoted" and "trigger" not in later.status
    text = git2.files["environments/dev/values.yaml"].decode()
    assert text == 'imageTag: "1.2.0-dev"\ngit_branch: "main"\n', "the default, not stale fields"


async def test_field_without_default_and_without_announcement_is_target_error() -> None:
    git = MemoryGit({"environments/dev/values.yaml": SEED_VALUES.encode()})
    target = {"path": "environments/dev/values.yaml", "regex": 'git_branch: "(.*)"'}
    spec = make_spec(targets=[{**target, "value": "${git_branch}"}])
    result = await reconcile.reconcile(
        reconcile.Resource("myapp-dev", "gitops", spec, {}, 1),
        registry=MemoryRegistry(["1.1.0-dev"]),
        git=git,
        secrets=MemorySecrets(),
        now=lambda: NOW,
    )
    assert result.outcome.reason == "TargetError"
    assert "${git_branch:-default}" in result.outcome.message and git.commits == []
