"""pipeline.waves.DueQueue: what a tick of any CR starts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from imagepromoter.pipeline.waves import DueQueue

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("entries", "now", "due", "left"),
    [
        ({}, 0, [], 0),
        ({"a": 5}, 4.999, [], 1),
        ({"a": 5}, 5, ["a"], 0),
        ({"a": 5, "b": 1, "c": 9}, 6, ["b", "a"], 1),
        ({"a": None, "b": 1}, 10, ["b"], 0),
    ],
    ids=["empty", "not-yet", "exactly-due", "earliest-first", "none-means-unqueued"],
)
def test_pop_due(
    entries: dict[str, float | None], now: float, due: list[str], left: int
) -> None:
    queue = DueQueue()
    for key, when in entries.items():
        queue.set(key, at(when) if when is not None else None)
    assert queue.pop_due(at(now)) == due
    assert len(queue) == left
    assert queue.pop_due(at(now)) == []  # popped means gone


def test_set_again_moves_the_key_and_keeps_one_entry() -> None:
    queue = DueQueue()
    queue.set("a", at(1))
    queue.set("a", at(30))
    assert queue.pop_due(at(10)) == []
    assert queue.due_at("a") == at(30)
    assert queue.pop_due(at(30)) == ["a"]


def test_discard_and_next_at() -> None:
    queue = DueQueue()
    queue.set("a", at(1))
    queue.set("b", at(2))
    queue.discard("a")
    assert "a" not in queue and "b" in queue
    assert queue.next_at() == at(2)
    queue.discard("b")
    assert queue.next_at() is None


def test_a_wave_started_together_is_due_together() -> None:
    queue = DueQueue()
    wave = [f"cr-{i}" for i in range(1000)]
    for key in wave:
        queue.set(key, at(300))  # all recorded from the instant the wave started
    assert queue.pop_due(at(299)) == []
    assert sorted(queue.pop_due(at(300.01))) == sorted(wave)


def test_many_moves_stay_bounded_and_correct() -> None:
    rng = random.Random(7)
    queue = DueQueue()
    truth: dict[str, float] = {}
    for _ in range(20_000):
        key = f"k{rng.randrange(100)}"
        when = rng.uniform(0, 1000)
        queue.set(key, at(when))
        truth[key] = when
    assert len(queue._heap) <= 4 * len(truth) + 65  # lazy deletions are compacted
    expected = sorted((w, k) for k, w in truth.items() if w <= 500)
    assert queue.pop_due(at(500)) == [k for _, k in expected]
