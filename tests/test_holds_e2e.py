"""Holds, pins, minAge and stages end to end: `imagepromoter promote` on the real servers.

A real token-auth docker-registry and the real smart-HTTP git server (tests/servers/). Each run
is the console command in-process (`cli.main`); the status it prints as JSON is put back into
the manifests for the next run, as a user keeping the CR's status would, and the clock is the
injected `cli._now` (never a sleep). A "human" is the git CLI committing as Test Seeder.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepromoter import cli
from tests.servers import git_http, registry
from tests.test_cli_e2e import DEV_VALUES, PROD_VALUES, cr, secrets

pytestmark = pytest.mark.servers

START = datetime.now(UTC).replace(microsecond=0)


class Flow:
    """The seed's dev -> prod flow: two CRs on one repository, `promote` run again and again."""

    def __init__(
        self,
        tmp_path: Path,
        reg: registry.RegistryServer,
        git: git_http.GitHttpServer,
        repo_name: str,
        name: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.reg, self.capsys = reg, capsys
        self.repo_id = f"holds-{name}"
        url = git.create_repo(
            self.repo_id, {"env/dev/values.yaml": DEV_VALUES, "env/prod/values.yaml": PROD_VALUES}
        )
        self.bare = git.repo_path(self.repo_id)
        self.repository = repo_name
        image = f"{reg.host}/{repo_name}"
        self.docs = {
            "app-dev": cr("app-dev", "dev", "env/dev/values.yaml", image, url),
            "app-prod": cr("app-prod", "stable", "env/prod/values.yaml", image, url),
        }
        self.crs = tmp_path / "crs.yaml"
        self.secrets = tmp_path / "secrets.yaml"
        self.secrets.write_text(
            yaml.safe_dump_all(secrets(reg, git.username, git.password)), "utf-8"
        )
        self.workdir = tmp_path / "work"
        self.now = START
        monkeypatch.setattr(cli, "_now", lambda: self.now)

    def spec(self, name: str, **fields: Any) -> None:
        """Set (or, with None, remove) spec fields of one CR."""
        for key, value in fields.items():
            if value is None:
                self.docs[name]["spec"].pop(key, None)
            else:
                self.docs[name]["spec"][key] = value

    def annotate(self, name: str, key: str, value: str) -> None:
        self.docs[name]["metadata"].setdefault("annotations", {})[key] = value

    def promote(self, *names: str) -> dict[str, dict[str, Any]]:
        """One `promote --output json` over the CRs named (default both); statuses kept."""
        docs = [self.docs[n] for n in (names or self.docs)]
        self.crs.write_text(yaml.safe_dump_all(docs), "utf-8")
        self.capsys.readouterr()
        code = cli.main(
            [
                "promote",
                str(self.crs),
                "--secrets",
                str(self.secrets),
                "--workdir",
                str(self.workdir),
                "--output",
                "json",
            ]
        )
        out = json.loads(self.capsys.readouterr().out)
        statuses = {entry["name"]: entry["status"] for entry in out}
        for name, status in statuses.items():
            self.docs[name]["status"] = copy.deepcopy(status)
        ready_all = all(s["conditions"][0]["status"] == "True" for s in statuses.values())
        assert code == (cli.EXIT_READY if ready_all else cli.EXIT_NOT_READY)
        return statuses

    def promote_text(self, name: str) -> str:
        """One `promote` with text output over one CR (statuses not kept)."""
        self.crs.write_text(yaml.safe_dump_all([self.docs[name]]), "utf-8")
        self.capsys.readouterr()
        args = ["promote", str(self.crs), "--secrets", str(self.secrets)]
        cli.main([*args, "--workdir", str(self.workdir)])
        return self.capsys.readouterr().out

    def file(self, env: str) -> str:
        return git_http.read_file(self.bare, "main", f"env/{env}/values.yaml").decode()

    def commits(self) -> list[str]:
        return git_http.log(self.bare, "main")

    def human_commit(self, env: str, old: str, new: str, message: str) -> str:
        text = self.file(env).replace(old, new)
        return git_http.push_commit(self.bare, "main", {f"env/{env}/values.yaml": text}, message)


def ready(status: dict[str, Any]) -> tuple[str, str]:
    condition = status["conditions"][0]
    return condition["reason"], condition["message"]


@pytest.fixture
def flow(
    tmp_path: Path,
    registry_token: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    repo_name: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Flow]:
    old = START - timedelta(days=3)
    registry_token.push_image(repo_name, tags=["1.0.0-dev", "1.0.0-stable"], created=old)
    registry_token.push_image(repo_name, tags=["1.1.0-dev", "1.1.0-stable"], created=old)
    name = request.node.name.replace("[", "-").replace("]", "")
    yield Flow(tmp_path, registry_token, git_http_server, repo_name, name, monkeypatch, capsys)


def test_a_human_rollback_is_held_naming_the_commit_and_releasing_promotes_again(
    flow: Flow,
) -> None:
    first = flow.promote()
    assert ready(first["app-prod"])[0] == "Promoted"  # the first promotion adopts and writes
    assert "tag: 1.1.0-stable" in flow.file("prod")
    sha = flow.human_commit("prod", "1.1.0-stable", "1.0.0-stable", "roll prod back: 1.1 breaks")
    flow.reg.push_image(flow.repository, tags=["1.2.0-stable"], created=START - timedelta(days=1))
    before = flow.commits()
    held = flow.promote()
    reason, message = ready(held["app-prod"])
    assert reason == "Held"
    assert message == (
        "env/prod/values.yaml holds 1.0.0-stable, not 1.1.0-stable as we last wrote it: changed "
        f"in {sha[:7]} by Test Seeder <seeder@example.com> ('roll prod back: 1.1 breaks'); not "
        "overwriting a manual change. To promote again: change the annotation (kubectl annotate "
        'ipr app-prod -n gitops --overwrite imagepromoter.dev/release-hold="$(date +%s)"), set '
        "spec.pin to the tag to run, or set spec.onManualChange: overwrite"
    )
    assert held["app-prod"]["hold"]["commit"] == sha
    assert flow.commits() == before and "tag: 1.0.0-stable" in flow.file("prod")
    assert ready(held["app-dev"])[0] == "UpToDate"  # the other CR is not held
    assert ready(flow.promote()["app-prod"])[0] == "Held"  # still held on the next run
    flow.annotate("app-prod", "imagepromoter.dev/release-hold", "1")
    released = flow.promote()
    assert ready(released["app-prod"])[0] == "Promoted"
    assert "tag: 1.2.0-stable" in flow.file("prod") and "hold" not in released["app-prod"]


def test_a_pin_rolls_back_and_unpinning_resumes(flow: Flow) -> None:
    flow.promote()
    flow.spec("app-prod", pin="1.0.0-stable")
    pinned = flow.promote()
    assert ready(pinned["app-prod"])[0] == "Pinned"
    assert ready(pinned["app-prod"])[1].startswith("spec.pin 1.0.0-stable: Promoted 1.0.0-stable")
    assert "tag: 1.0.0-stable" in flow.file("prod")
    assert ready(flow.promote()["app-prod"])[0] == "Pinned"  # stays, nothing new committed
    flow.spec("app-prod", pin=None)
    resumed = flow.promote()
    assert ready(resumed["app-prod"])[0] == "Promoted"
    assert "tag: 1.1.0-stable" in flow.file("prod")


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        (
            "1.9.0-stable",
            "spec.pin 1.9.0-stable is not in the registry (4 tags listed); push it, or set "
            "spec.pin to a tag that exists",
        ),
        (
            "1.0.0-dev",
            "spec.pin: '1.0.0-dev' does not match tagRegex '^(?P<version>\\\\d+\\\\.\\\\d+\\\\."
            "\\\\d+)-stable$'; a pin must be a tag this ImagePromotion could promote",
        ),
    ],
    ids=["not-in-registry", "fails-tag-regex"],
)
def test_a_bad_pin_changes_nothing(flow: Flow, pin: str, message: str) -> None:
    flow.promote()
    before = flow.commits()
    flow.spec("app-prod", pin=pin)
    reason, got = ready(flow.promote("app-prod")["app-prod"])
    assert got.endswith(message) and reason in {"NoMatchingTag", "InvalidSpec"}
    assert flow.commits() == before


def test_a_young_tag_waits_and_is_promoted_when_it_comes_of_age(flow: Flow) -> None:
    flow.spec("app-dev", minAge="1h")
    flow.promote("app-dev")
    assert "1.1.0-dev" in flow.file("dev")
    flow.reg.push_image(flow.repository, tags=["1.3.0-dev"], created=START)
    flow.reg.push_image(flow.repository, tags=["1.2.0-dev"], created=START - timedelta(hours=2))
    meanwhile = flow.promote("app-dev")["app-dev"]
    qualifies = (START + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ready(meanwhile)[0] == "Promoted" and "1.2.0-dev" in flow.file("dev")
    assert ready(meanwhile)[1].endswith(
        f"; 1.3.0-dev is younger than minAge 1h and qualifies at {qualifies}"
    )
    assert meanwhile["waitingUntil"] == qualifies
    flow.now = START + timedelta(minutes=59)
    waiting = flow.promote("app-dev")["app-dev"]
    assert ready(waiting)[0] == "Waiting" and waiting["waitingUntil"] == qualifies
    assert f"  waiting:  {qualifies}" in flow.promote_text("app-dev").splitlines()
    flow.now = START + timedelta(hours=1)
    aged = flow.promote("app-dev")["app-dev"]
    assert ready(aged)[0] == "Promoted" and "1.3.0-dev" in flow.file("dev")
    assert "waitingUntil" not in aged


def test_an_image_created_in_the_future_falls_back_to_first_seen(flow: Flow) -> None:
    flow.spec("app-dev", minAge="30m")
    flow.promote("app-dev")
    flow.reg.push_image(flow.repository, tags=["2.0.0-dev"], created=START + timedelta(days=365))
    seen = flow.promote("app-dev")["app-dev"]
    assert ready(seen)[0] == "Waiting"
    assert seen["firstSeen"] == [{"tag": "2.0.0-dev", "time": START.strftime("%Y-%m-%dT%H:%M:%SZ")}]
    flow.now = START + timedelta(minutes=30)
    assert ready(flow.promote("app-dev")["app-dev"])[0] == "Promoted"
    assert "2.0.0-dev" in flow.file("dev")


def test_prod_follows_dev_after_the_delay_not_before_and_not_while_dev_is_held(
    flow: Flow,
) -> None:
    flow.spec("app-prod", tagRegex=r"^(?P<version>\d+\.\d+\.\d+)-dev$")
    flow.spec("app-prod", **{"from": {"imagePromotion": "app-dev", "after": "1h"}})
    first = flow.promote()
    assert ready(first["app-dev"])[0] == "Promoted"
    reason, message = ready(first["app-prod"])
    assert reason == "Waiting" and "1.1.0-dev has been promoted there since" in message
    assert "tag: 0.9.0-stable" in flow.file("prod")
    flow.now = START + timedelta(hours=1)
    followed = flow.promote()
    assert ready(followed["app-prod"])[0] == "Promoted" and "tag: 1.1.0-dev" in flow.file("prod")
    # dev is rolled back by hand and held: prod does not follow a newer dev tag meanwhile
    flow.human_commit("dev", '"1.1.0-dev"', '"1.0.0-dev"', "dev rollback")
    flow.reg.push_image(flow.repository, tags=["1.2.0-dev"], created=START - timedelta(days=1))
    held = flow.promote()
    assert ready(held["app-dev"])[0] == "Held"
    assert ready(held["app-prod"])[0] == "Waiting"
    assert "which is not Ready (Held:" in ready(held["app-prod"])[1]
    assert "tag: 1.1.0-dev" in flow.file("prod")


def test_a_failing_upstream_is_not_followed(flow: Flow) -> None:
    flow.spec("app-prod", tagRegex=r"^(?P<version>\d+\.\d+\.\d+)-dev$")
    flow.spec("app-prod", **{"from": {"imagePromotion": "app-dev"}})
    flow.spec("app-dev", tagRegex="(unclosed")
    statuses = flow.promote()
    assert ready(statuses["app-dev"])[0] == "InvalidSpec"
    reason, message = ready(statuses["app-prod"])
    assert reason == "Waiting"
    assert message.startswith("following app-dev, which is not Ready (InvalidSpec: spec.tagRegex")
    assert "tag: 0.9.0-stable" in flow.file("prod")


def test_a_loop_and_a_missing_upstream_are_invalid_spec(flow: Flow) -> None:
    flow.spec("app-dev", **{"from": {"imagePromotion": "app-prod"}})
    flow.spec("app-prod", **{"from": {"imagePromotion": "app-dev"}})
    looped = flow.promote()
    assert ready(looped["app-prod"]) == (
        "InvalidSpec",
        "spec.from.imagePromotion: a loop: app-prod follows app-dev, app-dev follows app-prod; "
        "none of them can ever promote: remove spec.from from one of them",
    )
    flow.spec("app-prod", **{"from": {"imagePromotion": "app-qa"}})
    missing = flow.promote("app-prod")
    assert ready(missing["app-prod"]) == (
        "InvalidSpec",
        "spec.from.imagePromotion: ImagePromotion app-qa does not exist in namespace gitops; "
        "create it or correct the name",
    )


# --- git/history.py on the real git server: which commit put the value there -----------------

VALUES = "image:\n  tag: 1.1.0  # ours\nreplicas: 2\n"


def _value(data: bytes) -> str | None:
    from imagepromoter import holds

    return holds.current_value(data.decode(), "image.tag", None)


@pytest.mark.parametrize(
    ("edits", "found", "named", "limit"),
    [
        ([("1.0.0", 2, "rollback")], "1.0.0", "rollback", 50),
        ([("1.0.0", 2, "rollback"), ("1.0.0", 5, "scale up")], "1.0.0", "rollback", 50),
        ([("0.9.0", 2, "first try"), ("1.0.0", 2, "rollback")], "1.0.0", "rollback", 50),
        ([("1.0.0", 2, "rollback")] + [("1.0.0", n, f"scale {n}") for n in range(3, 9)], "1.0.0",
         None, 4),
    ],
    ids=["one-commit", "a-later-unrelated-edit-is-not-blamed", "the-last-of-two-changes",
         "older-than-the-limit"],
)  # fmt: skip
def test_history_names_the_commit_that_put_the_value_there(
    git_repo: Any,
    git_http_creds: Any,
    tmp_path: Path,
    edits: list[tuple[str, int, str]],
    found: str,
    named: str | None,
    limit: int,
) -> None:
    from imagepromoter import holds, spec
    from imagepromoter.git import history, writer

    url, repo = git_repo({"values.yaml": VALUES.replace("1.1.0", "0.1.0")})
    git_writer = writer.GitWriter(tmp_path / "w", retries=1, sleep=lambda s: None)
    gitspec = spec.GitSpec(url=url, branch="main", insecure=True)

    def ours(read: Any) -> Any:
        from imagepromoter import changes

        before = read("values.yaml")
        return changes.Changeset(
            (changes.FileChange("values.yaml", before, VALUES.encode()),), "promote 1.1.0"
        )

    our = git_writer.write(gitspec, git_http_creds, ours).commit
    shas = {}
    for tag, replicas, message in edits:
        text = VALUES.replace("1.1.0", tag).replace("replicas: 2", f"replicas: {replicas}")
        shas[message] = git_http.push_commit(repo, "main", {"values.yaml": text}, message)
    revisions = history.History(git_writer, limit=limit).revisions(
        gitspec, git_http_creds, "values.yaml", since=our
    )
    assert len(revisions) <= limit
    change = holds.introduced(revisions, found, _value)
    if named is None:
        assert change is None
        return
    assert change is not None
    assert (change.sha, change.author, change.summary) == (
        shas[named],
        "Test Seeder <seeder@example.com>",
        named,
    )
    assert revisions[-1].sha == our  # the walk stops at our last commit


def test_history_of_an_unreachable_server_is_empty_not_an_error(
    tmp_path: Path, git_http_creds: Any
) -> None:
    from imagepromoter import spec
    from imagepromoter.git import history, writer

    git_writer = writer.GitWriter(tmp_path / "w", retries=1, timeout=2, sleep=lambda s: None)
    gitspec = spec.GitSpec(url="http://127.0.0.1:9/none.git", branch="main", insecure=True)
    assert (
        history.History(git_writer).revisions(gitspec, git_http_creds, "v.yaml", since=None) == []
    )
