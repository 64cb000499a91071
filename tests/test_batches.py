"""pipeline.Batches: grouping by key, windows, barrier mode, answers per submitter.

The inner writer is a fake BatchWriter that records each write_batch call and runs the plans on
an in-memory file; the window's timer is injected (each window ends when the test says so), and
"every task has reached its first await" is waited for by yielding to the loop, never by time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf
import prometheus_client
import pytest

from imagepromoter import changes, cli, credentials, errors, reconcile, spec
from imagepromoter.kube import events, handlers, metrics
from imagepromoter.pipeline import batches
from tests.test_reconcile import NOW, VALUES, MemoryGit, MemoryRegistry, MemorySecrets, make_spec

URL = "https://git.example/gitops.git"
CREDS = credentials.BasicCredentials(username="bot", password="token-1")


@dataclass
class Call:
    git: spec.GitSpec
    creds: credentials.GitCredentials | None
    plans: int
    dry_run: bool
    deadline: float | None


@dataclass
class FakeWriter:
    """A BatchWriter over one in-memory file; the first call can be held until released."""

    files: dict[str, bytes] = field(default_factory=lambda: {"values.yaml": b"tag: 0\n"})
    calls: list[Call] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    fail: Exception | None = None
    hold_first: bool = False
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def write_batch(
        self,
        git: spec.GitSpec,
        creds: credentials.GitCredentials | None,
        plans: Sequence[changes.Planner],
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> list[changes.WriteResult | BaseException]:
        self.calls.append(Call(git, creds, len(plans), dry_run, deadline))
        number = len(self.calls)
        self.log.append(f"start {number}")
        self.entered.set()
        if self.hold_first and number == 1:
            assert self.release.wait(30), "never released"
        try:
            if self.fail is not None:
                raise self.fail
            answers: list[changes.WriteResult | BaseException] = []
            for plan in plans:
                try:
                    changeset = plan(self._read)
                except Exception as exc:
                    answers.append(exc)
                    continue
                for change in changeset.changes:
                    self.files[change.path] = change.after
                answers.append(
                    changes.WriteResult(
                        commit=f"{len(answers) + 1:040x}" if changeset.changes else None,
                        branch=git.branch or "main",
                        base="0" * 40,
                        changeset=changeset,
                    )
                )
            return answers
        finally:
            self.log.append(f"end {number}")

    def _read(self, path: str) -> bytes:
        if path not in self.files:
            raise errors.TargetError(f"{path} does not exist")
        return self.files[path]


class Timer:
    """An injectable sleep: window i ends when the test calls `end(i)`."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, asyncio.Event]] = []

    async def sleep(self, seconds: float) -> None:
        ended = asyncio.Event()
        self.windows.append((seconds, ended))
        await ended.wait()

    def end(self, index: int) -> None:
        self.windows[index][1].set()


def set_tag(tag: str) -> changes.Planner:
    def plan(read: changes.FileReader) -> changes.Changeset:
        before = read("values.yaml")
        after = f"tag: {tag}\n".encode()
        found = (changes.FileChange("values.yaml", before, after),) if after != before else ()
        return changes.Changeset(found, f"promote {tag}")

    return plan


def missing(read: changes.FileReader) -> changes.Changeset:
    read("gone.yaml")
    raise AssertionError("unreachable")


def git(**fields: Any) -> spec.GitSpec:
    return spec.GitSpec(**{"url": URL, "branch": "main", "secret_ref": "push", **fields})


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until `condition` holds (tasks reaching their first await)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_one_window_is_one_batch_and_each_submitter_gets_its_own_answer() -> None:
    fake, timer = FakeWriter(), Timer()
    writer = batches.Batches(fake, window=2.0, sleep=timer.sleep)
    authors = [spec.Author(name=f"CR {k}", email=f"cr{k}@example.com") for k in range(3)]
    tasks = [
        asyncio.create_task(writer.write(git(author=authors[0]), CREDS, set_tag("1"))),
        asyncio.create_task(writer.write(git(author=authors[1]), CREDS, missing)),
        asyncio.create_task(writer.write(git(author=authors[2]), CREDS, set_tag("2"))),
    ]
    await until(lambda: writer.waiting == 3 and len(timer.windows) > 0)
    assert [seconds for seconds, _ in timer.windows] == [2.0], "one window for the key"
    assert fake.calls == []
    timer.end(0)
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert [c.plans for c in fake.calls] == [3]
    first, failed, last = answers
    assert isinstance(failed, errors.TargetError)
    assert isinstance(first, changes.WriteResult) and isinstance(last, changes.WriteResult)
    assert first.changeset.author == "CR 0 <cr0@example.com>"
    assert last.changeset.author == "CR 2 <cr2@example.com>"
    assert last.changeset.changes[0].before == b"tag: 1\n", "plans ran in submission order"
    assert (writer.batches, writer.written, writer.waiting) == (1, 3, 0)


OTHER_TOKEN = credentials.BasicCredentials(username="bot", password="token-2")
SSH = credentials.SshCredentials(identity="key\n", known_hosts="host ssh-ed25519 AAAA\n")


@pytest.mark.parametrize(
    ("second", "creds", "dry_run", "batched"),
    [
        (git(), credentials.BasicCredentials(username="bot", password="token-1"), False, True),
        (git(author=spec.Author(name="Other")), CREDS, False, True),
        (git(branch="prod"), CREDS, False, False),
        (git(push_branch="review"), CREDS, False, False),
        (git(url=URL.replace("gitops", "other")), CREDS, False, False),
        (git(), OTHER_TOKEN, False, False),
        (git(secret_ref="push-2"), CREDS, False, False),
        (git(), None, False, False),
        (git(), SSH, False, False),
        (git(insecure=True), CREDS, False, False),
        (git(), CREDS, True, False),
    ],
    ids=[
        "same-values", "other-author", "branch", "push-branch", "url",
        "same-secret-name-other-token", "secret-name", "no-creds", "ssh", "insecure", "dry-run",
    ],
)  # fmt: skip
async def test_what_shares_a_batch(
    second: spec.GitSpec,
    creds: credentials.GitCredentials | None,
    dry_run: bool,
    batched: bool,
) -> None:
    fake, timer = FakeWriter(), Timer()
    writer = batches.Batches(fake, window=1.0, sleep=timer.sleep)
    tasks = [
        asyncio.create_task(writer.write(git(), CREDS, set_tag("1"))),
        asyncio.create_task(writer.write(second, creds, set_tag("2"), dry_run=dry_run)),
    ]
    await until(lambda: writer.waiting == 2 and len(timer.windows) == (1 if batched else 2))
    for index in range(len(timer.windows)):
        timer.end(index)
    await asyncio.gather(*tasks)
    assert [c.plans for c in fake.calls] == ([2] if batched else [1, 1])
    assert [c.dry_run for c in fake.calls] == ([False] if batched else [False, dry_run])


@pytest.mark.parametrize(
    ("deadlines", "expected"),
    [((5.0, 9.0, 7.0), 9.0), ((5.0, None, 7.0), None)],
    ids=["latest", "one-unbounded"],
)
async def test_the_batch_deadline_is_the_latest_of_its_members(
    deadlines: tuple[float | None, ...], expected: float | None
) -> None:
    fake, timer = FakeWriter(), Timer()
    writer = batches.Batches(fake, window=1.0, sleep=timer.sleep, clock=lambda: 0.0)
    tasks = [
        asyncio.create_task(writer.write(git(), CREDS, set_tag(str(i)), deadline=d))
        for i, d in enumerate(deadlines)
    ]
    await until(lambda: writer.waiting == len(deadlines) and len(timer.windows) == 1)
    timer.end(0)
    await asyncio.gather(*tasks)
    assert [c.deadline for c in fake.calls] == [expected]


async def test_submissions_during_a_write_open_the_next_window() -> None:
    fake, timer = FakeWriter(hold_first=True), Timer()
    writer = batches.Batches(fake, window=1.0, sleep=timer.sleep)
    first = asyncio.create_task(writer.write(git(), CREDS, set_tag("1")))
    await until(lambda: len(timer.windows) == 1)
    timer.end(0)
    await asyncio.to_thread(fake.entered.wait, 30)  # the first batch is being written
    later = [asyncio.create_task(writer.write(git(), CREDS, set_tag(t))) for t in ("2", "3")]
    await until(lambda: writer.waiting == 3 and len(timer.windows) == 2)
    timer.end(1)  # the window ended, but the key's previous batch is still being written
    for _ in range(20):  # let the window's task run on to its wait for the previous batch
        await asyncio.sleep(0)
    later.append(asyncio.create_task(writer.write(git(), CREDS, set_tag("4"))))
    await until(lambda: writer.waiting == 4)
    assert len(timer.windows) == 2, "the group stayed open while it waited: no third window"
    assert fake.log == ["start 1"]
    fake.release.set()
    await asyncio.gather(first, *later)
    assert [c.plans for c in fake.calls] == [1, 3]
    assert fake.log == ["start 1", "end 1", "start 2", "end 2"], "one batch of a key at a time"


async def test_a_member_cancelled_before_its_batch_is_left_out() -> None:
    fake, timer = FakeWriter(), Timer()
    writer = batches.Batches(fake, window=1.0, sleep=timer.sleep)
    gone = asyncio.create_task(writer.write(git(), CREDS, set_tag("1")))
    kept = asyncio.create_task(writer.write(git(), CREDS, set_tag("2")))
    await until(lambda: writer.waiting == 2 and len(timer.windows) == 1)
    gone.cancel()
    await until(lambda: writer.waiting == 1)
    timer.end(0)
    result = await kept
    assert result.changeset.message == "promote 2"
    assert [c.plans for c in fake.calls] == [1]


async def test_a_deadline_passing_while_the_group_gathers_fails_only_that_member() -> None:
    fake, timer = FakeWriter(), Timer()
    writer = batches.Batches(fake, window=1.0, sleep=timer.sleep, clock=lambda: 10.0)
    late = asyncio.create_task(
        writer.write(
            git(url="https://u:secret@git.example/x.git"), CREDS, set_tag("1"), deadline=10.0
        )
    )
    kept = asyncio.create_task(
        writer.write(
            git(url="https://u:secret@git.example/x.git"), CREDS, set_tag("2"), deadline=99.0
        )
    )
    with pytest.raises(errors.GitError, match="waited to be gathered") as caught:
        await late
    assert "secret" not in caught.value.message
    await until(lambda: len(timer.windows) == 1)
    timer.end(0)
    assert (await kept).changeset.message == "promote 2"
    assert [c.plans for c in fake.calls] == [1]


async def test_a_failing_writer_fails_every_member_with_its_error() -> None:
    fake, timer = FakeWriter(fail=errors.GitError("cannot reach the server")), Timer()
    writer = batches.Batches(fake, window=1.0, sleep=timer.sleep)
    tasks = [asyncio.create_task(writer.write(git(), CREDS, set_tag(t))) for t in ("1", "2")]
    await until(lambda: writer.waiting == 2 and len(timer.windows) == 1)
    timer.end(0)
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(a) for a in answers] == [errors.GitError, errors.GitError]


async def test_a_writer_without_write_batch_is_called_plan_by_plan() -> None:
    memory = MemoryGit({"values.yaml": b"tag: 0\n"})
    writer = batches.Batches(memory, window=0)
    first, second = await asyncio.gather(
        writer.write(git(), CREDS, set_tag("1")), writer.write(git(), CREDS, set_tag("2"))
    )
    assert writer.batches == 1 and len(memory.commits) == 2
    assert second.changeset.changes[0].before == b"tag: 1\n"
    assert first.commit != second.commit


async def test_a_zero_window_batches_what_is_already_waiting() -> None:
    fake = FakeWriter()
    writer = batches.Batches(fake, window=0)
    await asyncio.gather(*(writer.write(git(), CREDS, set_tag(str(i))) for i in range(3)))
    assert [c.plans for c in fake.calls] == [3]


async def test_barrier_mode_flushes_when_every_pass_in_flight_has_submitted_or_finished() -> None:
    fake = FakeWriter()
    writer = batches.Batches(fake, window=None)
    writer.participants(4)
    tasks = [
        asyncio.create_task(writer.write(git(), CREDS, set_tag("1"))),
        asyncio.create_task(writer.write(git(), CREDS, set_tag("2"))),
        asyncio.create_task(writer.write(git(branch="prod"), CREDS, set_tag("3"))),
    ]
    await until(lambda: writer.waiting == 3)
    assert fake.calls == [], "a fourth pass is still in flight"
    writer.leave()  # it finished without writing
    await asyncio.gather(*tasks)
    assert sorted((c.git.branch, c.plans) for c in fake.calls) == [("main", 2), ("prod", 1)]
    for _ in tasks:
        writer.leave()
    assert writer.waiting == 0


async def test_barrier_mode_without_participants_writes_at_once() -> None:
    fake = FakeWriter()
    writer = batches.Batches(fake, window=None)
    await writer.write(git(), CREDS, set_tag("1"))
    await writer.write(git(), CREDS, set_tag("2"))
    assert [c.plans for c in fake.calls] == [1, 1]


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        batches.Batches(FakeWriter(), window=-1)


# reconcile with an async writer (reconcile.AsyncGitWriter) ---------------------------------------


async def reconcile_one(
    writer: batches.Batches, path: str, *, deadline: float | None = 30.0
) -> reconcile.Result:
    spec_dict = make_spec(targets=[{"path": path, "key": "image.tag"}])
    try:
        return await reconcile.reconcile(
            reconcile.Resource(name=path.split("/")[0], namespace="gitops", spec=spec_dict),
            registry=MemoryRegistry(["1.2.0-dev"]),
            git=writer,
            secrets=MemorySecrets(),
            now=lambda: NOW,
            deadline=deadline,
        )
    finally:
        writer.leave()


async def test_reconcile_passes_share_one_batch_and_keep_their_own_outcomes() -> None:
    memory = MemoryGit({"a/values.yaml": VALUES.encode(), "b/values.yaml": VALUES.encode()})
    writer = batches.Batches(memory, window=None)  # as `imagepromoter promote` uses it
    writer.participants(3)
    a, b, gone = await asyncio.gather(
        reconcile_one(writer, "a/values.yaml"),
        reconcile_one(writer, "b/values.yaml"),
        reconcile_one(writer, "c/values.yaml"),
    )
    assert [r.outcome.reason for r in (a, b, gone)] == ["Promoted", "Promoted", "TargetError"]
    assert writer.batches == 1 and len(memory.commits) == 2
    assert b"1.2.0-dev" in memory.files["b/values.yaml"]


async def test_a_members_wait_is_bounded_by_its_own_pass_budget() -> None:
    timer = Timer()  # the window never ends
    writer = batches.Batches(FakeWriter(), window=1.0, sleep=timer.sleep)
    result = await reconcile_one(writer, "a/values.yaml", deadline=0.2)
    assert result.outcome.reason == "GitError"
    assert "deadline" in result.outcome.message
    assert writer.waiting == 0, "the member left its group"


# wiring: `imagepromoter run --batch-window` and the operator's Batches ------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2", 2.0), ("2s", 2.0), ("500ms", 0.5), ("0", 0.0), ("1.5s", 1.5), (" 250MS ", 0.25)],
    ids=["bare", "seconds", "milliseconds", "zero", "fraction", "case-and-space"],
)
def test_batch_window_accepts_seconds_and_milliseconds(text: str, seconds: float) -> None:
    args = cli.build_parser().parse_args(["run", "--batch-window", text])
    assert args.batch_window == seconds


@pytest.mark.parametrize("text", ["-1", "soon", "2m", "nan", "inf", ""], ids=str)
def test_batch_window_refuses_what_is_not_a_duration(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--batch-window", text])
    assert "--batch-window" in capsys.readouterr().err


def test_batch_window_defaults_to_two_seconds() -> None:
    assert cli.build_parser().parse_args(["run"]).batch_window == 2.0


async def test_the_operator_writes_through_batches_with_its_window() -> None:
    from tests.test_kube_handlers import MemoryStatus, written

    memory = MemoryGit({"env/dev/values.yaml": VALUES.encode()})
    state = handlers.Operator(
        handlers.Adapters(registry_factory=lambda: MemoryRegistry(["1.2.0-dev"]), git=memory),
        options=handlers.Options(batch_window=0.5),
        metrics_=metrics.Metrics(prometheus_client.CollectorRegistry()),
    )
    await state.start(kopf.OperatorSettings())
    assert state.batcher is not None and state.batcher.window == 0.5
    state.secrets = MemorySecrets()
    state.events = events.Events(post=lambda *args: None, now=lambda: NOW)
    state.status_writer = MemoryStatus()
    body = {"metadata": {"uid": "u1", "name": "app", "namespace": "gitops"}, "spec": make_spec()}
    await state.run_pass(body, kopf.Patch(), force=True, why="created")
    assert written(state)[-1]["conditions"][0]["reason"] == "Promoted"
    assert state.batcher.batches == 1 and len(memory.commits) == 1
    await state.stop()


def test_a_negative_batch_window_option_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        handlers.Options(batch_window=-0.5)


REPO = (URL, "main")


async def held(
    fake: FakeWriter, timer: Timer, hold: float
) -> tuple[batches.Batches, asyncio.Task[changes.WriteResult], batches.Expected]:
    """A group of one member whose window ended while another expected pass is still out."""
    writer = batches.Batches(fake, window=1.0, hold=hold, sleep=timer.sleep)
    mine, other = writer.expect(REPO), writer.expect(REPO)
    task = asyncio.create_task(writer.write(git(), CREDS, set_tag("1"), expected=mine))
    await until(lambda: len(timer.windows) == 1)
    timer.end(0)
    await until(lambda: len(timer.windows) == 2)
    assert fake.calls == [], "the window ended, but a pass of the repository is on its way"
    return writer, task, other


async def test_an_expected_pass_holds_the_group_past_its_window_until_it_arrives() -> None:
    fake, timer = FakeWriter(), Timer()
    writer, first, late = await held(fake, timer, hold=20.0)
    assert timer.windows[1][0] == 19.0, "held for at most the rest of `hold`"
    second = asyncio.create_task(writer.write(git(), CREDS, set_tag("2"), expected=late))
    await asyncio.gather(first, second)
    assert [c.plans for c in fake.calls] == [2], "one push once the expected pass arrived"


@pytest.mark.parametrize("how", ["ended-without-writing", "hold-ran-out"])
async def test_a_held_group_goes_when_the_expected_pass_ends_or_the_hold_runs_out(
    how: str,
) -> None:
    fake, timer = FakeWriter(), Timer()
    _, task, other = await held(fake, timer, hold=5.0)
    if how == "ended-without-writing":
        other.settle()
        other.settle()  # idempotent: a pass settles on arrival and again when it ends
    else:
        timer.end(1)
    await task
    assert [c.plans for c in fake.calls] == [1]


@pytest.mark.parametrize(
    ("window", "other_repository", "deadline"),
    [(0.0, False, None), (1.0, True, None), (1.0, False, 10.0)],
    ids=["window-0-holds-nothing", "other-repository", "deadline-too-near"],
)
async def test_when_an_expected_pass_holds_nothing(
    window: float, other_repository: bool, deadline: float | None
) -> None:
    fake, timer = FakeWriter(), Timer()
    sleep = timer.sleep if window else asyncio.sleep  # window 0: one turn of the loop
    writer = batches.Batches(fake, window=window, hold=20.0, sleep=sleep, clock=lambda: 0.0)
    mine = writer.expect(REPO)
    writer.expect((URL, "prod") if other_repository else REPO)  # never arrives
    task = asyncio.create_task(
        writer.write(git(), CREDS, set_tag("1"), expected=mine, deadline=deadline)
    )
    if window:
        await until(lambda: len(timer.windows) == 1)
        timer.end(0)
    await asyncio.wait_for(task, 30)
    assert [c.plans for c in fake.calls] == [1]
    assert len(timer.windows) == (1 if window else 0), "no hold was started"


@pytest.mark.parametrize(
    ("hold", "windows", "batches_"),
    [(20.0, 3, [3]), (2.0, 2, [3])],
    ids=["arrivals-keep-it-open", "hold-caps-the-windows"],
)
async def test_a_group_stays_open_while_members_keep_arriving(
    hold: float, windows: int, batches_: list[int]
) -> None:
    fake, timer = FakeWriter(), Timer()
    writer = batches.Batches(fake, window=1.0, hold=hold, sleep=timer.sleep)
    tasks = [asyncio.create_task(writer.write(git(), CREDS, set_tag("1")))]
    for index, tag in enumerate(("2", "3")):
        await until(lambda n=index: len(timer.windows) == n + 1)
        tasks.append(asyncio.create_task(writer.write(git(), CREDS, set_tag(tag))))
        await until(lambda n=index: writer.waiting == n + 2)
        timer.end(index)
    if windows == 3:  # the third window saw no arrival: the group goes when it ends
        await until(lambda: len(timer.windows) == 3)
        assert fake.calls == []
        timer.end(2)
    await asyncio.gather(*tasks)
    assert len(timer.windows) == windows
    assert [c.plans for c in fake.calls] == batches_


async def two_arrivals(
    second_at: float, *, deadline: float | None = None
) -> tuple[FakeWriter, Timer, list[asyncio.Task[Any]]]:
    """A 1 s window opened at 0 by a write (with `deadline`), a second write at `second_at`,
    and the clock at the window's end, which has just fired."""
    fake, timer, now = FakeWriter(), Timer(), [0.0]
    writer = batches.Batches(fake, window=1.0, hold=20.0, sleep=timer.sleep, clock=lambda: now[0])
    first = asyncio.create_task(writer.write(git(), CREDS, set_tag("1"), deadline=deadline))
    await until(lambda: len(timer.windows) == 1)
    now[0] = second_at
    second = asyncio.create_task(writer.write(git(), CREDS, set_tag("2")))
    await until(lambda: writer.waiting == 2)
    now[0] = 1.0
    timer.end(0)
    return fake, timer, [first, second]


async def test_after_the_window_a_group_waits_only_the_rest_of_a_quiet_window() -> None:
    fake, timer, (first, second) = await two_arrivals(0.3)
    await until(lambda: len(timer.windows) == 2)
    assert timer.windows[1][0] == pytest.approx(0.3), "a window from the last arrival, not two"
    timer.end(1)
    await asyncio.gather(first, second)
    assert [c.plans for c in fake.calls] == [2]


async def test_a_member_s_near_deadline_stops_the_quiet_window_too() -> None:
    deadline = 1.0 + batches.WRITE_RESERVE + 0.1  # room for 0.1 s more after the window
    fake, timer, (first, second) = await two_arrivals(0.5, deadline=deadline)
    await asyncio.gather(first, second)
    assert len(timer.windows) == 1, "the rest of a quiet window (0.5 s) would outlast the deadline"
    assert [c.plans for c in fake.calls] == [2]
