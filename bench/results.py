"""bench/RESULTS.md: the one place benchmark figures are written, and the one README and docs quote.

Each bench script calls `record(...)` at its end with the table it printed; its section of
RESULTS.md (between `<!-- bench:NAME -->` markers) is replaced, the others are kept, so
`make bench` (all scripts) or one script alone leaves a consistent file. Every section says when,
where and with which command its figures were measured.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import sys
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = """\
# Benchmark results

Written by `make bench` (or by one `bench/*.py` script, which replaces only its own section).
README.md and docs/*.md quote figures from here and from nowhere else. The machines are 2-core
VMs shared with other work: absolute times move between runs, ratios to the baseline measured in
the same run move much less.
"""


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def record(name: str, title: str, body: Sequence[str]) -> Path:
    """Replace section `name` of RESULTS.md with `title` and `body` (markdown lines)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["bench/" + Path(sys.argv[0]).name, *sys.argv[1:]])
    section = "\n".join(
        [
            f"<!-- bench:{name} -->",
            f"## {title}",
            "",
            f"`{command}`, {when}; Python {platform.python_version()}, {os.cpu_count()} CPUs, "
            f"load average {load:.1f} at the end.",
            "",
            *body,
            f"<!-- /bench:{name} -->",
        ]
    )
    text = RESULTS.read_text("utf-8") if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->",
                         re.S)  # fmt: skip
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text, "utf-8")
    print(f"\nwritten to {RESULTS.relative_to(RESULTS.parent.parent)} (section {name})")
    return RESULTS
