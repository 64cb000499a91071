"""bench/scale.py's world: N CRs over M images and G repositories on the real servers; the floor.

One `Setup` per size and mode (its own images and repositories, so the CLI's cycles and the
operator's start from the same state). CR i names image i % M and repository i % G and owns the
file apps/app-i/values.yaml. A post-receive hook appends, per push, its arrival time (the server's
clock, nanoseconds) and the files the push changed: pushes are counted and each CR's promotion
latency is read from there, not from second-resolution commit times. Registry requests are
counted by a pass-through proxy. The floor is done in the same run on the same servers: the git
CLI fetching, committing (every file) and pushing each of the G repositories, and one curl
process making the minimum registry requests (one tag list and one manifest HEAD per image).
"""

from __future__ import annotations

import base64
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import SPAWNED_GROUPS, git_http, registry
from tests.servers import spawned as _spawned

HOOK = """#!/bin/sh
now=$(date +%s.%N)
while read old new ref; do
  echo "push $now $ref" >> pushes.log
  git diff --name-only "$old" "$new" | sed "s|^|file $now |" >> pushes.log
done
"""
FILE = re.compile(r"apps/app-(\d+)/values\.yaml")
ACCEPT = ("application/vnd.oci.image.manifest.v1+json,"
          "application/vnd.docker.distribution.manifest.v2+json")  # fmt: skip
NAMESPACE = "gitops"
PIDFILE: list[Path] = []  # `--pidfile`: the process groups started so far, rewritten on each


def spawned(process: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    """tests.servers.spawned, and the groups so far into the pidfile (for the SIGTERM test)."""
    _spawned(process)
    write_groups()
    return process


def write_groups() -> None:
    for path in PIDFILE:
        path.write_text("".join(f"{group}\n" for group in SPAWNED_GROUPS))


@dataclass
class Cycle:
    """What one cycle did, in one mode at one size."""

    size: str
    mode: str  # cli | operator | floor
    kind: str
    wall_s: float
    requests: int
    requests_min: int
    pushes: int
    pushes_min: int
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    api_cpu_s: float | None = None  # the emulator's, operator mode only
    status_patches: int | None = None
    object_patches: int | None = None  # PATCHes of the CR itself (Kopf's annotations)
    events: int | None = None
    secret_reads: int | None = None
    promoted: int = 0  # CRs whose change reached the git server this cycle
    note: str = ""
    # operator: from the cycle's first registry request (its wave began) to the last commit's
    # arrival at the git server, so the wait for the timer, which depends on the phase the
    # bench happened to start in, is left out; the CLI's is its wall time
    busy_s: float | None = None

    @property
    def n(self) -> int:
        return int(self.size.split("/")[0])

    def latency(self, q: float) -> float | None:
        """The q-quantile (0.5, 0.95) of the promotion latencies, seconds."""
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q * 100) - 1]


def values(i: int) -> str:
    return f"# app {i}\nimage:\n  repository: scale/img\n  tag: 0.0.0\nreplicas: 1\n"


class Setup:
    """N CRs over M images and G repositories on the two servers, for one mode."""

    def __init__(
        self,
        tmp: Path,
        reg: registry.RegistryServer,
        proxy: registry.CountingProxy,
        git: git_http.GitHttpServer,
        size: str,
        mode: str,
        interval: str,
    ) -> None:
        self.tmp, self.reg, self.proxy, self.git = tmp, reg, proxy, git
        self.n, self.m, self.g = (int(x) for x in size.split("/"))
        self.size, self.mode, self.interval = size, mode, interval
        self.prefix = f"{mode}{self.n}x{self.m}x{self.g}"
        self.images = [f"{self.prefix}/img{j:03d}" for j in range(self.m)]
        self.digests = {name: reg.push_image(name, tags=["1.0.0"]).digest for name in self.images}
        self.repos = [f"{self.prefix}-gitops{k:02d}" for k in range(self.g)]
        self.urls = []
        for k, name in enumerate(self.repos):
            files = {f"apps/app-{i:04d}/values.yaml": values(i) for i in range(k, self.n, self.g)}
            self.urls.append(git.create_repo(name, files))
            hook = git.repo_path(name) / "hooks/post-receive"
            hook.write_text(HOOK, "utf-8")
            hook.chmod(0o755)
        self.workdir = tmp / f"{self.prefix}-work"
        self.version = 0
        self.tag = "1.0.0"
        self.seeded_at = {j: time.time() for j in range(self.m)}
        self._offsets = dict.fromkeys(self.repos, 0)
        self.arrived: dict[int, float] = {}
        self.pushes = 0

    def cr(self, i: int) -> dict[str, Any]:
        return {
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "ImagePromotion",
            "metadata": {"name": f"app-{i:04d}", "namespace": NAMESPACE},
            "spec": {
                "image": f"{self.proxy.host}/{self.images[i % self.m]}",
                "insecure": True,
                "interval": self.interval,
                "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)$",
                "git": {
                    "url": self.urls[i % self.g],
                    "insecure": True,
                    "branch": "main",
                    "secretRef": "push",
                },
                "targets": [{"path": f"apps/app-{i:04d}/values.yaml", "key": "image.tag"}],
            },
        }

    def crs(self) -> list[dict[str, Any]]:
        return [self.cr(i) for i in range(self.n)]

    def secret(self) -> dict[str, Any]:
        data = {"username": self.git.username, "password": self.git.password}
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "push", "namespace": NAMESPACE},
            # `data`, as an API server returns it (it never returns stringData)
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }

    # --- one cycle's observations ------------------------------------------------------------

    def begin_cycle(self) -> None:
        """Forget the previous cycle's arrivals and requests (the push log is read on)."""
        self.poll()
        self.arrived.clear()
        self.pushes = 0
        self.proxy.clear()

    def poll(self) -> None:
        """Read the pushes that arrived since the last poll."""
        for name in self.repos:
            log = self.git.repo_path(name) / "pushes.log"
            if not log.exists():
                continue
            with log.open("rb") as f:
                f.seek(self._offsets[name])
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            self._offsets[name] += end
            for line in data[:end].decode().splitlines():
                kind, stamp, rest = line.split(" ", 2)
                if kind == "push":
                    self.pushes += 1
                elif (match := FILE.fullmatch(rest)) is not None:
                    self.arrived.setdefault(int(match[1]), float(stamp))

    def latencies(self) -> list[float]:
        """Seconds from each promoted CR's new tag to its commit on the server."""
        return sorted(at - self.seeded_at[i % self.m] for i, at in self.arrived.items())

    def change_every_image(self) -> None:
        """A new tag on every image (through the storage tree: no request to count)."""
        self.version += 1
        self.tag = f"1.0.{self.version}"
        for j, name in enumerate(self.images):
            self.reg.seed_tags(name, [self.tag], self.digests[name])
            self.seeded_at[j] = time.time()

    def requests(self) -> int:
        return len(self.proxy.seen())

    def requests_min(self) -> int:
        """Distinct images x (one tag page + one digest of the chosen tag)."""
        return 2 * self.m

    # --- the floor, same servers, same run ---------------------------------------------------

    def git_floor(self) -> float:
        """Seconds for the git CLI to fetch, edit every file, commit and push each repository."""
        token = base64.b64encode(f"{self.git.username}:{self.git.password}".encode()).decode()
        auth = ["-c", f"http.extraHeader=Authorization: Basic {token}"]
        clones = self.tmp / f"{self.prefix}-clones"
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
        elapsed = time.perf_counter() - start
        shutil.rmtree(clones, ignore_errors=True)
        return elapsed

    def curl_floor(self) -> tuple[float, int]:
        """Seconds and requests for one curl process doing the minimum registry requests."""
        config = self.tmp / f"{self.prefix}-curl.conf"
        base = self.proxy.url
        lines = []
        for name in self.images:
            lines += [f'url = "{base}/v2/{name}/tags/list"', 'output = "/dev/null"', "next"]
            lines += ["head", f'header = "Accept: {ACCEPT}"',
                      f'url = "{base}/v2/{name}/manifests/{self.tag}"', 'output = "/dev/null"',
                      "next"]  # fmt: skip
        config.write_text("\n".join(lines[:-1]) + "\n", "utf-8")
        self.proxy.clear()
        start = time.perf_counter()
        subprocess.run(["curl", "--silent", "--fail", "--config", str(config)], check=True)
        return time.perf_counter() - start, self.requests()
