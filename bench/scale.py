"""Benchmark: N ImagePromotions over M images and G repositories, cycle by cycle (issue 11).

On servers it starts itself (the real docker-registry behind a counting pass-through proxy, and
git http-backend behind nginx with a post-receive hook that counts pushes), `imagepromoter
promote` runs as its own process over one multi-document file of N CRs (CR i: image i % M,
repository i % G, its own values file). Cycles: initial (every CR promotes), changed (a new tag
on every image), idle (nothing changed). Each reports wall time, registry requests next to their
floor (2 per image: the tag list and the chosen tag's digest), pushes next to theirs (G when
anything changed, 0 when idle) and the process's peak RSS. The same run measures the floor for
the git side: the git CLI doing G fetch + commit (every file of the repository) + push.
Not yet covered (issue 11, next session): the operator on the emulator (status PATCHes, events,
CPU split), every-CR-triggered and five-changed-in-a-row cycles, latency percentiles, the plot.

Run: .venv/bin/python bench/scale.py [--big] [--sizes N/M/G ...]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import results
from tests.servers import git_http, registry

DEFAULT_SIZES = ("10/10/2", "100/100/10")
BIG = "1000/100/10"
CLI = Path(sys.executable).with_name("imagepromoter")
HOOK = '#!/bin/sh\necho push >> "$GIT_DIR/pushes.log"\n'


@dataclass
class Cycle:
    """What one `promote` process did."""

    size: str
    kind: str
    wall_s: float
    requests: int
    requests_floor: int
    pushes: int
    pushes_floor: int
    rss_mb: float
    exit_code: int


def values(i: int) -> str:
    return f"# app {i}\nimage:\n  repository: scale/img\n  tag: 0.0.0\nreplicas: 1\n"


def cr(i: int, image: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": f"app-{i:04d}", "namespace": "gitops"},
        "spec": {
            "image": image,
            "insecure": True,
            "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)$",
            "git": {"url": url, "insecure": True, "branch": "main", "secretRef": "push"},
            "targets": [{"path": f"apps/app-{i:04d}/values.yaml", "key": "image.tag"}],
        },
    }


class Setup:
    """N CRs over M images and G repositories on the two servers."""

    def __init__(
        self,
        tmp: Path,
        reg: registry.RegistryServer,
        proxy: registry.CountingProxy,
        git: git_http.GitHttpServer,
        n: int,
        m: int,
        g: int,
    ) -> None:
        self.tmp, self.reg, self.proxy, self.git = tmp, reg, proxy, git
        self.n, self.m, self.g = n, m, g
        self.size = f"{n}/{m}/{g}"
        prefix = f"s{n}x{m}x{g}"
        self.images = [f"{prefix}/img{j:03d}" for j in range(m)]
        self.digests = {name: reg.push_image(name, tags=["1.0.0"]).digest for name in self.images}
        self.repos = [f"{prefix}-gitops{k:02d}" for k in range(g)]
        urls = []
        for k, name in enumerate(self.repos):
            files = {f"apps/app-{i:04d}/values.yaml": values(i) for i in range(k, n, g)}
            urls.append(git.create_repo(name, files))
            hook = git.repo_path(name) / "hooks/post-receive"
            hook.write_text(HOOK, "utf-8")
            hook.chmod(0o755)
        docs = [cr(i, f"{proxy.host}/{self.images[i % m]}", urls[i % g]) for i in range(n)]
        self.crs = tmp / f"{prefix}-crs.yaml"
        self.crs.write_text(yaml.safe_dump_all(docs), "utf-8")
        self.secrets = tmp / f"{prefix}-secrets.yaml"
        push = {"username": git.username, "password": git.password}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "push", "namespace": "gitops"},
            "stringData": push,
        }
        self.secrets.write_text(yaml.safe_dump(secret), "utf-8")
        self.workdir = tmp / f"{prefix}-work"
        self.version = 0

    def pushes(self) -> int:
        total = 0
        for name in self.repos:
            log = self.git.repo_path(name) / "pushes.log"
            total += len(log.read_text().splitlines()) if log.exists() else 0
        return total

    def change_every_image(self) -> None:
        self.version += 1
        for name in self.images:
            self.reg.seed_tags(name, [f"1.0.{self.version}"], self.digests[name])

    def promote(self, kind: str) -> Cycle:
        """One `imagepromoter promote` process over the N CRs."""
        self.proxy.clear()
        before = self.pushes()
        start = time.perf_counter()
        process = subprocess.Popen(
            [CLI, "promote", self.crs, "--secrets", self.secrets, "--workdir", self.workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and process.stderr is not None:
            print(process.stderr.read().decode()[-2000:], file=sys.stderr)
        changed = kind != "idle"
        return Cycle(
            self.size,
            kind,
            wall,
            len(self.proxy.seen()),
            2 * self.m,
            self.pushes() - before,
            self.g if changed else 0,
            usage.ru_maxrss / 1024,
            code,
        )

    def git_floor(self) -> float:
        """Seconds for the git CLI to fetch, edit every file, commit and push each repository."""
        token = base64.b64encode(f"{self.git.username}:{self.git.password}".encode()).decode()
        auth = ["-c", f"http.extraHeader=Authorization: Basic {token}"]
        clones = self.tmp / f"{self.size.replace('/', 'x')}-clones"
        env = git_http._env()

        def run(*args: str | Path, cwd: Path) -> None:
            subprocess.run(["git", *auth, *args], cwd=cwd, check=True, capture_output=True, env=env)

        clones.mkdir(exist_ok=True)
        for name in self.repos:  # kept clones, as the workspace is kept: not timed
            run("clone", "--quiet", "--depth", "1", self.git.url(name), name, cwd=clones)
        start = time.perf_counter()
        for name in self.repos:
            clone = clones / name
            run("fetch", "--quiet", "--depth", "1", "origin", "main", cwd=clone)
            run("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=clone)
            for path in (clone / "apps").glob("*/values.yaml"):
                path.write_text(path.read_text().replace("replicas: 1", "replicas: 2"))
            run("commit", "--quiet", "-am", "floor", cwd=clone)
            run("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=clone)
        return time.perf_counter() - start


def ratio(value: int, floor: int) -> str:
    return f"{value} ({floor})" if floor == 0 else f"{value} ({floor}, {value / floor:.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=list(DEFAULT_SIZES), help="N/M/G ...")
    parser.add_argument("--big", action="store_true", help=f"also {BIG}")
    args = parser.parse_args()
    sizes = [*args.sizes, *([BIG] if args.big else [])]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout`: still stop the servers
    cycles: list[Cycle] = []
    floors: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        tmp = Path(name)
        reg = registry.start(tmp / "registry")
        proxy = registry.CountingProxy(reg.url)
        try:
            with git_http.serve(tmp / "git") as git:
                for size in sizes:
                    n, m, g = (int(x) for x in size.split("/"))
                    t0 = time.perf_counter()
                    setup = Setup(tmp, reg, proxy, git, n, m, g)
                    print(f"{size}: seeded in {time.perf_counter() - t0:.1f} s", flush=True)
                    for kind in ("initial", "changed", "idle"):
                        if kind == "changed":
                            setup.change_every_image()
                        cycles.append(setup.promote(kind))
                        c = cycles[-1]
                        requests = ratio(c.requests, c.requests_floor)
                        print(
                            f"  {kind:<8} {c.wall_s:6.2f} s  requests {requests}"
                            f"  pushes {ratio(c.pushes, c.pushes_floor)}  RSS {c.rss_mb:.0f} MB"
                            f"  exit {c.exit_code}",
                            flush=True,
                        )
                    floors[size] = setup.git_floor()
                    print(f"  git CLI floor: {floors[size]:.2f} s for {g} fetch+commit+push")
                    shutil.rmtree(setup.workdir, ignore_errors=True)
        finally:
            proxy.stop()
            reg.stop()
    rows = [
        (
            c.size,
            c.kind,
            f"{c.wall_s:.2f}",
            ratio(c.requests, c.requests_floor),
            ratio(c.pushes, c.pushes_floor),
            f"{c.rss_mb:.0f}",
            f"{floors[c.size]:.2f}" if c.kind == "changed" else "",
            c.exit_code,
        )
        for c in cycles
    ]
    header = ("N/M/G", "cycle", "wall s", "registry requests (floor)", "pushes (floor)",
              "peak RSS MB", "git CLI floor s", "exit")  # fmt: skip
    results.record(
        "scale",
        "N ImagePromotions over M images and G repositories, `promote` (bench/scale.py)",
        [
            "One `imagepromoter promote` process per cycle over a file of N CRs; registry",
            "requests counted by a pass-through proxy, pushes by a post-receive hook. The git CLI",
            "floor: G kept clones doing fetch + commit of every file + push, same run.",
            "",
            *results.table(header, rows),
        ],
    )


if __name__ == "__main__":
    main()
