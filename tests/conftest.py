"""Shared test configuration: server fixtures are plugins, one module per kind of server.

A missing server binary skips with a visible reason on a developer machine and fails under CI
(`CI=true`), where `make test` has installed everything. Two guards keep the servers honest:
a test that starts a server process without the `servers` mark fails (so `make unit` never starts
one), and the session fails if any server process the tests started is still alive at its end.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Generator
from typing import TypeVar

import pytest
from hypothesis import settings

from tests.servers import SPAWNED_GROUPS, MissingBinary, alive_in_groups

pytest_plugins = ["tests.fixtures_registry", "tests.fixtures_git", "tests.operator_harness"]

T = TypeVar("T")

# `make unit` runs property tests with few examples (`--hypothesis-profile=unit`); `make test` keeps
# hypothesis's default. Tests that set their own (larger) max_examples are marked slow instead.
settings.register_profile("unit", max_examples=20)
_SPAWNED_BEFORE = pytest.StashKey[int]()


def need_server(start: Callable[[], T]) -> T:
    """Start a server; a missing binary fails in CI and skips (visibly) elsewhere."""
    try:
        return start()
    except MissingBinary as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Note how many server processes had started before this test."""
    item.stash[_SPAWNED_BEFORE] = len(SPAWNED_GROUPS)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail a test that started a server process without the `servers` mark."""
    report = yield
    started = len(SPAWNED_GROUPS) - item.stash.get(_SPAWNED_BEFORE, len(SPAWNED_GROUPS))
    if call.when != "teardown" and started and item.get_closest_marker("servers") is None:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} started {started} server process(es) without "
            "@pytest.mark.servers (or a module-level pytestmark): `make unit` must start none"
        )
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if a server process the tests started outlived it (then stop it)."""
    leaked = alive_in_groups(SPAWNED_GROUPS)
    if not leaked:
        return
    for pid, _ in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    names = ", ".join(f"{command} (pid {pid})" for pid, command in leaked)
    message = f"server processes still alive after the tests (now killed): {names}"
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line(f"ERROR: {message}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
