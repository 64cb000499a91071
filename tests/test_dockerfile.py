"""The Dockerfile, linted: no container engine runs on these machines, so the image is never built
here. What can be checked without building is checked: it is multi-stage on a slim base pinned by
digest, copies only files that exist and .dockerignore lets through, installs the runtime lock
only, runs as a numeric non-root user, ships the ssh client, and agrees with the Deployment (user,
ports, workdir) and with the CLI (entrypoint). And the build stage's RUN lines are run for real,
in a clean venv standing in for the base image: the wheel installs from the lock and
`imagepromoter --version` runs from the installed tree.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from imagepromoter import cli

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    stage: int
    command: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; stage counts FROMs."""
    joined = re.sub(r"\\\n", " ", text)
    stage = -1
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        command, _, args = line.partition(" ")
        command = command.upper()
        if command == "FROM":
            stage += 1
        found.append(Instruction(stage, command, args.strip()))
    return found


INSTRUCTIONS = parse(DOCKERFILE.read_text())
LAST = max(i.stage for i in INSTRUCTIONS)
FINAL = [i for i in INSTRUCTIONS if i.stage == LAST]
ARGS = {
    i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
    for i in INSTRUCTIONS
    if i.command == "ARG" and "=" in i.args
}
DEPLOYMENT = yaml.safe_load((ROOT / "manifests" / "deployment.yaml").read_text())
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]


def expand(text: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: ARGS.get(m.group(1), m.group(0)), text)


def env(stage_instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for i in stage_instructions:
        if i.command == "ENV":
            for pair in shlex.split(i.args):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def test_multi_stage_on_slim_python() -> None:
    froms = [expand(i.args) for i in INSTRUCTIONS if i.command == "FROM"]
    assert len(froms) >= 2
    for base in froms:
        image = base.split()[0]
        assert image.startswith("python:") and "slim" in image, image
    assert " AS " in froms[0].upper()


COPIES = [i for i in INSTRUCTIONS if i.command == "COPY" and "--from" not in i.args]


@pytest.mark.parametrize("copy", COPIES, ids=[c.args for c in COPIES])
def test_copies_files_that_exist(copy: Instruction) -> None:
    *sources, _dest = shlex.split(copy.args)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_pyproject_readme_is_copied_with_it() -> None:
    """pip install . reads the readme named in pyproject, so the build needs it."""
    copied = {s for c in COPIES for s in shlex.split(c.args)[:-1]}
    assert {"pyproject.toml", "README.md", "operator/"} <= copied


def test_base_image_is_pinned_by_digest() -> None:
    for base in (expand(i.args).split()[0] for i in INSTRUCTIONS if i.command == "FROM"):
        assert re.fullmatch(r"python:[\w.-]+@sha256:[0-9a-f]{64}", base), base


def test_installs_the_runtime_lock_only() -> None:
    runs = " ".join(i.args for i in INSTRUCTIONS if i.command == "RUN")
    assert "--require-hashes --no-deps -r requirements.lock" in runs
    assert "--require-hashes --no-deps -r requirements-build.lock" in runs
    assert "--no-build-isolation" in runs, "the wheel is built by the locked backend"
    assert "[test]" not in runs and "requirements-test" not in runs
    assert not any("pip install" in i.args for i in FINAL if i.command == "RUN"), (
        "the final stage copies the built venv; it installs nothing with pip"
    )


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching rule wins)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        parts = path.split("/")
        # a rule matches the path or a folder above it; `**/x` matches x at any depth
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if pattern.startswith("**/"):
            pattern = pattern[3:]
            n = len(parts)
            candidates = ["/".join(parts[i : j + 1]) for j in range(n) for i in range(j + 1)]
        if any(fnmatch.fnmatch(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_lets_through_what_is_copied_and_nothing_else() -> None:
    copied = {s.rstrip("/") for c in COPIES for s in shlex.split(c.args)[:-1]}
    for source in copied:
        assert not dockerignored(source), source
    for kept_out in (".venv", ".git", "tests/conftest.py", "bench", "operator/x/__pycache__"):
        assert dockerignored(kept_out), kept_out


def test_final_stage_has_ssh_client_and_clean_apt() -> None:
    runs = " ".join(i.args for i in FINAL if i.command == "RUN")
    assert "openssh-client" in runs
    assert "--no-install-recommends" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_runs_as_numeric_non_root_user_matching_the_deployment() -> None:
    users = [i.args for i in FINAL if i.command == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can verify it"
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert POD["securityContext"]["runAsUser"] == int(uid)
    if gid:
        assert POD["securityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_is_imagepromoter_run_and_accepts_the_deployment_args() -> None:
    entry = [i.args for i in FINAL if i.command == "ENTRYPOINT"]
    assert entry, "the final stage must set ENTRYPOINT"
    argv = json.loads(entry[-1])  # exec form: signals reach the operator
    assert argv == ["imagepromoter", "run"]
    parsed = cli.build_parser().parse_args([*argv[1:], *CONTAINER.get("args", [])])
    assert parsed.command == "run"
    assert parsed.peering == "imagepromoter"


def test_ports_and_workdir_agree_with_the_deployment() -> None:
    exposed = {int(p) for i in FINAL if i.command == "EXPOSE" for p in i.args.split()}
    container_ports = {p["containerPort"] for p in CONTAINER["ports"]}
    assert exposed == container_ports
    image_env = env(FINAL)
    pod_env = {e["name"]: e["value"] for e in CONTAINER.get("env", [])}
    workdir = image_env["IMAGEPROMOTER_WORKDIR"]
    assert pod_env.get("IMAGEPROMOTER_WORKDIR", workdir) == workdir
    mounts = {m["mountPath"] for m in CONTAINER["volumeMounts"]}
    assert workdir in mounts, "git workspaces need a writable volume on a read-only root"
    assert image_env["HOME"] in mounts, "HOME (ssh, git config) must be writable too"


BUILD = [i for i in INSTRUCTIONS if i.stage == 0]


@pytest.mark.slow
def test_the_build_stage_installs_the_wheel_and_it_runs(tmp_path: Path) -> None:
    """The build stage's COPY and RUN lines, run as written, with a clean venv as the base image's
    Python and VENV moved into tmp_path; then the entrypoint's program from the installed tree."""
    base = tmp_path / "base"
    venv.EnvBuilder(with_pip=True).create(base)
    src = tmp_path / "src"
    src.mkdir()
    for copy in (c for c in BUILD if c.command == "COPY"):
        *sources, dest = shlex.split(copy.args)
        for source in sources:
            if (ROOT / source).is_dir():  # `COPY dir/ dest/`: the folder's contents into dest
                skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
                shutil.copytree(ROOT / source, src / dest, ignore=skip)
            else:  # `COPY a b ./`: each file into the folder
                shutil.copy2(ROOT / source, src / dest / Path(source).name)
    environment = {**os.environ, **env(BUILD), "PATH": f"{base / 'bin'}:{os.environ['PATH']}"}
    installed = tmp_path / "opt" / "imagepromoter"
    environment["VENV"] = str(installed)
    environment.pop("VIRTUAL_ENV", None)
    for run in (r for r in BUILD if r.command == "RUN"):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", run.args], cwd=src,
                              env=environment, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = subprocess.run([installed / "bin" / "imagepromoter", "--version"], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.stdout.strip() == f"imagepromoter {version}"
    # every module imports from the installed tree: the runtime lock holds all they need
    every_module = (
        "import importlib, pkgutil, imagepromoter; "
        "[importlib.import_module(m.name) for m in "
        "pkgutil.walk_packages(imagepromoter.__path__, 'imagepromoter.') "
        "if not m.name.endswith('__main__')]"
    )
    python = installed / "bin" / "python"
    imported = subprocess.run([python, "-c", every_module], cwd=tmp_path, capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert imported.returncode == 0, imported.stderr[-3000:]
    distributions = {
        p.name.split("-")[0].lower().replace("_", "-")
        for p in installed.glob("lib/python*/site-packages/*.dist-info")
    }
    locked = {
        line.split("==")[0].lower().replace("_", "-").replace(".", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    assert {d.replace(".", "-") for d in distributions} == locked | {"imagepromoter"}, (
        "exactly the runtime lock and the package: no pip, no setuptools, no test tools"
    )


def test_the_scale_bench_runs_the_operator_with_the_image_s_allocator_settings() -> None:
    from bench.scale_operator import image_allocator_env

    wanted = {k: v for k, v in env(FINAL).items() if k.startswith("MALLOC_")}
    assert wanted == {"MALLOC_ARENA_MAX": "2"}
    assert image_allocator_env() == wanted
