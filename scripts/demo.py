"""`make demo`: the seed scenario end to end on local servers this script starts and stops.

1. A local OCI registry (Debian's docker-registry) with the app's tags, and a local smart-HTTP
   git server (git http-backend behind nginx, Basic auth) with a GitOps repository: the same
   server code the tests use (tests/servers/).
2. `imagepromoter promote` on examples/dev.yaml and examples/prod.yaml, pointed at those servers:
   dev takes the highest `-dev` tag, prod the highest `-stable` tag.
3. The resulting `git log -p`, then a new `1.3.0-dev` tag and a second run that promotes only dev.

The git CLI is used here only to show the repository; imagepromoter itself never runs it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import git_http, registry  # noqa: E402

IMAGE_REPO = "myorg/myapp"
FIRST_TAGS = ["1.0.0-dev", "1.1.0-dev", "1.2.0-dev", "1.0.0-stable", "1.1.0-stable", "latest"]

CHART = """\
apiVersion: v2
name: myapp
description: The app that imagepromoter keeps up to date
version: 0.1.0
"""

VALUES = """\
# Values for the {env} environment.
# imagepromoter rewrites image.tag; everything else here is yours and stays byte for byte.

replicaCount: {replicas}

image:
  repository: ghcr.io/myorg/myapp
  tag: "0.9.0-{suffix}"   # promoted automatically, do not edit by hand
  pullPolicy: IfNotPresent

resources:
  limits: {{cpu: 500m, memory: 256Mi}}
"""


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def localize(example: Path, *, image: str, git_url: str) -> dict[str, Any]:
    """The example CR, pointed at the local registry and git server."""
    doc: dict[str, Any] = yaml.safe_load(example.read_text("utf-8"))
    doc["spec"]["image"] = image
    doc["spec"]["insecure"] = True  # the local registry speaks plain HTTP
    doc["spec"]["git"]["url"] = git_url
    doc["spec"]["git"]["insecure"] = True  # so does the local git server (with a Secret)
    return doc


def secrets_manifest(*, git_user: str, git_password: str, registry_host: str) -> str:
    auth = base64.b64encode(b"demo:demo").decode()
    dockerconfig = json.dumps({"auths": {registry_host: {"auth": auth}}})
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gitops-write", "namespace": "gitops"},
            "stringData": {"username": git_user, "password": git_password},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "ghcr-pull", "namespace": "gitops"},
            "stringData": {".dockerconfigjson": dockerconfig},
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def promote(files: list[Path], secrets: Path, workdir: Path) -> int:
    cmd = [
        str(Path(sys.executable).parent / "imagepromoter"),
        "promote",
        *map(str, files),
        "--secrets",
        str(secrets),
        "--workdir",
        str(workdir),
    ]
    print("$ imagepromoter promote " + " ".join(p.name for p in files) + " --secrets secrets.yaml")
    return subprocess.run(cmd, check=False).returncode


def show_log(repo: Path, since: str | None = None) -> None:
    rev = f"{since}..main" if since else "main"
    fmt = "%ncommit %h  Author: %an <%ae>%n%n    %s%n%n%b"
    out = git_http.git(["log", "-p", f"--format={fmt}", rev, "--", "environments"], cwd=repo)
    print(out)


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="imagepromoter-demo-") as tmp:
        base = Path(tmp)
        banner("Starting a local OCI registry and a local smart-HTTP git server on 127.0.0.1")
        with registry.serve(base / "registry") as reg, git_http.serve(base / "git") as git:
            for tag in FIRST_TAGS:
                reg.push_image(IMAGE_REPO, tags=[tag])
            print(f"registry  {reg.host}/{IMAGE_REPO}: {', '.join(FIRST_TAGS)}")
            git_url = git.create_repo(
                "gitops",
                {
                    "Chart.yaml": CHART,
                    "environments/dev/values.yaml": VALUES.format(
                        env="dev", replicas=1, suffix="dev"
                    ),
                    "environments/prod/values.yaml": VALUES.format(
                        env="prod", replicas=3, suffix="stable"
                    ),
                },
            )
            print(f"git       {git_url} (Basic auth as {git.username})")

            image = f"{reg.host}/{IMAGE_REPO}"
            crs = []
            for name in ("dev", "prod"):
                path = base / f"{name}.yaml"
                doc = localize(ROOT / "examples" / f"{name}.yaml", image=image, git_url=git_url)
                path.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
                crs.append(path)
            secrets = base / "secrets.yaml"
            secrets.write_text(
                secrets_manifest(
                    git_user=git.username, git_password=git.password, registry_host=reg.host
                ),
                "utf-8",
            )
            workdir = base / "workspaces"
            repo = git.repo_path("gitops")
            seed = git_http.head(repo, "main")

            banner("First run: dev takes the highest -dev tag, prod the highest -stable tag")
            first = promote(crs, secrets, workdir)
            banner("git log -p (what Argo CD will deploy)")
            show_log(repo, since=seed)
            after_first = git_http.head(repo, "main")

            banner("CI pushes 1.3.0-dev; the next run promotes dev only")
            reg.push_image(IMAGE_REPO, tags=["1.3.0-dev"])
            second = promote(crs, secrets, workdir)
            show_log(repo, since=after_first)

            banner("Summary")
            print(f"commits by imagepromoter: {len(git_http.log(repo, 'main')) - 1}")
            for env in ("dev", "prod"):
                text = git_http.read_file(repo, "main", f"environments/{env}/values.yaml")
                tag_line = next(ln for ln in text.decode().splitlines() if "tag:" in ln)
                print(f"  environments/{env}/values.yaml  {tag_line.strip()}")
            print(f"exit codes: first run {first}, second run {second}")
            print(f"demo took {time.monotonic() - started:.1f}s; servers stopped")
            return 0 if first == 0 and second == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
