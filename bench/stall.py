"""Benchmark: how long one git write lasts against a stalling git server, with and without deadline.

Against the same local smart-HTTP server the tests use, behind tests/servers/git_http.py's
StallingProxy:
- trickle: the answer comes back one byte every 10 s (a 30 s read timeout is never hit);
- silent: connections are accepted and never answered.
Goals (issue 9): with a pass deadline D, every write ends within D + 1 s; without one, a silent
server costs one read timeout T (urllib3's retries used to make it 4 T), and a trickling one is
bounded only by the deadline (so it is not run without one here).

Run: .venv/bin/python bench/stall.py [--deadline 10] [--timeout 30] [--every 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import results
from imagepromoter import changes, credentials, errors, spec
from imagepromoter.git import writer
from tests.servers import git_http

VALUES = "image:\n  tag: 1.0.0\n"


def plan(read: changes.FileReader) -> changes.Changeset:
    before = read("values.yaml")
    after = before.replace(b"1.0.0", b"2.0.0")
    return changes.Changeset((changes.FileChange("values.yaml", before, after),), "bump")


def timed_write(
    git: writer.GitWriter, url: str, creds: credentials.BasicCredentials, deadline: float | None
) -> tuple[float, str]:
    start = time.monotonic()
    try:
        git.write(
            spec.GitSpec(url=url, branch="main"),
            creds,
            plan,
            deadline=None if deadline is None else start + deadline,
        )
        outcome = "written"
    except errors.PromotionError as exc:
        outcome = exc.message[:90]
    return time.monotonic() - start, outcome


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deadline", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="GitWriter read timeout")
    parser.add_argument("--every", type=float, default=10.0, help="seconds per trickled byte")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stall-bench-") as tmp, git_http.serve() as server:
        creds = credentials.BasicCredentials(username=server.username, password=server.password)
        url = server.create_repo("app", {"values.yaml": VALUES})
        path = "/" + url.split("/", 3)[3]
        rows = []
        for mode, deadline in (
            ("trickle", args.deadline),
            ("silent", args.deadline),
            ("silent", None),
        ):
            upstream = ("127.0.0.1", server.port)
            with git_http.StallingProxy(upstream, mode=mode, every=args.every) as proxy:
                git = writer.GitWriter(Path(tmp) / f"{mode}-{deadline}", timeout=args.timeout)
                seconds, outcome = timed_write(git, proxy.url(path), creds, deadline)
                rows.append((mode, deadline, seconds, proxy.accepted, outcome))
    print(
        f"git write against a stalling server (read timeout {args.timeout:g} s, "
        f"trickle 1 byte / {args.every:g} s)"
    )
    print(f"{'server':<8} {'deadline':>9} {'seconds':>8} {'conns':>5}  outcome")
    table = []
    for mode, deadline, seconds, conns, outcome in rows:
        shown = "none" if deadline is None else f"{deadline:g} s"
        print(f"{mode:<8} {shown:>9} {seconds:8.2f} {conns:>5}  {outcome}")
        table.append((mode, shown, f"{seconds:.2f}", conns))
    results.record(
        "stall",
        "A git write against a stalling server (bench/stall.py)",
        [
            f"GitWriter read timeout {args.timeout:g} s; the trickle sends one byte every "
            f"{args.every:g} s; the silent server accepts and never answers.",
            "",
            *results.table(("server", "pass deadline", "seconds", "connections"), table),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
