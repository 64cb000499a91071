"""GitWriter.write_batch against the real smart-HTTP git server: many plans, one push.

Pushes are counted on the server side: a post-receive hook appends one line per push it runs,
naming the HTTP user (pushes of the test's "other writer" go through the file system and are
told apart). Every assertion about the remote is made with the git CLI on the bare repository.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dulwich import objects
from dulwich.objects import ObjectID

from imagepromoter import changes, credentials, errors, spec
from imagepromoter.git import workspace, writer
from tests.servers import git_http

pytestmark = pytest.mark.servers

MakeRepo = Callable[..., tuple[str, Path]]
HOOK = '#!/bin/sh\necho "${REMOTE_USER:-local}" >> "$GIT_DIR/pushes.log"\n'
FILES = ("apps/a/values.yaml", "apps/b/values.yaml")


def seed(count: int) -> dict[str, str]:
    """Two values files, each with one `appK: 0.0.0` line per app K that lives in it."""
    return {
        path: "".join(f"app{k}: 0.0.0\n" for k in range(count) if k % 2 == i)
        for i, path in enumerate(FILES)
    }


def counted(make: MakeRepo, files: dict[str, str], **options: object) -> tuple[str, Path]:
    url, repo = make(files, **options)
    hook = repo / "hooks" / "post-receive"
    hook.write_text(HOOK, "utf-8")
    hook.chmod(0o755)
    return url, repo


def our_pushes(repo: Path) -> int:
    """Pushes that came over HTTP (the writer's), from the server's own hook."""
    log = repo / "pushes.log"
    lines = log.read_text("utf-8").splitlines() if log.exists() else []
    return sum(1 for line in lines if line != "local")


def set_app(k: int, version: str, *, calls: list[int] | None = None) -> changes.Planner:
    """CR k's planner: `appK: <version>` in its file, committed as CR k with its own message."""
    path = FILES[k % 2]

    def plan(read: changes.FileReader) -> changes.Changeset:
        if calls is not None:
            calls.append(k)
        before = read(path)
        lines = before.decode().splitlines(keepends=True)
        after = "".join(
            f"app{k}: {version}\n" if line.startswith(f"app{k}:") else line for line in lines
        ).encode()
        found = (changes.FileChange(path, before, after),) if after != before else ()
        return changes.Changeset(found, f"promote app{k} to {version}")

    return changes.authored(plan, f"CR {k} <cr{k}@example.com>")


def expected_files(count: int, version: Callable[[int], str]) -> dict[str, bytes]:
    return {
        path: "".join(f"app{k}: {version(k)}\n" for k in range(count) if k % 2 == i).encode()
        for i, path in enumerate(FILES)
    }


def test_twenty_plans_over_two_files_make_one_push_and_twenty_commits(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = counted(git_repo, seed(20))
    base = git_http.head(repo, "main")
    plans = [set_app(k, f"1.{k}.0") for k in range(20)]
    results = git_writer.write_batch(spec.GitSpec(url=url), git_http_creds, plans)
    assert our_pushes(repo) == 1
    tip = git_http.head(repo, "main")
    assert all(isinstance(r, changes.WriteResult) for r in results)
    written = [r for r in results if isinstance(r, changes.WriteResult)]
    assert [r.pushed for r in written] == [tip] * 20
    assert written[-1].commit == tip
    # each commit is built on the previous CR's, and the push describes the whole chain
    assert [r.base for r in written] == [base] + [r.commit for r in written[:-1]]
    assert written[0].push == changes.Push(tip=tip or "", before=base or "", paths=FILES)
    log = git_http.log(repo, "main", "%H|%an <%ae>|%cn|%s|%P")
    assert log[:20] == [
        f"{written[k].commit}|CR {k} <cr{k}@example.com>|imagepromoter|promote app{k} to 1.{k}.0|"
        f"{written[k].base}"
        for k in reversed(range(20))
    ]
    assert len(log) == 21
    for path, content in expected_files(20, lambda k: f"1.{k}.0").items():
        assert git_http.read_file(repo, "main", path) == content
    # the same batch again: every target holds its value, nothing is pushed
    again = git_writer.write_batch(spec.GitSpec(url=url), git_http_creds, plans)
    assert all(isinstance(r, changes.WriteResult) and r.commit is None for r in again)
    assert our_pushes(repo) == 1


def test_every_plan_runs_under_the_writers_planning_lock(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    """One batch plans at a time: each plan holds the writer's planning lock, freed after."""
    url, repo = counted(git_repo, seed(4))
    held: list[bool] = []

    def watched(k: int) -> changes.Planner:
        inner = set_app(k, "3.0.0")

        def plan(read: changes.FileReader) -> changes.Changeset:
            held.append(git_writer._planning.locked())
            return inner(read)

        return plan

    results = git_writer.write_batch(
        spec.GitSpec(url=url), git_http_creds, [watched(k) for k in range(4)]
    )
    assert held == [True] * 4 and all(isinstance(r, changes.WriteResult) for r in results)
    assert not git_writer._planning.locked() and our_pushes(repo) == 1


def test_a_failing_plan_fails_only_itself(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = counted(git_repo, seed(4))

    def missing(read: changes.FileReader) -> changes.Changeset:
        read("apps/gone/values.yaml")
        raise AssertionError("the reader must refuse a missing path")

    def buggy(read: changes.FileReader) -> changes.Changeset:
        raise RuntimeError("a planner bug")

    plans = [set_app(0, "2.0.0"), missing, set_app(1, "2.0.0"), buggy, set_app(2, "2.0.0")]
    results = git_writer.write_batch(spec.GitSpec(url=url), git_http_creds, plans)
    assert isinstance(results[1], errors.TargetError)
    assert isinstance(results[3], RuntimeError)
    ok = [r for r in results if isinstance(r, changes.WriteResult)]
    assert len(ok) == 3 and all(r.commit for r in ok)
    assert our_pushes(repo) == 1
    assert git_http.log(repo, "main", "%s")[:3] == [
        "promote app2 to 2.0.0",
        "promote app1 to 2.0.0",
        "promote app0 to 2.0.0",
    ]
    assert git_http.read_file(repo, "main", FILES[0]) == b"app0: 2.0.0\napp2: 2.0.0\n"


def test_a_lost_race_re_plans_the_whole_batch_on_the_new_head(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = counted(git_repo, seed(6))
    calls: list[int] = []
    others: list[str] = []

    def outside_push(read: changes.FileReader) -> changes.Changeset:
        if not others:  # after our fetch, before our push: another writer pushes
            others.append(git_http.push_commit(repo, "main", {"OTHER.md": "theirs\n"}))
        return changes.Changeset((), "nothing")

    plans = [set_app(k, "3.0.0", calls=calls) for k in range(6)]
    results = git_writer.write_batch(
        spec.GitSpec(url=url), git_http_creds, [plans[0], outside_push, *plans[1:]]
    )
    assert calls == [0, 1, 2, 3, 4, 5] * 2, "every plan re-ran on the new head"
    assert our_pushes(repo) == 1
    log = git_http.log(repo, "main", "%H %s")
    assert log[6] == f"{others[0]} someone else", "their commit is kept, under ours"
    assert [line.split(" ", 1)[1] for line in log[:6]] == [
        f"promote app{k} to 3.0.0" for k in reversed(range(6))
    ]
    first = results[0]
    assert isinstance(first, changes.WriteResult) and first.base == others[0]
    assert git_http.read_file(repo, "main", "OTHER.md") == b"theirs\n"
    for path, content in expected_files(6, lambda k: "3.0.0").items():
        assert git_http.read_file(repo, "main", path) == content


def test_a_refused_push_fails_the_entries_that_needed_it(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    files = seed(2) | {"apps/c/values.yaml": "app9: 9.9.9\n"}
    url, repo = git_repo(files)
    hook = repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)

    def holds_already(read: changes.FileReader) -> changes.Changeset:
        read("apps/c/values.yaml")
        return changes.Changeset((), "nothing to do")

    plans = [set_app(0, "4.0.0"), holds_already, set_app(0, "4.0.0")]
    results = git_writer.write_batch(spec.GitSpec(url=url), git_http_creds, plans)
    assert isinstance(results[0], errors.PushRejected)
    assert isinstance(results[1], changes.WriteResult) and results[1].commit is None
    # empty only because entry 0's commit set the value, which never reached the remote
    assert isinstance(results[2], errors.PushRejected)
    assert git_http.read_file(repo, "main", FILES[0]) == b"app0: 0.0.0\n"


def test_push_branch_in_a_batch(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = counted(git_repo, seed(4))
    main = git_http.head(repo, "main")
    git = spec.GitSpec(url=url, branch="main", push_branch="promote/all")
    first = git_writer.write_batch(git, git_http_creds, [set_app(k, "5.0.0") for k in range(3)])
    assert all(isinstance(r, changes.WriteResult) and r.branch == "promote/all" for r in first)
    assert git_http.head(repo, "main") == main, "branch is never written with pushBranch"
    assert len(git_http.log(repo, "promote/all")) == 4
    second = git_writer.write_batch(git, git_http_creds, [set_app(k, "5.0.0") for k in range(4)])
    assert [isinstance(r, changes.WriteResult) and bool(r.commit) for r in second] == [
        False, False, False, True,
    ]  # fmt: skip
    assert our_pushes(repo) == 2
    assert git_http.log(repo, "promote/all", "%s")[0] == "promote app3 to 5.0.0"
    assert git_http.read_file(repo, "promote/all", FILES[1]) == b"app1: 5.0.0\napp3: 5.0.0\n"


def test_a_dry_run_batch_chains_the_plans_and_pushes_nothing(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = counted(git_repo, seed(4))
    base = git_http.head(repo, "main")
    plans = [set_app(0, "6.0.0"), set_app(2, "6.0.0")]
    results = git_writer.write_batch(spec.GitSpec(url=url), git_http_creds, plans, dry_run=True)
    assert our_pushes(repo) == 0 and git_http.head(repo, "main") == base
    second = results[1]
    assert isinstance(second, changes.WriteResult)
    assert second.commit is None and second.push is None and second.base == base
    (change,) = second.changeset.changes
    assert change.before == b"app0: 6.0.0\napp2: 0.0.0\n", "it read what entry 0 would commit"
    (path,) = git_writer.workspaces.root.iterdir()
    with workspace.open_repo(path) as opened:  # the chain was built in memory only
        assert objects.Blob.from_string(change.after).id not in opened.object_store


def test_a_lost_answer_reports_the_pushed_tip_for_every_entry(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = counted(git_repo, seed(2))
    git = spec.GitSpec(url=url)
    plans = [set_app(0, "7.0.0"), set_app(1, "7.0.0")]
    git_writer.write_batch(git, git_http_creds, plans)
    tip = git_http.head(repo, "main")
    assert tip is not None
    (path,) = git_writer.workspaces.root.iterdir()
    with workspace.open_repo(path) as opened:  # as if the answer to that push had been lost
        workspace.set_pending(opened, "main", ObjectID(tip.encode()))
    again = git_writer.write_batch(git, git_http_creds, plans)
    assert [r.commit for r in again if isinstance(r, changes.WriteResult)] == [tip, tip]
    assert our_pushes(repo) == 1


def test_write_is_a_batch_of_one_and_raises_its_error(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = counted(git_repo, seed(2))
    result = git_writer.write(spec.GitSpec(url=url), git_http_creds, set_app(1, "8.0.0"))
    assert result.pushed == result.commit == git_http.head(repo, "main")

    def missing(read: changes.FileReader) -> changes.Changeset:
        read("nope.yaml")
        return changes.Changeset((), "unreachable")

    with pytest.raises(errors.TargetError, match=r"nope\.yaml"):
        git_writer.write(spec.GitSpec(url=url), git_http_creds, missing)
