"""git/chain.py on an in-memory object store: the commits of a batch and what each entry answers.

No server: the store is Dulwich's MemoryObjectStore with one seed commit. The writer's use of
the chain against a real server is in test_git_batch.py.
"""

from __future__ import annotations

import pytest
from dulwich import objects
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import ObjectID

from imagepromoter import changes, errors
from imagepromoter.git import chain

AUTHOR, COMMITTER = "Bot <bot@example.com>", "imagepromoter <imagepromoter@localhost>"


def seed(files: dict[str, bytes]) -> tuple[MemoryObjectStore, ObjectID]:
    """A store holding one commit of `files` (one folder level: `dir/name`)."""
    store = MemoryObjectStore()
    folders: dict[str, objects.Tree] = {}
    for path, data in files.items():
        folder, name = path.split("/")
        blob = objects.Blob.from_string(data)
        store.add_object(blob)
        folders.setdefault(folder, objects.Tree()).add(name.encode(), 0o100644, blob.id)
    root = objects.Tree()
    for folder, tree in folders.items():
        store.add_object(tree)
        root.add(folder.encode(), 0o040000, tree.id)
    store.add_object(root)
    commit = seed_commit(root.id, b"Seeder <seed@example.com>")
    store.add_object(commit)
    return store, commit.id


def seed_commit(tree: ObjectID, who: bytes) -> objects.Commit:
    """A root commit of `tree` at the epoch, by and committed by `who`."""
    commit = objects.Commit()
    commit.tree, commit.parents = tree, []
    commit.author = commit.committer = who
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"seed\n"
    return commit


def setting(path: str, value: bytes, *, author: str | None = None) -> changes.Planner:
    def plan(read: changes.FileReader) -> changes.Changeset:
        before = read(path)
        found = (changes.FileChange(path, before, value),) if before != value else ()
        return changes.Changeset(found, f"set {path} to {value.decode()}", author=author)

    return plan


def failing(read: changes.FileReader) -> changes.Changeset:
    raise errors.TargetError("image.tga does not exist")


def build(store: MemoryObjectStore, base: ObjectID, plans: list[changes.Planner]) -> chain.Chain:
    return chain.build(
        store, base, plans, branch="main", author=AUTHOR, committer=COMMITTER, max_file_bytes=1024
    )


def test_each_plan_reads_the_tree_the_previous_commit_left() -> None:
    store, base = seed({"a/values.yaml": b"1", "b/values.yaml": b"1"})
    built = build(
        store,
        base,
        [
            setting("a/values.yaml", b"2", author="CR A <a@example.com>"),
            failing,
            setting("a/values.yaml", b"3"),
            setting("b/values.yaml", b"2"),
        ],
    )
    first, failed, second, third = built.links
    assert isinstance(failed.result, errors.TargetError)
    assert isinstance(second.result, changes.WriteResult)
    assert second.result.changeset.changes[0].before == b"2"
    assert isinstance(first.result, changes.WriteResult) and first.commit is not None
    assert second.result.base == first.commit.decode() and built.tip == third.commit
    commits = [store[link.commit] for link in (first, second, third) if link.commit]
    assert [c.author for c in commits if isinstance(c, objects.Commit)] == [
        b"CR A <a@example.com>", AUTHOR.encode(), AUTHOR.encode()
    ]  # fmt: skip
    assert built.paths == ("a/values.yaml", "b/values.yaml")
    assert len({obj.id for obj in built.created}) == len(built.created), "each object once"
    assert {obj.id for obj in built.created} >= {link.commit for link in (first, second, third)}


def test_nothing_to_change_is_no_commit_and_the_tip_stays_the_base() -> None:
    store, base = seed({"a/values.yaml": b"1"})
    built = build(store, base, [setting("a/values.yaml", b"1")])
    assert built.tip == base and built.created == [] and built.links[0].commit is None


def test_an_empty_changeset_that_leans_on_an_earlier_commit_is_dependent() -> None:
    store, base = seed({"a/values.yaml": b"1", "b/values.yaml": b"1"})
    built = build(
        store,
        base,
        [
            setting("a/values.yaml", b"2"),
            setting("a/values.yaml", b"2"),
            setting("b/values.yaml", b"1"),
        ],
    )
    assert [link.dependent for link in built.links] == [False, True, False]


def test_a_store_failure_while_planning_is_raised_even_if_the_plan_swallows_it() -> None:
    store, base = seed({"a/values.yaml": b"1"})
    blob = objects.Blob.from_string(b"1")
    del store._data[blob.id]  # a workspace that lost an object

    def swallowing(read: changes.FileReader) -> changes.Changeset:
        try:
            read("a/values.yaml")
        except Exception:
            pass
        return changes.Changeset((), "nothing")

    with pytest.raises(KeyError):
        build(store, base, [swallowing])


PUSH_FAILED = errors.PushRejected("refused")
LANDED = ObjectID(b"e" * 40)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"pushed": True}, ["pushed", "target", "up-to-date", "up-to-date"]),
        ({"failed": PUSH_FAILED}, ["failed", "target", "failed", "up-to-date"]),
        ({"pushed": True, "landed": LANDED}, ["pushed", "target", "up-to-date", "landed"]),
        ({"failed": PUSH_FAILED, "landed": LANDED}, ["failed", "target", "failed", "landed"]),
        ({"dry_run": True}, ["dry", "target", "up-to-date", "up-to-date"]),
    ],
    ids=["pushed", "refused", "pushed-and-landed", "refused-and-landed", "dry-run"],
)
def test_what_each_entry_answers(kwargs: dict[str, object], expected: list[str]) -> None:
    store, base = seed({"a/values.yaml": b"1", "b/values.yaml": b"1"})
    built = build(
        store,
        base,
        [
            setting("a/values.yaml", b"2"),  # a commit
            failing,  # its own error
            setting("a/values.yaml", b"2"),  # empty only thanks to the first
            setting("b/values.yaml", b"1"),  # empty on the base
        ],
    )
    answers = built.outcome(**kwargs)  # type: ignore[arg-type]

    def kind(answer: changes.WriteResult | BaseException) -> str:
        if answer is PUSH_FAILED:
            return "failed"
        if isinstance(answer, errors.TargetError):
            return "target"
        assert isinstance(answer, changes.WriteResult)
        if answer.push is not None:
            assert answer.push.tip == built.tip.decode() == answer.pushed
            return "pushed"
        if answer.commit == LANDED.decode():
            return "landed"
        if answer.changeset.changes:
            assert answer.commit is None and answer.base == base.decode()
            return "dry"
        return "up-to-date" if answer.commit is None else "?"

    assert [kind(a) for a in answers] == expected
