"""kube/schedule.py with a fake clock: when each CR's next pass is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagepromoter.kube import schedule

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SPEC: dict[str, Any] = {"interval": "5m"}
BACKOFF = timedelta(seconds=10)


def ready(reason: str, generation: int = 1, scanned: datetime | None = T0) -> dict[str, Any]:
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "reason": reason}],
    }
    if scanned is not None:
        status["lastScanTime"] = scanned.strftime("%Y-%m-%dT%H:%M:%SZ")
    return status


class Clocked:
    """A Schedule and a hand-driven clock."""

    def __init__(self) -> None:
        self.now = T0
        self.schedule = schedule.Schedule(base_backoff=BACKOFF)

    def finish(self, reason: str, generation: int = 1) -> timedelta | None:
        return self.schedule.record(
            "uid", generation=generation, reason=reason, interval=timedelta(minutes=5), now=self.now
        )

    def due(
        self, *, generation: int = 1, status: dict[str, Any] | None = None, **spec: Any
    ) -> bool:
        return self.schedule.due(
            "uid",
            spec_dict={**SPEC, **spec},
            status=status if status is not None else ready("UpToDate"),
            generation=generation,
            now=self.now,
        )

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def test_interval_after_success() -> None:
    c = Clocked()
    assert c.finish("Promoted") == timedelta(minutes=5)
    c.advance(minutes=4, seconds=59)
    assert not c.due()
    c.advance(seconds=1)
    assert c.due()


def test_backoff_doubles_and_resets_on_success() -> None:
    c = Clocked()
    delays = [c.finish("GitError") for _ in range(4)]
    assert delays == [BACKOFF, BACKOFF * 2, BACKOFF * 4, BACKOFF * 8]
    c.advance(seconds=79)
    assert not c.due()
    c.advance(seconds=1)
    assert c.due()
    assert c.finish("UpToDate") == timedelta(minutes=5)
    assert c.finish("RegistryError") == BACKOFF, "a success ends the streak"


def test_backoff_is_capped_at_the_interval() -> None:
    c = Clocked()
    for _ in range(20):
        delay = c.finish("PushRejected")
    assert delay == timedelta(minutes=5)


def test_invalid_spec_waits_for_a_spec_change() -> None:
    c = Clocked()
    assert c.finish("InvalidSpec") is None
    c.advance(days=30)
    assert not c.due()
    assert c.due(generation=2), "a new generation is due at once"


@pytest.mark.parametrize("reason", ["NoMatchingTag", "TargetError"])
def test_interval_failures_wait_one_interval(reason: str) -> None:
    c = Clocked()
    assert c.finish(reason) == timedelta(minutes=5)
    c.advance(minutes=4)
    assert not c.due()
    c.advance(minutes=1)
    assert c.due()


def test_after_a_restart_the_persisted_status_decides() -> None:
    c = Clocked()  # nothing recorded: the memory of a fresh process
    c.advance(minutes=2)
    assert not c.due(status=ready("UpToDate"))
    c.advance(minutes=3)
    assert c.due(status=ready("UpToDate"))
    assert not c.due(status=ready("InvalidSpec"))
    assert c.due(status=ready("InvalidSpec", generation=1), generation=2)
    assert c.due(status=ready("UpToDate", scanned=None)), "never scanned"


def test_clock_going_backwards_is_due() -> None:
    c = Clocked()
    c.advance(minutes=-1)
    assert c.due(status=ready("UpToDate"))


def test_suspend_is_due_until_the_status_shows_it() -> None:
    c = Clocked()
    assert c.due(suspend=True, status=ready("UpToDate"))
    assert not c.due(suspend=True, status=ready("Suspended"))
    assert c.due(suspend=True, status=ready("Suspended", generation=1), generation=2)


def test_forget() -> None:
    c = Clocked()
    c.finish("GitError")
    assert len(c.schedule) == 1
    c.schedule.forget("uid")
    assert len(c.schedule) == 0


@pytest.mark.parametrize(
    ("spec", "interval"),
    [({"interval": "30s"}, timedelta(seconds=30)), ({}, timedelta(minutes=5)),
     ({"interval": "nonsense"}, timedelta(minutes=5)), ({"interval": 5}, timedelta(minutes=5))],
    ids=["given", "absent", "malformed", "not-a-string"],
)  # fmt: skip
def test_interval_of(spec: dict[str, Any], interval: timedelta) -> None:
    assert schedule.interval_of(spec) == interval


# --- poke: a scan of the CR's image found new tags ----------------------------------------------

POKES = [
    # (the last pass's reason, or None for no pass since the start; due after a poke)
    ("UpToDate", True),
    ("Promoted", True),
    ("RegistryError", True),  # the backoff is cut short: the new scan may be what it waited for
    ("InvalidSpec", False),  # only a spec change helps
    (None, True),  # no pass in this process: the persisted status says not due, the poke does
]


@pytest.mark.parametrize(("reason", "due"), POKES, ids=[str(r) for r, _ in POKES])
def test_a_poke_makes_a_cr_due_at_its_next_tick(reason: str | None, due: bool) -> None:
    c = Clocked()
    if reason is not None:
        c.finish(reason)
    c.advance(seconds=1)
    assert not c.due(), "not due before the poke"
    c.schedule.poke("uid", c.now)
    assert c.due() is due
    assert c.due(status=ready("InvalidSpec")) is (due and reason is not None), (
        "no pass yet: a persisted InvalidSpec still waits for a spec change"
    )


def test_the_next_pass_clears_a_poke() -> None:
    c = Clocked()
    c.schedule.poke("uid", c.now)
    assert c.due()
    c.finish("UpToDate")
    assert not c.due(), "one poke, one pass"
    c.advance(minutes=5)
    assert c.due()


def test_a_poke_never_delays_a_cr_already_due() -> None:
    c = Clocked()
    c.finish("UpToDate")
    c.advance(minutes=6)
    c.schedule.poke("uid", c.now - timedelta(minutes=10))  # an old poke arriving late
    assert c.due()
    c.schedule.poke("uid", c.now + timedelta(minutes=10))
    assert c.due(), "a poke only moves the next pass earlier"


def test_forget_drops_a_poke() -> None:
    c = Clocked()
    c.schedule.poke("uid", c.now)
    c.schedule.forget("uid")
    assert not c.due()


SCAN = 5000.0  # the start of the scan that found new tags (epoch seconds)
DURING = [
    # (the listing the running pass used, or None for none; due again at once, poke kept)
    (SCAN - 1, True),  # an older listing: one more pass, from the new scan
    (SCAN, False),  # the very scan that found the change (the finder, or a CR that joined it)
    (SCAN + 1, False),  # a newer one
    (None, False),  # no listing (failed before it): no loop of passes
]


@pytest.mark.parametrize(("seen", "again"), DURING, ids=[str(s) for s, _ in DURING])
def test_a_poke_during_a_pass_that_used_an_older_listing_keeps_the_cr_due(
    seen: float | None, again: bool
) -> None:
    c = Clocked()
    c.finish("UpToDate")
    c.advance(minutes=5)  # a pass starts ...
    c.schedule.poke("uid", c.now, SCAN)  # ... a scan of another CR finds new tags ...
    delay = c.schedule.record(  # ... the pass ends
        "uid", generation=1, reason="UpToDate", interval=timedelta(minutes=5), now=c.now,
        seen=seen,
    )  # fmt: skip
    assert (delay == timedelta(0)) is again
    assert c.due() is again
    assert c.schedule.poked("uid") == (SCAN if again else None), "the next pass asks for it"
    if again:
        c.finish("UpToDate")  # that pass, from the new scan (record without seen: clears)
        assert not c.due() and c.schedule.poked("uid") is None


def test_poked_names_the_newest_scan_asked_for() -> None:
    c = Clocked()
    assert c.schedule.poked("uid") is None
    c.schedule.poke("uid", c.now)
    assert c.schedule.poked("uid") is None, "unknown scan: any will do"
    c.schedule.poke("uid", c.now, SCAN)
    c.schedule.poke("uid", c.now, SCAN - 10)
    assert c.schedule.poked("uid") == SCAN
