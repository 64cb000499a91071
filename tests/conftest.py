"""Shared test configuration: server fixtures are plugins, one module per kind of server.

A missing server binary skips with a visible reason on a developer machine and fails under CI
(`CI=true`), where `make test` has installed everything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.servers import MissingBinary

pytest_plugins = ["tests.fixtures_registry", "tests.fixtures_git"]

T = TypeVar("T")


def need_server(start: Callable[[], T]) -> T:
    """Start a server; a missing binary fails in CI and skips (visibly) elsewhere."""
    try:
        return start()
    except MissingBinary as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
