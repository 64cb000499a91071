"""Real servers for tests and the demo, started on 127.0.0.1 on free ports and stopped after.

Nothing here imports pytest: `scripts/demo.py` uses the same code. Fixtures live in
`tests/fixtures_*.py` and are loaded by `tests/conftest.py`.
"""

from __future__ import annotations

import os
import shutil
import socket


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
