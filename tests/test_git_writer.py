"""GitWriter against a real smart-HTTP git server (nginx + fcgiwrap + git http-backend).

Every assertion about the remote is checked with the git CLI on the server's bare repository
(`git show`, `git log`), never with the adapter's own view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from imagepromoter import changes, credentials, errors, spec
from imagepromoter.git import writer
from tests.servers import git_http

pytestmark = pytest.mark.servers

VALUES = "# dev values\nimage:\n  repository: app  # the app\n  tag: 1.0.0-dev\nreplicas: 2\n"
SEED = {"Chart.yaml": "name: app\n", "environments/dev/values.yaml": VALUES}
DEV = "environments/dev/values.yaml"
MakeRepo = Callable[..., tuple[str, Path]]


def set_tag(tag: str, *paths: str, message: str = "Promote app:${tag}") -> changes.Planner:
    """A planner that rewrites `tag: <anything>` lines to `tag: <tag>` in each path."""

    def plan(read: changes.FileReader) -> changes.Changeset:
        found = []
        for path in paths or (DEV,):
            before = read(path)
            lines = [
                (line.split(b"tag:")[0] + b"tag: " + tag.encode()) if b"  tag:" in line else line
                for line in before.split(b"\n")
            ]
            after = b"\n".join(lines)
            if after != before:
                found.append(changes.FileChange(path=path, before=before, after=after))
        return changes.Changeset(tuple(found), message.replace("${tag}", tag))

    return plan


def counting(planner: changes.Planner, before_each: Callable[[int], None]) -> changes.Planner:
    """Wrap a planner to run `before_each(call_number)` first (to simulate other writers)."""
    calls = [0]

    def plan(read: changes.FileReader) -> changes.Changeset:
        calls[0] += 1
        before_each(calls[0])
        return planner(read)

    plan.calls = calls  # type: ignore[attr-defined]
    return plan


def gitspec(url: str, **kwargs: object) -> spec.GitSpec:
    return spec.GitSpec(url=url, **kwargs)  # type: ignore[arg-type]


def test_first_promotion_clones_and_commits_byte_exact(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)
    seed = git_http.head(repo, "main")
    author = spec.Author(name="Release Bot", email="bot@example.com")
    result = git_writer.write(
        gitspec(url, branch="main", author=author), git_http_creds, set_tag("1.2.0-dev")
    )
    assert result.commit == git_http.head(repo, "main")
    assert result.base == seed and result.branch == "main"
    expected = VALUES.replace("tag: 1.0.0-dev", "tag: 1.2.0-dev").encode()
    assert git_http.read_file(repo, "main", DEV) == expected
    assert git_http.read_file(repo, "main", "Chart.yaml") == b"name: app\n"
    assert git_http.log(repo, "main", "%an <%ae>|%cn <%ce>|%s|%P") == [
        f"Release Bot <bot@example.com>|imagepromoter <imagepromoter@localhost>|"
        f"Promote app:1.2.0-dev|{seed}",
        "Test Seeder <seeder@example.com>|Test Seeder <seeder@example.com>|seed|",
    ]


def test_later_promotion_fetches_incrementally_and_second_run_is_idempotent(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)
    first = git_writer.write(gitspec(url), git_http_creds, set_tag("1.1.0-dev"))
    other = git_http.push_commit(repo, "main", {"README.md": "hello\n"})
    second = git_writer.write(gitspec(url), git_http_creds, set_tag("1.2.0-dev"))
    assert second.base == other
    (workspace,) = git_writer.workspaces.root.iterdir()
    packs = sorted((workspace / "objects" / "pack").glob("*.pack"))
    again = git_writer.write(gitspec(url), git_http_creds, set_tag("1.2.0-dev"))
    # ls-remote showed the branch had not moved: nothing was fetched.
    assert sorted((workspace / "objects" / "pack").glob("*.pack")) == packs
    assert again.commit is None and again.changeset.changes == ()
    assert git_http.log(repo, "main", "%H") == [second.commit, other, first.commit, first.base]
    assert git_http.read_file(repo, "main", "README.md") == b"hello\n"
    assert (workspace / "shallow").exists()  # history was never fetched


@pytest.mark.parametrize("deny_non_ff", [True, False], ids=["deny-non-ff", "allow-non-ff"])
def test_concurrent_writer_between_fetch_and_push_keeps_both_commits(
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_creds: credentials.BasicCredentials,
    deny_non_ff: bool,
) -> None:
    url, repo = git_repo(SEED, deny_non_fast_forwards=deny_non_ff)
    others: list[str] = []

    def someone_pushes(call: int) -> None:
        if call == 1:  # after our fetch, before our push
            others.append(git_http.push_commit(repo, "main", {"OTHER.md": "theirs\n"}))

    plan = counting(set_tag("1.3.0-dev"), someone_pushes)
    result = git_writer.write(gitspec(url), git_http_creds, plan)
    assert plan.calls[0] == 2  # type: ignore[attr-defined]
    assert result.base == others[0]
    assert git_http.log(repo, "main", "%H")[:2] == [result.commit, others[0]]
    assert git_http.read_file(repo, "main", "OTHER.md") == b"theirs\n"
    assert b"tag: 1.3.0-dev" in git_http.read_file(repo, "main", DEV)


def test_losing_every_race_ends_in_push_rejected(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)

    def someone_pushes(call: int) -> None:
        git_http.push_commit(repo, "main", {f"other{call}.md": "x\n"})

    plan = counting(set_tag("1.3.0-dev"), someone_pushes)
    with pytest.raises(errors.PushRejected, match="lost to other writers 4 times"):
        git_writer.write(gitspec(url), git_http_creds, plan)
    assert plan.calls[0] == 4  # type: ignore[attr-defined]
    assert len(git_http.log(repo, "main")) == 5  # the seed and the four other commits, none lost


def test_hook_refusal_is_push_rejected_without_retrying(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)
    hook = repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    plan = counting(set_tag("1.3.0-dev"), lambda call: None)
    with pytest.raises(errors.PushRejected, match="refused the push to main") as caught:
        git_writer.write(gitspec(url), git_http_creds, plan)
    assert plan.calls[0] == 1  # type: ignore[attr-defined]
    assert git_http_creds.password not in str(caught.value)


def test_three_targets_make_one_commit(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    paths = ("a/values.yaml", "b/values.yaml", "c/deep/values.yaml")
    url, repo = git_repo({p: VALUES for p in paths} | {"keep.txt": b"\x00\xffbinary"})
    result = git_writer.write(gitspec(url), git_http_creds, set_tag("2.0.0", *paths))
    assert len(result.changeset.changes) == 3
    assert git_http.log(repo, "main", "%H") == [result.commit, result.base]
    changed = git_http.git(["show", "--format=", "--name-only", "main"], cwd=repo).split()
    assert sorted(changed) == sorted(paths)
    for path in paths:
        assert (
            git_http.read_file(repo, "main", path) == VALUES.replace("1.0.0-dev", "2.0.0").encode()
        )
    assert git_http.read_file(repo, "main", "keep.txt") == b"\x00\xffbinary"


def test_dry_run_changes_nothing(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)
    seed = git_http.head(repo, "main")
    result = git_writer.write(gitspec(url), git_http_creds, set_tag("9.9.9"), dry_run=True)
    assert result.commit is None and result.base == seed
    assert [c.path for c in result.changeset.changes] == [DEV]
    assert git_http.head(repo, "main") == seed


def test_default_branch_comes_from_remote_head(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED, branch="trunk")
    result = git_writer.write(gitspec(url, branch=None), git_http_creds, set_tag("1.5.0"))
    assert result.branch == "trunk"
    assert git_http.head(repo, "trunk") == result.commit


def test_push_branch_is_created_then_fast_forwarded(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)
    seed = git_http.head(repo, "main")
    review = gitspec(url, branch="main", push_branch="promote/dev")
    created = git_writer.write(review, git_http_creds, set_tag("1.1.0-dev"))
    assert created.branch == "promote/dev" and created.base == seed
    assert git_http.head(repo, "promote/dev") == created.commit
    assert git_http.head(repo, "main") == seed  # branch itself is never written
    # A reviewer adds a commit to the review branch; the next promotion goes on top of it.
    fixup = git_http.push_commit(repo, "promote/dev", {"NOTES.md": "reviewed\n"})
    updated = git_writer.write(review, git_http_creds, set_tag("1.2.0-dev"))
    assert git_http.log(repo, "promote/dev", "%H") == [updated.commit, fixup, created.commit, seed]
    again = git_writer.write(review, git_http_creds, set_tag("1.2.0-dev"))
    assert again.commit is None


def test_push_branch_is_rebuilt_when_branch_moved_and_only_we_committed_to_it(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)
    review = gitspec(url, branch="main", push_branch="promote/dev")
    git_writer.write(review, git_http_creds, set_tag("1.1.0-dev"))
    moved = git_http.push_commit(repo, "main", {"README.md": "someone else on main\n"})
    rebuilt = git_writer.write(review, git_http_creds, set_tag("1.2.0-dev"))
    assert rebuilt.base == moved
    assert git_http.log(repo, "promote/dev", "%H")[:2] == [rebuilt.commit, moved]
    assert git_http.head(repo, "main") == moved
    assert git_http.read_file(repo, "promote/dev", "README.md") == b"someone else on main\n"


def test_push_branch_with_others_commits_that_diverged_is_refused(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, repo = git_repo(SEED)
    review = gitspec(url, branch="main", push_branch="promote/dev")
    git_writer.write(review, git_http_creds, set_tag("1.1.0-dev"))
    theirs = git_http.push_commit(repo, "promote/dev", {"NOTES.md": "reviewed\n"})
    main = git_http.push_commit(repo, "main", {"README.md": "moved\n"})
    with pytest.raises(errors.PushRejected, match="has diverged from main and holds commits by"):
        git_writer.write(review, git_http_creds, set_tag("1.2.0-dev"))
    assert git_http.head(repo, "promote/dev") == theirs
    assert git_http.head(repo, "main") == main


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("link.yaml", "is a symlink"),
        ("linkdir/values.yaml", "goes through the symlink linkdir"),
        ("../outside.yaml", "resolves outside the repository"),
        ("environments/../../x.yaml", "resolves outside the repository"),
        (".git/config", "inside .git/"),
        ("environments/.GIT/config", "inside .git/"),
        ("environments", "is a directory"),
        ("missing.yaml", "does not exist"),
        ("big.yaml", "over the 1024-byte limit"),
        ("/etc/passwd", "not a relative path"),
    ],
    ids=[
        "symlink",
        "through-symlink-dir",
        "dotdot",
        "dotdot-nested",
        "dot-git",
        "dot-git-case",
        "directory",
        "missing",
        "too-large",
        "absolute",
    ],
)
def test_unsafe_targets_are_refused(
    git_repo: MakeRepo,
    git_http_creds: credentials.BasicCredentials,
    tmp_path: Path,
    target: str,
    message: str,
) -> None:
    url, repo = git_repo(
        SEED | {"big.yaml": "x" * 1025},
        symlinks={"link.yaml": DEV, "linkdir": "environments/dev"},
    )
    seed = git_http.head(repo, "main")
    small = writer.GitWriter(tmp_path / "ws", max_file_bytes=1024)
    with pytest.raises(errors.TargetError, match=message):
        small.write(gitspec(url), git_http_creds, set_tag("6.6.6", target))
    assert git_http.head(repo, "main") == seed


@pytest.mark.parametrize(
    ("password", "repo_name", "message"),
    [
        ("wrong-password", None, "refused the credentials in Secret gitops-write \\(HTTP 401\\)"),
        (None, None, "needs credentials \\(HTTP 401\\)"),
        ("s3cret-pw", "nope", "no git repository at http://127.0.0.1:\\d+/nope.git \\(HTTP 404\\)"),
    ],
    ids=["wrong-password", "no-credentials", "not-found"],
)
def test_server_refusals_are_actionable_git_errors(
    git_http_server: git_http.GitHttpServer,
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    password: str | None,
    repo_name: str | None,
    message: str,
) -> None:
    url, _ = git_repo(SEED)
    if repo_name:
        url = git_http_server.url(repo_name)
    creds = credentials.BasicCredentials("promoter", password) if password else None
    secret = "gitops-write" if password else None
    with pytest.raises(errors.GitError, match=message) as caught:
        git_writer.write(gitspec(url, secret_ref=secret), creds, set_tag("1.0.1"))
    assert "promoter:" not in str(caught.value)
    assert "s3cret-pw" not in str(caught.value) and "wrong-password" not in str(caught.value)


def test_unreachable_server_is_a_git_error(git_writer: writer.GitWriter) -> None:
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/gone.git"
    with pytest.raises(errors.GitError, match=r"cannot reach http://127\.0\.0\.1:\d+/gone\.git"):
        git_writer.write(gitspec(url), None, set_tag("1.0.1"))


def test_no_credentials_on_disk_in_the_workspace(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, _ = git_repo(SEED)
    git_writer.write(gitspec(url), git_http_creds, set_tag("1.0.1"))
    files = [p for p in git_writer.workspaces.root.rglob("*") if p.is_file()]
    assert files, "the workspace was kept"
    for path in files:
        data = path.read_bytes()
        assert git_http_creds.password.encode() not in data, path
        assert b"promoter:" not in data, path
    (config,) = git_writer.workspaces.root.glob("*/config")
    assert "url" not in config.read_text()


@pytest.mark.parametrize(
    "damage",
    ["delete-objects", "garbage-head", "missing-commit", "interrupted-clone"],
)
def test_damaged_workspace_is_thrown_away_and_recloned(
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_creds: credentials.BasicCredentials,
    damage: str,
) -> None:
    url, repo = git_repo(SEED)
    git_writer.write(gitspec(url), git_http_creds, set_tag("1.0.1"))
    (workspace,) = git_writer.workspaces.root.iterdir()
    if damage == "delete-objects":
        for path in (workspace / "objects").rglob("*"):
            if path.is_file():
                path.unlink()
    elif damage == "garbage-head":
        (workspace / "HEAD").write_bytes(b"\x00garbage")
    elif damage == "missing-commit":
        seen = workspace / "refs" / "heads" / "main"
        seen.write_text("0123456789abcdef0123456789abcdef01234567\n")
    else:
        (workspace / "imagepromoter-complete").unlink()
    result = git_writer.write(gitspec(url), git_http_creds, set_tag("1.0.2"))
    assert git_http.head(repo, "main") == result.commit
    assert b"tag: 1.0.2" in git_http.read_file(repo, "main", DEV)


def test_writers_in_threads_on_one_branch_serialize(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    paths = [f"app{i}/values.yaml" for i in range(4)]
    url, repo = git_repo({p: VALUES for p in paths})
    results: list[changes.WriteResult] = []

    def promote(path: str) -> None:
        results.append(git_writer.write(gitspec(url), git_http_creds, set_tag("3.0.0", path)))

    threads = [threading.Thread(target=promote, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r.commit for r in results)
    assert len(git_http.log(repo, "main")) == 5
    for path in paths:
        assert b"tag: 3.0.0" in git_http.read_file(repo, "main", path)


def test_silent_server_times_out_as_git_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow.git"
        quick = writer.GitWriter(tmp_path / "ws", timeout=0.5)
        with pytest.raises(errors.GitError, match="did not answer in time"):
            quick.write(gitspec(url), None, set_tag("1.0.1"))


def test_a_hanging_repository_does_not_hold_up_another(
    git_repo: MakeRepo, tmp_path: Path, git_http_creds: credentials.BasicCredentials
) -> None:
    import select
    import socket

    # No timeout to race: the hanging write ends only when the test closes its connection.
    git_writer = writer.GitWriter(tmp_path / "ws", retries=0, timeout=3600)
    url, repo = git_repo(SEED)
    failures: list[BaseException] = []
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hanging = f"http://127.0.0.1:{silent.getsockname()[1]}/hangs.git"

        def stuck() -> None:
            try:
                git_writer.write(gitspec(hanging, branch="main"), None, set_tag("1.0.1"))
            except errors.GitError as exc:
                failures.append(exc)

        thread = threading.Thread(target=stuck)
        thread.start()
        select.select([silent], [], [], 30)  # the stuck writer has connected and waits
        result = git_writer.write(gitspec(url), git_http_creds, set_tag("1.0.2"))
        assert thread.is_alive() and failures == []  # still waiting for the silent server
        assert git_http.head(repo, "main") == result.commit
        connection, _ = silent.accept()
        connection.close()  # now the stuck writer fails
    thread.join()
    assert len(failures) == 1


def pack_objects(workspace: Path, packs: set[Path]) -> int:
    """How many objects the given pack files hold (counted by `git verify-pack`)."""
    total = 0
    for pack in packs:
        out = git_http.git(["verify-pack", "-v", str(pack.with_suffix(".idx"))])
        total += sum(1 for line in out.splitlines() if len(line.split(" ")[0]) == 40)
    return total


def test_later_fetch_transfers_only_what_changed(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    files = {f"apps/app{i:03d}/values.yaml": VALUES.replace("app", f"app{i}") for i in range(120)}
    url, repo = git_repo(files)
    git_writer.write(gitspec(url), git_http_creds, set_tag("1.0.1", "apps/app000/values.yaml"))
    (workspace,) = git_writer.workspaces.root.iterdir()
    packs_dir = workspace / "objects" / "pack"
    cloned = set(packs_dir.glob("*.pack"))
    assert pack_objects(workspace, cloned) > 120
    git_http.push_commit(repo, "main", {"apps/app007/values.yaml": "changed\n"})
    result = git_writer.write(
        gitspec(url), git_http_creds, set_tag("1.0.2", "apps/app000/values.yaml"), dry_run=True
    )
    assert result.base == git_http.head(repo, "main")
    fetched = set(packs_dir.glob("*.pack")) - cloned
    # The foreign commit, the root, apps/ and apps/app007/ trees, and one blob; a thin pack's
    # delta base may be appended locally to complete it. The clone had over 120.
    assert 5 <= pack_objects(workspace, fetched) <= 6
