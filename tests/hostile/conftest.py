"""Fixtures of the hostile-input suite, and the figures it prints at the end of the run.

`stage(**options)` builds a `_support.Stage`: a fresh repository on the session's git server, a
fresh image (tag 1.2.3) on the htpasswd registry, and a fault proxy in front of that registry.
The terminal summary lists, per class of hostile input, how many inputs were tried and the
slowest case (peak RSS and CPU seconds of the `imagepromoter` process, or CPU seconds in
process): the figures the issue's note asks for come from here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.hostile import _support
from tests.servers import git_http, registry

_stages = itertools.count()


@pytest.fixture
def stage(
    tmp_path: Path,
    registry_htpasswd: registry.RegistryServer,
    git_http_server: git_http.GitHttpServer,
    fault_proxy: Callable[..., registry.FaultProxy],
    repo_name: str,
) -> Callable[..., _support.Stage]:
    def make(**options: Any) -> _support.Stage:
        registry_htpasswd.push_image(repo_name, tags=["1.0.0", "1.2.3"])
        proxy = fault_proxy(registry_htpasswd.url)
        return _support.Stage(
            tmp=tmp_path,
            reg=registry_htpasswd,
            git=git_http_server,
            proxy=proxy,
            repo=repo_name,
            name=f"hostile{next(_stages)}",
            **options,
        )

    return make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _support.MEASURED:
        return
    terminalreporter.write_sep("-", "hostile input: inputs tried and the slowest case per class")
    for kind, cases in sorted(_support.MEASURED.items()):
        slowest = max(cases, key=lambda c: c[2])
        biggest = max(c[1] for c in cases)
        terminalreporter.write_line(
            f"{kind}: {len(cases)} inputs; slowest {slowest[0]!r} {slowest[2]:.2f} s CPU; "
            f"largest peak RSS {biggest / 1024:.0f} MiB"
        )
