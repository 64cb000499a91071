"""The locks are what gets installed, and they agree with pyproject.toml's ranges.

requirements-test.lock is what `make test` (and so `.ci/run`) installs; requirements.lock is
what the image installs (tests/test_dockerfile.py). Both come from `make lock`; a dependency added
to pyproject.toml without re-locking fails here, naming it.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
TEST = [Requirement(r) for r in PROJECT["optional-dependencies"]["test"]]


def pins(name: str) -> dict[str, tuple[Version, int]]:
    """{package: (version, number of hashes)} from a lock file."""
    found: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in (ROOT / name).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            current = canonicalize_name(match[1])
            found[current] = (Version(match[2]), 0)
        elif "--hash=sha256:" in line and current:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


TEST_LOCK = pins("requirements-test.lock")
RUNTIME_LOCK = pins("requirements.lock")
BUILD_LOCK = pins("requirements-build.lock")
BUILD = [
    Requirement(r)
    for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
]


@pytest.mark.parametrize(
    ("requirement", "lock"),
    [(r, TEST_LOCK) for r in RUNTIME + TEST]
    + [(r, RUNTIME_LOCK) for r in RUNTIME]
    + [(r, BUILD_LOCK) for r in BUILD],
    ids=[f"test-lock-{r.name}" for r in RUNTIME + TEST]
    + [f"lock-{r.name}" for r in RUNTIME]
    + [f"build-lock-{r.name}" for r in BUILD],
)
def test_every_declared_dependency_is_locked_within_its_range(
    requirement: Requirement, lock: dict[str, tuple[Version, int]]
) -> None:
    name = canonicalize_name(requirement.name)
    assert name in lock, f"{requirement} is not locked: run `make lock`"
    assert lock[name][0] in requirement.specifier, f"{requirement}: locked {lock[name][0]}"


def test_every_pin_is_hash_checked() -> None:
    for lock in (TEST_LOCK, RUNTIME_LOCK, BUILD_LOCK):
        assert lock and all(hashes for _, hashes in lock.values())


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    assert set(RUNTIME_LOCK) <= set(TEST_LOCK)
    assert {n: v for n, (v, _) in RUNTIME_LOCK.items()} == {
        n: TEST_LOCK[n][0] for n in RUNTIME_LOCK
    }
    tools = {"pytest", "hypothesis", "ruff", "mypy", "uv", "helm-python-sdk", "kmock", "jsonschema"}
    assert not tools & set(RUNTIME_LOCK), "no test tool in the image"


def test_make_test_installs_the_test_lock_and_ci_runs_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q --require-hashes -r $(TEST_LOCK) -r $(BUILD_LOCK)" in makefile
    assert "TEST_LOCK := requirements-test.lock" in makefile
    assert "pip install -q --no-deps --no-build-isolation -e ." in makefile
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)


def test_kubernetes_client_is_neither_declared_nor_imported() -> None:
    """Kopf logs in and talks to the API itself; the kubernetes client would be dead weight."""
    assert "kubernetes" not in TEST_LOCK
    for path in (ROOT / "operator").rglob("*.py"):
        assert not re.search(r"^\s*(import|from) kubernetes\b", path.read_text(), re.M), path


def test_httpcore_finds_sniffio_without_searching_sys_path() -> None:
    """httpcore imports sniffio in every lock and event it sets up; were it not installed, each
    of those imports would search sys.path again (README, design notes). A finder placed first
    on sys.meta_path sees only imports that are not already loaded."""
    from httpcore._synchronization import current_async_library

    searched: list[str] = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: object, target: object = None) -> None:
            searched.append(fullname)

    async def twice() -> str:
        current_async_library()
        return current_async_library()

    spy = Spy()
    sys.meta_path.insert(0, spy)
    try:
        assert asyncio.run(twice()) == "asyncio"
    finally:
        sys.meta_path.remove(spy)
    assert searched == []
