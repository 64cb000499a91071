"""Benchmark: one promotion (fetch, edit one file, commit, push) with GitWriter vs the git CLI.

Against the same local smart-HTTP server the tests use (nginx + fcgiwrap + git http-backend with
Basic auth), on a repository of 500 files and 2,000 commits, in the same run:
- cold: an empty workspace / a fresh `git clone --depth 1`;
- warm: the workspace / clone kept from the previous round, remote unchanged since our last push;
- warm+foreign: kept workspace / clone, but someone else pushed a commit since (a real fetch).
Goal (issue 4): a warm promotion no slower than the git CLI doing the same (ratio <= 1.0).

Run: .venv/bin/python bench/git_promote.py [--rounds N]
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import results
from imagepromoter import changes, credentials, spec
from imagepromoter.git import writer
from tests.servers import git_http

FILES = 500
COMMITS = 2000
TARGET = "apps/app-0250/values.yaml"


def seed_files() -> dict[str, str]:
    return {
        f"apps/app-{i:04d}/values.yaml": f"# app {i}\nimage:\n  repository: app{i}\n  tag: 0.0.0\n"
        for i in range(FILES)
    }


def planner(tag: str) -> changes.Planner:
    def plan(read: changes.FileReader) -> changes.Changeset:
        before = read(TARGET)
        lines = before.split(b"\n")
        after = b"\n".join(b"  tag: " + tag.encode() if b"  tag:" in x else x for x in lines)
        edits = (changes.FileChange(TARGET, before, after),) if after != before else ()
        return changes.Changeset(edits, f"Promote {tag}")

    return plan


class CliPromoter:
    """The same promotion done with the git CLI in a kept clone (shallow, like GitWriter)."""

    def __init__(self, url: str, username: str, password: str, workdir: Path) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.auth = ["-c", f"http.extraHeader=Authorization: Basic {token}"]
        self.url = url
        self.clone = workdir / "clone"

    def git(self, *args: str, cwd: Path | None = None) -> None:
        subprocess.run(
            ["git", *self.auth, *args],
            cwd=cwd or self.clone,
            check=True,
            capture_output=True,
            env=git_http._env(),
        )

    def promote(self, tag: str) -> None:
        if not self.clone.exists():
            self.git(
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--branch",
                "main",
                self.url,
                str(self.clone),
                cwd=self.clone.parent,
            )
        else:
            self.git("fetch", "--quiet", "--depth", "1", "origin", "main")
            self.git("reset", "--quiet", "--hard", "FETCH_HEAD")
        path = self.clone / TARGET
        lines = path.read_text().split("\n")
        path.write_text("\n".join(f"  tag: {tag}" if "  tag:" in x else x for x in lines))
        self.git("commit", "--quiet", "-am", f"Promote {tag}")
        self.git("push", "--quiet", "origin", "HEAD:refs/heads/main")

    def reset(self) -> None:
        shutil.rmtree(self.clone, ignore_errors=True)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


CLI_CASES = ("cold", "warm", "warm+foreign")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-git-") as tmp,
        git_http.serve(Path(tmp) / "server") as server,
    ):
        t0 = time.perf_counter()
        url = server.create_repo("gitops", seed_files(), commits=COMMITS)
        repo = server.repo_path("gitops")
        print(
            f"seeded {FILES} files, {len(git_http.log(repo, 'main'))} commits "
            f"in {time.perf_counter() - t0:.1f} s; {server.url('gitops')}"
        )
        creds = credentials.BasicCredentials(server.username, server.password)
        gitspec = spec.GitSpec(url=url, branch="main")
        work = Path(tmp) / "work"
        cli = CliPromoter(url, server.username, server.password, Path(tmp))
        timings: dict[str, list[float]] = {}
        counter = iter(range(10**6))

        def tag() -> str:
            return f"1.0.{next(counter)}"

        def record(name: str, ms: float) -> None:
            timings.setdefault(name, []).append(ms)

        for _ in range(args.rounds):
            shutil.rmtree(work, ignore_errors=True)
            gw = writer.GitWriter(work)
            record("dulwich cold", timed(lambda gw=gw: gw.write(gitspec, creds, planner(tag()))))
            cli.reset()
            record("git CLI cold", timed(lambda: cli.promote(tag())))
            record("dulwich warm", timed(lambda gw=gw: gw.write(gitspec, creds, planner(tag()))))
            record("git CLI warm", timed(lambda: cli.promote(tag())))
            git_http.push_commit(repo, "main", {"OTHER.md": tag()})
            record(
                "dulwich warm+foreign",
                timed(lambda gw=gw: gw.write(gitspec, creds, planner(tag()))),
            )
            git_http.push_commit(repo, "main", {"OTHER.md": tag()})
            record("git CLI warm+foreign", timed(lambda: cli.promote(tag())))
            idle = gw.write(gitspec, creds, planner("unchanged"))  # commit once ...
            record(
                "dulwich no-op (idempotent)",
                timed(lambda gw=gw: gw.write(gitspec, creds, planner("unchanged"))),
            )
            assert idle.commit is not None

        print(f"\n{'case':<28}{'median ms':>10}{'min ms':>9}{'max ms':>9}   (rounds={args.rounds})")
        for name, values in timings.items():
            print(
                f"{name:<28}{statistics.median(values):>10.1f}{min(values):>9.1f}"
                f"{max(values):>9.1f}"
            )
        print()
        rows = []
        for case in ("cold", "warm", "warm+foreign", "no-op (idempotent)"):
            ours = statistics.median(timings[f"dulwich {case}"])
            cli_ms = statistics.median(timings[f"git CLI {case}"]) if case in CLI_CASES else None
            if cli_ms is not None:
                print(f"ratio dulwich/git CLI, {case:<13} {ours / cli_ms:5.2f}")
            rows.append((case, f"{ours:.1f}", f"{cli_ms:.1f}" if cli_ms else "—",
                         f"{ours / cli_ms:.2f}" if cli_ms else "—"))  # fmt: skip
        results.record(
            "git_promote",
            f"One promotion, {FILES} files and {COMMITS:,} commits (bench/git_promote.py)",
            [
                f"Medians of {args.rounds} rounds; GitWriter next to the git CLI, same run.",
                "",
                *results.table(("case", "GitWriter ms", "git CLI ms", "ratio"), rows),
            ],
        )


if __name__ == "__main__":
    main()
