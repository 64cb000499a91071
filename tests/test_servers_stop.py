"""Every way the harness starts a server stops every process it started: `serve()` of each kind,
`with RegistryServer(...)` and `with reg.start():`, `make demo` (scripts/demo.py) run whole, and
the bench scripts that start servers (small sizes, results written to a temporary file).

`tests/conftest.py` also fails the session if any server process outlives it; these name the
helper that leaked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_server
from tests.servers import SPAWNED_GROUPS, alive_in_groups, git_http, registry, sshd

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def started_by_block() -> Iterator[list[int]]:
    """The process groups the servers started inside the `with` block."""
    before = len(SPAWNED_GROUPS)
    groups: list[int] = []
    yield groups
    groups.extend(SPAWNED_GROUPS[before:])


def registry_with_start(tmp: Path) -> contextlib.AbstractContextManager[Any]:
    return registry.RegistryServer(tmp).start()


HELPERS: list[tuple[str, Callable[[Path], contextlib.AbstractContextManager[Any]]]] = [
    ("registry-serve", lambda tmp: registry.serve(tmp)),
    ("registry-serve-tls", lambda tmp: registry.serve(tmp, tls=True)),
    ("registry-serve-token", lambda tmp: registry.serve(tmp, auth="token")),
    ("registry-with-server", lambda tmp: registry.RegistryServer(tmp)),
    ("registry-with-start", registry_with_start),
    ("git-http-serve", lambda tmp: git_http.serve(tmp)),
    ("sshd-serve", lambda tmp: sshd.serve(tmp)),
]


@pytest.mark.parametrize("make", [h for _, h in HELPERS], ids=[n for n, _ in HELPERS])
def test_each_server_helper_stops_what_it_started(
    make: Callable[[Path], contextlib.AbstractContextManager[Any]], tmp_path: Path
) -> None:
    with started_by_block() as groups:
        with contextlib.ExitStack() as stack:
            need_server(lambda: stack.enter_context(make(tmp_path)))
            assert alive_in_groups(SPAWNED_GROUPS[-1:]), "the server runs inside the block"
    assert groups, "the helper started a process"
    assert alive_in_groups(groups) == []


def load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_demo_leaves_no_server_behind(capsys: pytest.CaptureFixture[str]) -> None:
    demo = load(ROOT / "scripts" / "demo.py")
    with started_by_block() as groups:
        assert need_server(demo.main) == 0
    assert len(groups) == 2, "a registry and a git server"
    assert alive_in_groups(groups) == []
    assert "servers stopped" in capsys.readouterr().out


BENCHES = [
    ("registry_scan.py", ["--tags", "300", "--rounds", "1"]),
    ("git_promote.py", ["--rounds", "1"]),
    ("webhook_latency.py", ["--rounds", "1"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args"), BENCHES, ids=[s for s, _ in BENCHES])
def test_a_bench_script_leaves_no_server_behind(
    script: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from bench import results

    monkeypatch.setattr(results, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(sys, "argv", [script, *args])
    bench = load(ROOT / "bench" / script)
    with started_by_block() as groups:
        need_server(bench.main)
    assert groups and alive_in_groups(groups) == []
    assert f"<!-- bench:{script.removesuffix('.py')} -->" in (tmp_path / "RESULTS.md").read_text()
