"""holds.py and the reconcile sequence of holds, pins and gates, with in-memory adapters.

The pure rules are table-driven; the sequences (adopt, hold, release, pin, unpin, minAge, from)
run `reconcile` with the honest in-memory registry and git of tests/test_reconcile.py, so they pin
down what the user sees. The same stories on the real servers are in tests/test_holds_e2e.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from imagepromoter import errors, holds, reconcile, stages
from tests.test_reconcile import NOW, VALUES, MemoryGit, MemoryRegistry, MemorySecrets, make_spec

KEY = holds.ident("env/dev/values.yaml", "image.tag", None)


@pytest.mark.parametrize(
    ("text", "key", "regex", "expected"),
    [
        ("image:\n  tag: 1.0.0\n", "image.tag", None, "1.0.0"),
        ("image:\n  tag: 1.0.0\n", "image.name", None, None),
        ('git_branch: "feature-x"\n', None, 'git_branch: "(?P<value>.*)"', "feature-x"),
        ("tag: a\r\ntag: b\r\n", None, r"^tag: (.*)$", "a"),
        ("nothing here\n", None, r"tag: (.*)", None),
    ],
    ids=["key", "missing-key", "regex-named-group", "regex-first-of-many-crlf", "no-match"],
)
def test_current_value(text: str, key: str | None, regex: str | None, expected: str | None) -> None:
    assert holds.current_value(text, key, regex) == expected


@pytest.mark.parametrize(
    ("hold", "recorded", "current", "new", "held"),
    [
        (True, {}, "0.9.0", "1.2.0", False),
        (True, {KEY: "1.1.0"}, "1.1.0", "1.2.0", False),
        (True, {KEY: "1.1.0"}, "1.0.0", "1.2.0", True),
        (True, {KEY: "1.1.0"}, "1.2.0", "1.2.0", False),
        (False, {KEY: "1.1.0"}, "1.0.0", "1.2.0", False),
        (True, {KEY: "1.1.0"}, None, "1.2.0", False),
    ],
    ids=[
        "first-promotion-adopts",
        "our-value",
        "someone-else-s-value",
        "already-what-we-would-write",
        "overwrite",
        "nothing-there",
    ],
)
def test_guard(
    hold: bool, recorded: dict[str, str], current: str | None, new: str, held: bool
) -> None:
    guard = holds.Guard(hold=hold, recorded=recorded)
    if held:
        with pytest.raises(holds.Held) as caught:
            guard.check(KEY, "env/dev/values.yaml", current, new)
        assert (caught.value.found, caught.value.ours) == (current, recorded[KEY])
        assert guard.written == {}
    else:
        guard.check(KEY, "env/dev/values.yaml", current, new)
        assert guard.written == {KEY: new}


HELD = {"hold": {"path": "p", "value": "1.0.0", "release": "1"}}


@pytest.mark.parametrize(
    ("mode", "status", "annotations", "pinned", "holding"),
    [
        ("hold", {}, {}, False, True),
        ("overwrite", {}, {}, False, False),
        ("hold", {}, {}, True, False),
        ("hold", HELD, {holds.RELEASE_ANNOTATION: "1"}, False, True),
        ("hold", HELD, {holds.RELEASE_ANNOTATION: "2"}, False, False),
        ("hold", HELD, {}, False, False),
        ("hold", {"hold": {"path": "p", "value": "v"}}, {}, False, True),
    ],
    ids=[
        "default",
        "overwrite",
        "pinned",
        "annotation-unchanged",
        "annotation-changed",
        "annotation-removed",
        "no-annotation-ever",
    ],
)
def test_when_a_pass_holds(
    mode: str, status: dict[str, Any], annotations: dict[str, str], pinned: bool, holding: bool
) -> None:
    assert holds.guard(mode, status, annotations, pinned=pinned).hold is holding


def rev(sha: str, value: str | None, author: str = "Jane <jane@example.com>") -> holds.Revision:
    content = None if value is None else f"image:\n  tag: {value}\n".encode()
    return holds.Revision(sha=sha * 40, author=author, summary=f"set {value}", content=content)


def value_of(data: bytes) -> str | None:
    return holds.current_value(data.decode(), "image.tag", None)


@pytest.mark.parametrize(
    ("history", "found", "sha"),
    [
        ([rev("c", "1.0.0"), rev("b", "1.1.0"), rev("a", "1.0.0")], "1.0.0", "c"),
        ([rev("d", "1.0.0"), rev("c", "1.0.0"), rev("b", "1.1.0")], "1.0.0", "c"),
        ([rev("c", "1.0.0"), rev("b", None)], "1.0.0", "c"),
        ([rev("c", "1.0.0"), rev("b", "1.0.0")], "1.0.0", None),
        ([rev("c", "1.2.0")], "1.0.0", None),
        ([], "1.0.0", None),
    ],
    ids=[
        "last-commit",
        "run-of-commits-oldest-of-run",
        "file-created",
        "older-than-history-read",
        "head-holds-something-else",
        "no-history",
    ],
)
def test_introduced_finds_the_commit_that_put_the_value_there(
    history: list[holds.Revision], found: str, sha: str | None
) -> None:
    change = holds.introduced(history, found, value_of)
    assert (change.sha[0] if change else None) == sha


def test_held_message_names_the_file_value_commit_author_and_the_three_ways_out() -> None:
    exc = holds.Held(KEY, "env/prod/values.yaml", "1.0.0-stable", "1.1.0-stable")
    exc.commit = holds.Change(
        sha="3f1c2a9" + "0" * 33, author="Jane <jane@example.com>", summary="roll prod back"
    )
    assert holds.message(exc, "app-prod", "gitops") == (
        "env/prod/values.yaml holds 1.0.0-stable, not 1.1.0-stable as we last wrote it: changed "
        "in 3f1c2a9 by Jane <jane@example.com> ('roll prod back'); not overwriting a manual "
        "change. To promote again: change the annotation (kubectl annotate ipr app-prod -n "
        'gitops --overwrite imagepromoter.dev/release-hold="$(date +%s)"), set spec.pin to the '
        "tag to run, or set spec.onManualChange: overwrite"
    )


def test_written_status_round_trips_and_merges() -> None:
    regex_id = holds.ident("a.yaml", None, "x: (.*)")
    listed = holds.written_status({}, {KEY: "1.0.0", regex_id: "b"})
    assert listed == [
        {"path": "env/dev/values.yaml", "key": "image.tag", "value": "1.0.0"},
        {"path": "a.yaml", "regex": "x: (.*)", "value": "b"},
    ]
    assert holds.recorded({"written": listed}) == {KEY: "1.0.0", regex_id: "b"}
    merged = holds.written_status({"written": listed}, {KEY: "1.1.0"})
    assert merged[0]["value"] == "1.1.0" and len(merged) == 2


# --- the sequences, with in-memory adapters --------------------------------------------------


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Pass:
    """One CR run pass after pass, its status carried over as the operator would."""

    def __init__(self, registry: MemoryRegistry, git: MemoryGit, name: str = "myapp-dev") -> None:
        self.registry, self.git, self.name = registry, git, name
        self.status: dict[str, Any] = {}
        self.clock = Clock()
        self.annotations: dict[str, str] = {}
        self.upstreams: stages.Reader | None = None

    async def run(self, **spec: Any) -> reconcile.Result:
        resource = reconcile.Resource(
            name=self.name,
            namespace="gitops",
            spec=make_spec(**spec),
            status=self.status,
            generation=1,
            annotations=self.annotations,
        )
        result = await reconcile.reconcile(
            resource,
            registry=self.registry,
            git=self.git,
            secrets=MemorySecrets(),
            now=self.clock,
            upstreams=self.upstreams,
        )
        self.status = result.status
        return result

    def human_sets(self, tag: str) -> None:
        text = self.git.files["env/dev/values.yaml"].decode()
        current = holds.current_value(text, "image.tag", None)
        assert current is not None
        self.git.files["env/dev/values.yaml"] = text.replace(current, tag).encode()

    def file_tag(self) -> str | None:
        return holds.current_value(
            self.git.files["env/dev/values.yaml"].decode(), "image.tag", None
        )


def ready(result: reconcile.Result) -> dict[str, Any]:
    return dict(result.status["conditions"][0])


@pytest.fixture
def cr() -> Pass:
    return Pass(
        MemoryRegistry(["1.0.0-dev", "1.1.0-dev"]),
        MemoryGit({"env/dev/values.yaml": VALUES.encode()}),
    )


async def test_a_manual_rollback_is_held_until_released(cr: Pass) -> None:
    first = await cr.run()
    assert ready(first)["reason"] == "Promoted"  # the first promotion adopts 1.0.0-dev in place
    assert cr.status["written"] == [
        {"path": "env/dev/values.yaml", "key": "image.tag", "value": "1.1.0-dev"}
    ]
    cr.human_sets("1.0.0-dev")
    cr.registry.tags.append("1.2.0-dev")
    held = await cr.run()
    assert ready(held)["reason"] == "Held" and ready(held)["status"] == "False"
    assert ready(held)["message"].startswith(
        "env/dev/values.yaml holds 1.0.0-dev, not 1.1.0-dev as we last wrote it: changed by a "
        "commit that is not in the history read; not overwriting a manual change"
    )
    assert held.error is None  # not a failure to retry: it waits for a human
    assert cr.file_tag() == "1.0.0-dev" and len(cr.git.commits) == 1
    assert cr.status["hold"] == {"path": "env/dev/values.yaml", "value": "1.0.0-dev", "release": ""}
    assert ready(await cr.run())["reason"] == "Held"  # still held, nothing written
    cr.annotations[holds.RELEASE_ANNOTATION] = "1"
    released = await cr.run()
    assert ready(released)["reason"] == "Promoted", ready(released)
    assert cr.file_tag() == "1.2.0-dev" and "hold" not in cr.status
    cr.human_sets("1.1.0-dev")  # held again: the annotation must change again to release
    assert ready(await cr.run())["reason"] == "Held"
    assert cr.status["hold"]["release"] == "1"


async def test_the_hold_ends_when_the_file_holds_our_value_again(cr: Pass) -> None:
    await cr.run()
    cr.human_sets("1.0.0-dev")
    assert ready(await cr.run())["reason"] == "Held"
    cr.human_sets("1.1.0-dev")
    result = await cr.run()
    assert ready(result)["reason"] == "UpToDate" and "hold" not in cr.status


async def test_overwrite_keeps_the_old_behaviour(cr: Pass) -> None:
    await cr.run(onManualChange="overwrite")
    cr.human_sets("1.0.0-dev")
    result = await cr.run(onManualChange="overwrite")
    assert ready(result)["reason"] == "Promoted" and cr.file_tag() == "1.1.0-dev"


async def test_a_pin_rolls_back_releases_a_hold_and_unpinning_resumes(cr: Pass) -> None:
    await cr.run()
    cr.human_sets("1.0.0-dev")
    assert ready(await cr.run())["reason"] == "Held"
    pinned = await cr.run(pin="1.0.0-dev")
    assert ready(pinned)["reason"] == "Pinned" and ready(pinned)["status"] == "True"
    assert ready(pinned)["message"] == (
        "spec.pin 1.0.0-dev: env/dev/values.yaml already holds 1.0.0-dev; remove spec.pin to "
        "resume the policy"
    )
    assert "hold" not in cr.status
    cr.human_sets("1.1.0-dev")  # even a pin over a manual change: a pin is deliberate
    rolled = await cr.run(pin="1.0.0-dev")
    assert ready(rolled)["reason"] == "Pinned" and cr.file_tag() == "1.0.0-dev"
    assert ready(rolled)["message"].startswith("spec.pin 1.0.0-dev: Promoted 1.0.0-dev to ")
    resumed = await cr.run()
    assert ready(resumed)["reason"] == "Promoted" and cr.file_tag() == "1.1.0-dev"


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        (
            {"pin": "1.9.0-dev"},
            "NoMatchingTag",
            "ghcr.io/myorg/myapp: spec.pin 1.9.0-dev is not in the registry (2 tags listed); "
            "push it, or set spec.pin to a tag that exists",
        ),
        (
            {"pin": "1.0.0-stable"},
            "InvalidSpec",
            "spec.pin: '1.0.0-stable' does not match tagRegex '^(?P<version>\\\\d+\\\\.\\\\d+"
            "\\\\.\\\\d+)-dev$'; a pin must be a tag this ImagePromotion could promote",
        ),
        (
            {"pin": "1.0.0-dev", "excludeTags": ["^1\\.0\\."]},
            "InvalidSpec",
            "spec.pin: '1.0.0-dev' is excluded by spec.excludeTags[0] '^1\\\\.0\\\\.'; a pin is "
            "not a way around excludeTags",
        ),
        (
            {"minAge": "-1h"},
            "InvalidSpec",
            "spec.minAge: '-1h' is negative; write a duration of 0s or more",
        ),
        (
            {"minAge": "a while"},
            "InvalidSpec",
            "spec.minAge: 'a while' is not a duration; write hours, minutes and seconds like 30m, "
            "1h or 24h",
        ),
        (
            {"onManualChange": "ignore"},
            "InvalidSpec",
            "spec.onManualChange: 'ignore' is not one of hold, overwrite",
        ),
        (
            {"from": {"imagePromotion": "app-dev", "after": "-24h"}},
            "InvalidSpec",
            "spec.from.after: '-24h' is negative; write a duration of 0s or more",
        ),
        (
            {"from": {"imagePromotion": "app-dev"}},
            "InvalidSpec",
            "spec.from.imagePromotion: ImagePromotion app-dev does not exist in namespace gitops; "
            "create it or correct the name",
        ),
        (
            {"from": {"imagePromotion": "myapp-dev"}},
            "InvalidSpec",
            "spec.from.imagePromotion: a loop: myapp-dev follows myapp-dev; none of them can ever "
            "promote: remove spec.from from one of them",
        ),
    ],
    ids=[
        "pin-not-in-registry",
        "pin-fails-regex",
        "pin-excluded",
        "negative-min-age",
        "unparsable-min-age",
        "unknown-mode",
        "negative-after",
        "from-missing-cr",
        "from-itself",
    ],
)
async def test_bad_input_is_the_exact_status_message(
    cr: Pass, spec: dict[str, Any], reason: str, message: str
) -> None:
    cr.upstreams = stages.Known({("gitops", "myapp-dev"): {"spec": make_spec(**spec)}})
    result = await cr.run(**spec)
    assert (ready(result)["reason"], ready(result)["message"]) == (reason, message)
    assert cr.git.commits == []


async def test_min_age_waits_promotes_older_meanwhile_and_then_the_young_tag(cr: Pass) -> None:
    cr.registry.tags.append("1.0.5-dev")
    cr.registry.times = {"1.0.5-dev": NOW - timedelta(days=2), "1.1.0-dev": NOW}
    first = await cr.run(minAge="1h")
    assert ready(first)["reason"] == "Promoted" and cr.file_tag() == "1.0.5-dev"
    assert ready(first)["message"].endswith(
        "; 1.1.0-dev is younger than minAge 1h and qualifies at 2026-11-29T11:00:00Z"
    )
    assert cr.status["waitingUntil"] == "2026-11-29T11:00:00Z"
    cr.clock.now = NOW + timedelta(minutes=59)
    waiting = await cr.run(minAge="1h")
    assert ready(waiting)["reason"] == "Waiting" and ready(waiting)["status"] == "True"
    assert ready(waiting)["message"] == (
        "env/dev/values.yaml already holds 1.0.5-dev; 1.1.0-dev is younger than minAge 1h and "
        "qualifies at 2026-11-29T11:00:00Z"
    )
    cr.clock.now = NOW + timedelta(hours=1)
    aged = await cr.run(minAge="1h")
    assert ready(aged)["reason"] == "Promoted" and cr.file_tag() == "1.1.0-dev"
    assert "waitingUntil" not in cr.status and "firstSeen" not in cr.status


async def test_min_age_with_nothing_old_enough_is_waiting_with_the_time(cr: Pass) -> None:
    cr.registry.times = {"1.0.0-dev": NOW + timedelta(days=365)}  # a date in the future
    result = await cr.run(minAge="30m")
    assert ready(result)["reason"] == "Waiting"
    assert ready(result)["message"] == (
        "ghcr.io/myorg/myapp: nothing is old enough yet: 1.1.0-dev is younger than minAge 30m "
        "and qualifies at 2026-11-29T10:30:00Z (and 1 more)"
    )
    assert cr.status["waitingUntil"] == "2026-11-29T10:30:00Z"
    assert cr.status["firstSeen"] == [
        {"tag": "1.1.0-dev", "time": "2026-11-29T10:00:00Z"},
        {"tag": "1.0.0-dev", "time": "2026-11-29T10:00:00Z"},
    ]
    assert cr.git.commits == []
    cr.clock.now = NOW + timedelta(minutes=30)  # first seen 30 minutes ago: both qualify now
    assert ready(await cr.run(minAge="30m"))["reason"] == "Promoted"
    assert cr.file_tag() == "1.1.0-dev" and "firstSeen" not in cr.status


def dev_status(
    tag: str, since: datetime, *, ready_: str = "True", reason: str = "Promoted"
) -> dict[str, Any]:
    return {
        "promotedTag": tag,
        "promotedSince": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conditions": [
            {
                "type": "Ready",
                "status": ready_,
                "reason": reason,
                "message": "m",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }


async def test_a_stage_follows_its_upstream_after_the_delay_and_not_while_it_is_held() -> None:
    prod = Pass(
        MemoryRegistry(["1.0.0-dev", "1.1.0-dev", "1.2.0-dev"]),
        MemoryGit({"env/dev/values.yaml": VALUES.encode()}),
        name="myapp-prod",
    )
    known = stages.Known({("gitops", "myapp-dev"): {"spec": make_spec(), "status": {}}})
    prod.upstreams = known
    follow = {"from": {"imagePromotion": "myapp-dev", "after": "1h"}}
    known.update_status("gitops", "myapp-dev", dev_status("1.1.0-dev", NOW - timedelta(minutes=10)))
    early = await prod.run(**follow)
    assert ready(early)["reason"] == "Waiting" and prod.file_tag() == "1.0.0-dev"
    assert prod.status["waitingUntil"] == "2026-11-29T10:50:00Z"
    prod.clock.now = NOW + timedelta(minutes=50)
    on_time = await prod.run(**follow)
    assert ready(on_time)["reason"] == "Promoted" and prod.file_tag() == "1.1.0-dev"
    # the upstream is Held with a newer tag: not followed
    known.update_status(
        "gitops",
        "myapp-dev",
        dev_status("1.2.0-dev", NOW - timedelta(days=1), ready_="False", reason="Held"),
    )
    held = await prod.run(**follow)
    assert ready(held)["reason"] == "Waiting" and prod.file_tag() == "1.1.0-dev"
    assert "which is not Ready (Held: m)" in ready(held)["message"]
    # prod's own tagRegex still applies
    known.update_status("gitops", "myapp-dev", dev_status("latest", NOW - timedelta(days=1)))
    prod.registry.tags.append("latest")
    refused = await prod.run(**follow)
    assert ready(refused)["reason"] == "NoMatchingTag"
    assert ready(refused)["message"] == (
        "ghcr.io/myorg/myapp: latest, promoted by myapp-dev, does not match tagRegex or is "
        "excluded by excludeTags here"
    )


async def test_spec_parse_keeps_the_new_fields() -> None:
    from imagepromoter import spec as spec_module

    parsed = spec_module.parse(
        make_spec(
            minAge="1h",
            pin="1.0.0-dev",
            onManualChange="overwrite",
            **{"from": {"imagePromotion": "dev", "after": "2h"}},
        )
    )
    assert parsed.min_age == timedelta(hours=1)
    assert parsed.pin == "1.0.0-dev" and parsed.on_manual_change == "overwrite"
    assert parsed.follow == stages.From("dev", timedelta(hours=2))
    assert spec_module.parse(make_spec()).on_manual_change == "hold"
    with pytest.raises(errors.InvalidSpec):
        spec_module.parse(make_spec(minage="1h"))


def test_the_worked_example_in_docs_holds_md_parses() -> None:
    import re
    from pathlib import Path

    import yaml

    from imagepromoter import spec as spec_module

    text = (Path(__file__).resolve().parent.parent / "docs" / "holds.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    docs = [d for block in blocks for d in yaml.safe_load_all(block) if d and "kind" in d]
    assert [d["metadata"]["name"] for d in docs] == ["myapp-dev", "myapp-prod"]
    dev, prod = (spec_module.parse(d["spec"]) for d in docs)
    assert dev.min_age == timedelta(hours=1)
    assert prod.follow == stages.From("myapp-dev", timedelta(hours=24))


async def test_min_age_with_policy_newest_reads_each_date_once(cr: Pass) -> None:
    cr.registry.times = {
        "1.0.0-dev": NOW - timedelta(days=3),
        "1.1.0-dev": NOW - timedelta(days=2),
        "0.5.0-dev": NOW - timedelta(minutes=5),  # the newest build, but too young
    }
    cr.registry.tags.append("0.5.0-dev")
    result = await cr.run(policy="newest", minAge="1h")
    assert ready(result)["reason"] == "Promoted" and cr.file_tag() == "1.1.0-dev"
    assert "0.5.0-dev is younger than minAge 1h" in ready(result)["message"]
