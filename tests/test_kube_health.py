"""kube/health.py with a fake clock, and its HTTP server answering from its own thread."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from imagepromoter.kube import health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> health.Health:
    return health.Health(blocked_after=10.0, start_after=300.0, clock=clock)


def test_a_beating_loop_is_healthy() -> None:
    clock = Clock()
    h = make(clock)
    for _ in range(100):
        clock.now += 5.0
        h.beat()
        assert h.check().healthy


def test_a_silent_loop_is_unhealthy() -> None:
    clock = Clock()
    h = make(clock)
    clock.now += 9.9
    assert h.check().healthy
    clock.now += 0.1
    verdict = h.check()
    assert not verdict.healthy and "event loop has been blocked for 10s" in verdict.message
    h.beat()
    assert h.check().healthy


def test_a_pass_that_cannot_start_is_unhealthy_one_that_started_is_not() -> None:
    clock = Clock()
    h = make(clock)
    with h.waiting() as started:
        clock.now += 299.0
        h.beat()
        assert h.check().healthy
        clock.now += 1.0
        h.beat()
        verdict = h.check()
        assert not verdict.healthy and "could not start for 300s" in verdict.message
        started()
        assert h.check().healthy, "a started pass waiting on a remote is fine"
        clock.now += 3600.0
        h.beat()
        assert h.check().healthy
    assert h.check().healthy


def test_the_oldest_waiting_pass_counts() -> None:
    clock = Clock()
    h = make(clock)
    with h.waiting():
        clock.now += 200.0
        with h.waiting():
            clock.now += 100.0
            h.beat()
            assert not h.check().healthy
    assert h.check().healthy, "leaving the block ends the wait"


async def test_heartbeat_beats_from_the_loop() -> None:
    import asyncio

    clock = Clock()
    h = make(clock)
    clock.now += 60.0
    assert not h.check().healthy
    task = asyncio.create_task(h.heartbeat(every=0.01))
    try:
        for _ in range(100):
            await asyncio.sleep(0)
            if h.check().healthy:
                break
        assert h.check().healthy
    finally:
        task.cancel()


@pytest.mark.servers
def test_server_answers_200_then_503_with_the_reason() -> None:
    clock = Clock()
    h = make(clock)
    server = health.Server(h, "http://127.0.0.1:0/healthz")
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200 and json.loads(resp.read())["healthy"] is True
        clock.now += 60.0
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=5)
        assert caught.value.code == 503
        assert "blocked" in json.loads(caught.value.read())["message"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()
