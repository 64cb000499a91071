"""Real servers for tests and the demo, started on 127.0.0.1 on free ports and stopped after.

Nothing here imports pytest: `scripts/demo.py` uses the same code. Fixtures live in
`tests/fixtures_*.py` and are loaded by `tests/conftest.py`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path


class MissingBinary(RuntimeError):
    """A server binary is not installed; `scripts/install-test-servers` installs it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(path: str) -> str:
    """Return the binary's path, or raise MissingBinary naming the Debian package script."""
    found = path if os.path.isabs(path) and os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        raise MissingBinary(f"{path} is not installed: run scripts/install-test-servers as root")
    return found


# Every process group a server started, so the test session can check at its end that none is
# still alive (tests/conftest.py). Each server's first process leads a new process group.
SPAWNED_GROUPS: list[int] = []


def spawned(process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Record a process group leader a server started; return the process unchanged."""
    SPAWNED_GROUPS.append(process.pid)
    return process


def alive_in_groups(groups: list[int], ancestor: int | None = None) -> list[tuple[int, str]]:
    """(pid, command) of each live process in one of `groups` that descends from `ancestor`.

    The ancestor (default: this process) guards against pid reuse: a group id that another
    program's process took over later is not ours.
    """
    ancestor = os.getpid() if ancestor is None else ancestor
    table: dict[int, tuple[str, int, int, str]] = {}  # pid -> (state, ppid, pgrp, command)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        command = text[text.index("(") + 1 : text.rindex(")")]
        table[int(stat.parent.name)] = (state, int(ppid), int(pgrp), command)

    def descends(pid: int) -> bool:
        while pid > 1 and pid in table:
            pid = table[pid][1]
            if pid == ancestor:
                return True
        return False

    wanted = set(groups)
    return [
        (pid, command)
        for pid, (state, _, pgrp, command) in sorted(table.items())
        if state != "Z" and pgrp in wanted and descends(pid)
    ]
