"""The pass deadline inside the git writer, on the real git server behind a stalling proxy of ours.

Each write runs in a thread that the test joins with a generous bound: a write the watchdog
failed to end would show as "still running", never hang the suite. Nothing here asserts a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagepromoter import credentials, errors
from imagepromoter.git import writer
from tests.servers import git_http
from tests.test_git_writer import DEV, SEED, gitspec, set_tag

pytestmark = pytest.mark.servers

MakeRepo = Callable[..., tuple[str, Path]]
JOIN = 60.0  # seconds a write may take before the test calls it hung (deadlines are ~1 s)
PUSH_DEADLINE = 5.0  # room to reach the push on a busy machine; the push then waits it out


@pytest.fixture
def proxy(
    git_http_server: git_http.GitHttpServer,
) -> Iterator[Callable[..., git_http.StallingProxy]]:
    made: list[git_http.StallingProxy] = []

    def make(**options: Any) -> git_http.StallingProxy:
        made.append(git_http.StallingProxy(("127.0.0.1", git_http_server.port), **options))
        return made[-1]

    yield make
    for p in made:
        p.stop()


def proxied(proxy: git_http.StallingProxy, url: str) -> str:
    """`url` (on the real server) as reached through `proxy`."""
    return proxy.url("/" + url.split("/", 3)[3])


def write_while_held(
    held: Any, git_writer: writer.GitWriter, url: str, creds: credentials.BasicCredentials
) -> str:
    """The GitError message of a write with a 0.5 s deadline while `held` (a lock) is taken."""
    held.acquire()
    try:
        with pytest.raises(errors.GitError) as caught:
            write_in_thread(
                lambda: git_writer.write(
                    gitspec(url, branch="main"), creds, set_tag("2.0.0-dev"),
                    deadline=time.monotonic() + 0.5,
                )
            )  # fmt: skip
    finally:
        held.release()
    return caught.value.message


def write_in_thread(call: Callable[[], Any]) -> Any:
    """Run `call` in a thread; return its result or raise its exception; fail if it hangs."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(JOIN)
    assert not thread.is_alive(), "the write did not end at its deadline"
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_a_stalling_server_ends_at_the_deadline_naming_phase_and_host(
    mode: str,
    proxy: Callable[..., git_http.StallingProxy],
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_creds: credentials.BasicCredentials,
) -> None:
    url, repo = git_repo(SEED)
    stalling = proxy(mode=mode, every=10.0)
    target = proxied(stalling, url)
    with pytest.raises(errors.GitError) as caught:
        write_in_thread(
            lambda: git_writer.write(
                gitspec(target, branch="main"),
                git_http_creds,
                set_tag("2.0.0-dev"),
                deadline=time.monotonic() + 1.0,
            )
        )
    message = caught.value.message
    assert "pass deadline ran out during git ls-remote" in message or "during git fetch" in message
    assert f"127.0.0.1:{stalling.port}" in message
    assert stalling.accepted >= 1
    assert git_http.read_file(repo, "main", DEV) == SEED[DEV].encode(), "nothing written"


def test_a_silent_server_is_not_retried_by_urllib3(
    proxy: Callable[..., git_http.StallingProxy],
    git_repo: MakeRepo,
    tmp_path: Path,
    git_http_creds: credentials.BasicCredentials,
) -> None:
    """Without a deadline, a silent server ends after one read timeout, not four."""
    url, _ = git_repo(SEED)
    silent = proxy(mode="silent")
    quick = writer.GitWriter(tmp_path / "w", timeout=0.5, retries=0)
    with pytest.raises(errors.GitError) as caught:
        write_in_thread(
            lambda: quick.write(gitspec(proxied(silent, url), branch="main"), git_http_creds,
                                set_tag("2.0.0-dev"))
        )  # fmt: skip
    assert "did not answer in time" in caught.value.message
    assert silent.accepted == 1, "urllib3's own retries would open one connection per attempt"


def test_waiting_for_the_workspace_lock_ends_at_the_deadline(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, _ = git_repo(SEED)
    path = git_writer.workspaces.path(url, "main")
    lock = git_writer.workspaces.lock(path)  # another CR's write on the same branch, stuck
    message = write_while_held(lock, git_writer, url, git_http_creds)
    assert "waiting for another promotion into" in message


def test_waiting_for_another_batchs_planning_ends_at_the_deadline(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    url, _ = git_repo(SEED)
    message = write_while_held(git_writer._planning, git_writer, url, git_http_creds)
    assert "waiting for another batch's planning to finish" in message


def test_a_push_whose_answer_never_came_is_recognised_as_ours(
    proxy: Callable[..., git_http.StallingProxy],
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_creds: credentials.BasicCredentials,
) -> None:
    url, repo = git_repo(SEED)
    lossy = proxy(mode="drop-answer")
    target = gitspec(proxied(lossy, url), branch="main")
    seed = git_http.head(repo, "main")
    with pytest.raises(errors.GitError) as caught:
        write_in_thread(
            lambda: git_writer.write(
                target,
                git_http_creds,
                set_tag("2.0.0-dev"),
                deadline=time.monotonic() + PUSH_DEADLINE,
            )
        )
    assert "during git push" in caught.value.message
    landed = git_http.head(repo, "main")
    assert landed != seed, "the server carried the push out"
    assert b"tag: 2.0.0-dev" in git_http.read_file(repo, "main", DEV)
    assert lossy.dropped_answers >= 1
    lossy.mode = "pass"
    again = write_in_thread(
        lambda: git_writer.write(
            target, git_http_creds, set_tag("2.0.0-dev"), deadline=time.monotonic() + 30
        )
    )
    assert again.commit == landed, "the commit on the remote is reported as ours"
    assert again.changeset.changes == ()
    third = git_writer.write(target, git_http_creds, set_tag("2.0.0-dev"))
    assert third.commit is None, "once answered, it is not reported again"


def test_a_lost_push_under_a_later_commit_is_still_ours(
    proxy: Callable[..., git_http.StallingProxy],
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_creds: credentials.BasicCredentials,
) -> None:
    url, repo = git_repo(SEED)
    lossy = proxy(mode="drop-answer")
    target = gitspec(proxied(lossy, url), branch="main")
    with pytest.raises(errors.GitError):
        write_in_thread(
            lambda: git_writer.write(
                target,
                git_http_creds,
                set_tag("2.0.0-dev"),
                deadline=time.monotonic() + PUSH_DEADLINE,
            )
        )
    ours = git_http.head(repo, "main")
    git_http.push_commit(repo, "main", {"README.md": "someone else\n"})
    lossy.mode = "pass"
    again = git_writer.write(target, git_http_creds, set_tag("2.0.0-dev"))
    assert again.commit == ours


def test_a_lost_push_that_did_not_land_is_pushed_again(
    proxy: Callable[..., git_http.StallingProxy],
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_creds: credentials.BasicCredentials,
) -> None:
    url, repo = git_repo(SEED)
    silent_push = proxy(mode="pass")
    target = gitspec(proxied(silent_push, url), branch="main")
    # the push is refused by a pre-receive hook that takes its time: nothing lands
    hook = repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(errors.PushRejected):
        git_writer.write(target, git_http_creds, set_tag("2.0.0-dev"))
    hook.unlink()
    result = git_writer.write(target, git_http_creds, set_tag("2.0.0-dev"))
    assert result.commit == git_http.head(repo, "main") and result.changeset.changes


def test_ssh_gets_keep_alive_and_is_killed_at_the_deadline() -> None:
    """The ssh Dulwich runs carries ServerAliveInterval/CountMax, and the watchdog ends it."""
    from dulwich import client as dulwich_client

    from imagepromoter.git import deadlines

    client = dulwich_client.SSHGitClient("127.0.0.1", port=22)
    deadlines.instrument(client, alive_interval=7, alive_count=2)
    echo = client.ssh_vendor.run_command("host", b"git-upload-pack", ssh_command="echo ssh")
    words = echo.proc.communicate(timeout=JOIN)[0].decode().split()
    assert "ServerAliveInterval=7" in words and "ServerAliveCountMax=2" in words
    # an ssh that hangs after the handshake (here: a shell that sleeps) is killed at the deadline
    with deadlines.Watchdog(time.monotonic() + 0.3):
        hung = client.ssh_vendor.run_command(
            "host", b"git-upload-pack", ssh_command="sh -c 'exec sleep 600'"
        )
        assert hung.proc.wait(timeout=JOIN) != 0


def test_a_pre_receive_hook_that_sleeps_then_accepts(
    git_repo: MakeRepo, git_writer: writer.GitWriter, git_http_creds: credentials.BasicCredentials
) -> None:
    """The push outlives its deadline on the server and lands; the next write owns it."""
    url, repo = git_repo(SEED)
    seed = git_http.head(repo, "main")
    release = repo / "release-hook"
    hook = repo / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\nwhile [ ! -e {release} ]; do sleep 0.05; done\nexit 0\n")
    hook.chmod(0o755)
    target = gitspec(url, branch="main")
    with pytest.raises(errors.GitError) as caught:
        write_in_thread(
            lambda: git_writer.write(
                target,
                git_http_creds,
                set_tag("2.0.0-dev"),
                deadline=time.monotonic() + PUSH_DEADLINE,
            )
        )
    assert "during git push" in caught.value.message
    release.touch()  # the hook accepts, after the client has given up
    deadline = time.monotonic() + JOIN
    while git_http.head(repo, "main") == seed:
        assert time.monotonic() < deadline, "the push never landed"
        time.sleep(0.05)
    landed = git_http.head(repo, "main")
    hook.unlink()
    again = git_writer.write(target, git_http_creds, set_tag("2.0.0-dev"))
    assert again.commit == landed


async def test_the_status_shows_the_commit_of_a_lost_push(
    proxy: Callable[..., git_http.StallingProxy],
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_server: git_http.GitHttpServer,
) -> None:
    """Two passes through reconcile: GitError naming the push, then Promoted with that commit."""
    from datetime import UTC, datetime

    from imagepromoter import reconcile
    from tests.test_reconcile import MemoryRegistry, MemorySecrets

    url, repo = git_repo(SEED)
    lossy = proxy(mode="drop-answer")
    spec_dict = {
        "image": "ghcr.io/myorg/app",
        "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
        "git": {"url": proxied(lossy, url), "branch": "main", "secretRef": "w", "insecure": True},
        "targets": [{"path": DEV, "key": "image.tag"}],
    }
    secrets = MemorySecrets(
        {("gitops", "w"): {"username": git_http_server.username,
                           "password": git_http_server.password}}
    )  # fmt: skip
    status: dict[str, Any] = {}
    results = []
    for _ in range(2):
        resource = reconcile.Resource(name="a", namespace="gitops", spec=spec_dict, status=status,
                                      generation=1)  # fmt: skip
        result = await reconcile.reconcile(
            resource, registry=MemoryRegistry(["2.0.0-dev"]), git=git_writer, secrets=secrets,
            now=lambda: datetime(2026, 12, 1, tzinfo=UTC), deadline=PUSH_DEADLINE,
        )  # fmt: skip
        results.append(result)
        status = result.status
        lossy.mode = "pass"
    first, second = results
    assert first.outcome.reason == "GitError" and "during git push" in first.outcome.message
    assert second.outcome.reason == "Promoted", second.outcome.message
    assert second.status["lastCommit"] == git_http.head(repo, "main")
    assert second.status["promotedTag"] == "2.0.0-dev"
    assert "answer to that push was lost" in second.outcome.message


def test_ssh_keep_alive_ends_a_server_gone_silent_after_the_handshake(
    sshd_server: Any, tmp_path: Path
) -> None:
    """No deadline at all: only ServerAlive* can notice. The server goes silent mid-push."""
    repo = tmp_path / "remote" / "gitops.git"
    git_http.create_bare_repo(repo, {DEV: SEED[DEV]})
    started, release = tmp_path / "hook-started", tmp_path / "hook-release"
    hook = repo / "hooks" / "pre-receive"
    hook.write_text(
        f"#!/bin/sh\ntouch {started}\ni=0\n"
        f"while [ ! -e {release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\nexit 0\n"
    )
    hook.chmod(0o755)
    with git_http.StallingProxy(("127.0.0.1", sshd_server.port)) as dead:
        creds = credentials.SshCredentials(
            identity=sshd_server.identity,
            known_hosts=sshd_server.known_hosts.replace(
                f"[127.0.0.1]:{sshd_server.port}", f"[127.0.0.1]:{dead.port}"
            ),
        )
        url = sshd_server.url(repo).replace(f":{sshd_server.port}/", f":{dead.port}/")
        alive = writer.GitWriter(tmp_path / "w", ssh_alive_interval=1, ssh_alive_count=1)
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = alive.write(gitspec(url, branch="main"), creds, set_tag("3.0.0"))
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        bound = time.monotonic() + JOIN
        while not started.exists():  # the push is in the server's hook: handshake long done
            assert time.monotonic() < bound and thread.is_alive(), box
            time.sleep(0.02)
        dead.freeze()
        thread.join(JOIN)
        release.touch()
        assert not thread.is_alive(), "ssh without keep-alive would wait for ever"
    assert isinstance(box.get("error"), errors.GitError), box
    assert "hung up" in box["error"].message


def test_connection_slots_per_host_are_bounded_by_the_deadline(
    git_repo: MakeRepo, tmp_path: Path, git_http_creds: credentials.BasicCredentials
) -> None:
    url, _ = git_repo(SEED)
    one = writer.GitWriter(tmp_path / "w", max_per_host=1)
    slot = one._host_slot(f"127.0.0.1:{url.split(':')[2].split('/')[0]}")  # its only slot
    message = write_while_held(slot, one, url, git_http_creds)
    assert "waiting for a free connection to 127.0.0.1:" in message


def test_a_writer_queued_on_a_branch_holds_no_connection_slot(
    git_repo: MakeRepo, tmp_path: Path, git_http_creds: credentials.BasicCredentials
) -> None:
    url_a, _ = git_repo(SEED)
    url_b, repo_b = git_repo(SEED)
    one = writer.GitWriter(tmp_path / "w", max_per_host=1)

    class Signalling:
        """The workspace lock of A, telling the test when a writer starts waiting on it."""

        def __init__(self) -> None:
            self.inner = threading.Lock()
            self.waiting = threading.Event()

        def acquire(self, timeout: float = -1) -> bool:
            self.waiting.set()
            return self.inner.acquire(timeout=timeout)

        def release(self) -> None:
            self.inner.release()

    lock = Signalling()
    one.workspaces._locks[one.workspaces.path(url_a, "main")] = lock  # type: ignore[assignment]
    lock.inner.acquire()  # a write to repository A, branch main, in progress
    queued: dict[str, Any] = {}

    def wait_on_a() -> None:
        try:
            one.write(gitspec(url_a, branch="main"), git_http_creds, set_tag("2.0.0-dev"),
                      deadline=time.monotonic() + 30)  # fmt: skip
        except BaseException as exc:
            queued["error"] = exc

    waiter = threading.Thread(target=wait_on_a, daemon=True)
    waiter.start()
    assert lock.waiting.wait(JOIN), "the second write to A never queued"
    try:
        result = write_in_thread(
            lambda: one.write(gitspec(url_b, branch="main"), git_http_creds,
                              set_tag("3.0.0-dev"), deadline=time.monotonic() + 20)
        )  # fmt: skip
        assert result.commit == git_http.head(repo_b, "main"), "B was not held up by A's queue"
    finally:
        lock.inner.release()
        waiter.join(JOIN)
    assert not waiter.is_alive() and "error" not in queued, queued


def test_the_history_read_of_a_held_file_ends_at_the_deadline(
    proxy: Callable[..., git_http.StallingProxy],
    git_repo: MakeRepo,
    git_writer: writer.GitWriter,
    git_http_creds: credentials.BasicCredentials,
) -> None:
    """git/history (who changed a held value) is best effort: at the deadline it has no answer."""
    from imagepromoter.git import history

    url, _ = git_repo(SEED)
    stalling = proxy(mode="trickle")
    reader = history.History(git_writer)
    found = write_in_thread(
        lambda: reader.revisions(
            gitspec(proxied(stalling, url), branch="main"),
            git_http_creds,
            DEV,
            since=None,
            deadline=time.monotonic() + 1.0,
        )
    )
    assert found == [] and stalling.accepted >= 1
