"""What the hostile-input suite shares: running `imagepromoter` as a process and judging its output.

- `run_cli(args, ...)` runs `python -m imagepromoter` as a process (as a user would), with an
  optional address-space limit (RLIMIT_AS, set before exec), and returns its exit code, output,
  peak RSS and CPU time, read with `os.wait4` for that process alone. Nothing here measures
  wall-clock time: bounded work is shown by memory and by the process finishing at all.
- `leaks(texts, secrets)`: every secret, or encoding or 8-character piece of one, found in texts.
- `Stage`: a git repository with a values file on the real git server, an image on the real
  registry (through a `FaultProxy` that can serve a hostile tag list), the Secrets and CR files.
- `MEASURED`: (class, inputs, slowest case) figures the tests record, printed at session end.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tests.servers import git_http, registry

REPO_ROOT = Path(__file__).resolve().parents[2]
API_VERSION = "imagepromoter.dev/v1alpha1"

# class -> list of (case id, peak RSS in KiB, seconds of CPU); printed by conftest at the end
MEASURED: dict[str, list[tuple[str, int, float]]] = {}


@dataclass(frozen=True)
class Run:
    """One finished `imagepromoter` process."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_kib: int
    cpu_seconds: float

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


# A small launcher between pytest and imagepromoter: Linux counts the pages a process held
# before `exec` in its peak RSS, so a child forked from pytest itself would report pytest's size.
# The launcher (a few MiB) forks and execs imagepromoter, waits for it and writes its rusage.
_LAUNCHER = """
import os, resource, sys
limit, report = int(sys.argv[1]), sys.argv[2]
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "imagepromoter", *sys.argv[3:]])
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as handle:
    handle.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_cli(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    address_space: int | None = None,
    env: Mapping[str, str] | None = None,
    measure: tuple[str, str] | None = None,
    timeout: float = 300,
) -> Run:
    """Run `python -m imagepromoter ARGS` as a process (RLIMIT_AS when given) and wait for it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "rusage"
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(address_space or 0), str(report)]
        try:
            done = subprocess.run(
                [*launcher, *args],
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                env=full_env,
                cwd=REPO_ROOT,
                timeout=timeout,  # a hang fails the test instead of blocking the run
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"imagepromoter {' '.join(args)} did not finish") from None
        rss, cpu_seconds = report.read_text().split()
    run = Run(
        returncode=done.returncode,
        stdout=done.stdout.decode("utf-8", "replace"),
        stderr=done.stderr.decode("utf-8", "replace"),
        peak_rss_kib=int(rss),
        cpu_seconds=float(cpu_seconds),
    )
    if measure is not None:
        MEASURED.setdefault(measure[0], []).append((measure[1], run.peak_rss_kib, run.cpu_seconds))
    return run


def record(kind: str, case: str, seconds: float) -> None:
    """Record an in-process measurement (no RSS of its own: 0)."""
    MEASURED.setdefault(kind, []).append((case, 0, seconds))


def forms(secret: str, username: str | None = None) -> set[str]:
    """The encodings a leak could take."""
    found = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode().rstrip("=")}
    if username is not None:
        found.add(base64.b64encode(f"{username}:{secret}".encode()).decode().rstrip("="))
    return found


def leaks(texts: Iterable[str], secrets: Iterable[tuple[str | None, str]]) -> list[str]:
    """Every (form or 8-character piece of a) secret that appears in one of `texts`."""
    joined = "\n".join(texts)
    found: list[str] = []
    for username, secret in secrets:
        for form in forms(secret, username):
            pieces = {form} if len(form) < 8 else {form[i : i + 8] for i in range(len(form) - 7)}
            found += [f"{piece!r} of {secret[:2]}..." for piece in pieces if piece in joined]
    return found


def files_text(root: Path) -> list[str]:
    """The text of every file under `root` except git object storage (packed or loose)."""
    texts: list[str] = []
    for path in root.rglob("*"):
        if path.is_file() and "objects" not in path.relative_to(root).parts:
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return texts


def promotion(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ImagePromotion",
        "metadata": {"name": name, "namespace": "gitops"},
        "spec": spec,
    }


def secret(name: str, **string_data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "gitops"},
        "stringData": string_data,
    }


VALUES = 'image:\n  repository: example/app\n  tag: "1.0.0"   # promoted\nreplicas: 1\n'


@dataclass
class Stage:
    """A repository, an image behind a fault proxy, and the files `promote` reads."""

    tmp: Path
    reg: registry.RegistryServer
    git: git_http.GitHttpServer
    proxy: registry.FaultProxy
    repo: str
    name: str
    values: str = VALUES
    extra_files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.git_url = self.git.create_repo(
            self.name, {"values.yaml": self.values, **self.extra_files}
        )
        self.bare = self.git.repo_path(self.name)
        self.image = f"{self.proxy.host}/{self.repo}"
        self.crs = self.tmp / "crs.yaml"
        self.secrets = self.tmp / "secrets.yaml"
        self.workdir = self.tmp / "work"
        self.write_secrets()

    def spec(self, **overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "image": self.image,
            "insecure": True,
            "imagePullSecret": "pull",
            "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)$",
            "git": {"url": self.git_url, "branch": "main", "secretRef": "push", "insecure": True},
            "targets": [{"path": "values.yaml", "key": "image.tag"}],
        }
        base.update(overrides)
        return base

    def write_crs(self, *docs: Mapping[str, Any]) -> None:
        self.crs.write_text(yaml.safe_dump_all(list(docs)), "utf-8")

    def write_secrets(
        self, git_password: str | None = None, registry_password: str | None = None
    ) -> None:
        docs = [
            secret(
                "pull", username=self.reg.username, password=registry_password or self.reg.password
            ),
            secret("push", username=self.git.username, password=git_password or self.git.password),
        ]
        self.secrets.write_text(yaml.safe_dump_all(docs), "utf-8")

    def promote(self, *extra: str, **options: Any) -> Run:
        """`imagepromoter [-v...] promote CRS --secrets SECRETS --workdir W [extra]`."""
        verbose = [a for a in extra if a in {"-v", "-vv"}]
        rest = [a for a in extra if a not in {"-v", "-vv"}]
        args = [*verbose, "promote", str(self.crs), "--secrets", str(self.secrets)]
        return run_cli([*args, "--workdir", str(self.workdir), *rest], **options)

    def git_show(self, what: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self.bare), "show", "-s", "--format=%B", what]
            if what == "main"
            else ["git", "--git-dir", str(self.bare), "show", what],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def commits(self) -> int:
        out = subprocess.run(
            ["git", "--git-dir", str(self.bare), "rev-list", "--count", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.strip())

    def file(self) -> str:
        return self.git_show("main:values.yaml")

    def hostile_tags(self, tags: Sequence[str], times: int = 20) -> None:
        """The next `times` tag-list answers through the proxy list exactly these tags."""
        body = json.dumps({"name": self.repo, "tags": list(tags)}).encode()
        self.proxy.add(
            "status",
            path=r"/tags/list",
            status=200,
            body=body,
            headers={"Content-Type": "application/json"},
            times=times,
        )


def statuses(run: Run) -> dict[str, dict[str, Any]]:
    """name -> status from `--output json`."""
    return {entry["name"]: entry["status"] for entry in json.loads(run.stdout)}


def ready(status: Mapping[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")
