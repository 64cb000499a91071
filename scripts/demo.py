"""`make demo`: the seed scenario end to end on local servers this script starts and stops.

1. A local OCI registry (Debian's docker-registry) with the app's tags, and a local smart-HTTP
   git server (git http-backend behind nginx, Basic auth) with a GitOps repository: the same
   server code the tests use (tests/servers/).
2. `imagepromoter promote` on examples/dev.yaml and examples/prod.yaml, pointed at those servers:
   dev takes the highest `-dev` tag, prod the highest `-stable` tag.
3. The resulting `git log -p`, then a new `1.3.0-dev` tag and a second run that promotes only dev.
4. Kustomize next to Helm: examples/staging.yaml promotes `-rc` tags into a kustomize overlay's
   `images:` entry (kustomizeImage) and into the `app` container of a plain manifest, picked by a
   list selector (a sidecar sits in front of it).
5. The results checked with the real renderers where they run here: the chart is linted and
   rendered with each environment's values by the Helm library (helm-python-sdk), and the overlay
   is built by kustomize (`kubectl kustomize`, kustomize built into kubectl). Without kubectl the
   overlay is checked at the YAML level instead (the images: entry applied to the base by hand),
   and the demo says so (IMAGEPROMOTER_DEMO_NO_KUBECTL=1 forces that path).

The git CLI is used here only to show the repository; imagepromoter itself never runs it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
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
FIRST_TAGS = [
    "1.0.0-dev",
    "1.1.0-dev",
    "1.2.0-dev",
    "1.0.0-stable",
    "1.1.0-stable",
    "1.1.0-rc",
    "1.2.0-rc",
    "latest",
]

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


TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app: myapp}
  template:
    metadata:
      labels: {app: myapp}
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
"""

BASE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: myapp
spec:
  selector:
    matchLabels: {app: myapp}
  template:
    metadata:
      labels: {app: myapp}
    spec:
      containers:
        - name: app
          image: ghcr.io/myorg/myapp:0.9.0
"""

OVERLAY = """\
# staging: the base, with the image pinned here (imagepromoter rewrites newTag)
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: myapp-staging
resources:
  - ../../base
  - migrate-job.yaml
images:
  - name: ghcr.io/myorg/myapp
    newTag: 0.9.0-rc   # promoted automatically
"""

MIGRATE_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: cloud-sql-proxy   # sidecar first: an index key (containers.0) would hit it
          image: gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0
        - name: app
          image: ghcr.io/myorg/myapp:0.9.0-rc
          args: [migrate]
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
    paths = ["--", "environments", "overlays"]
    out = git_http.git(["log", "-p", f"--format={fmt}", rev, *paths], cwd=repo)
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
                    "templates/deployment.yaml": TEMPLATE,
                    "base/deployment.yaml": BASE_DEPLOYMENT,
                    "base/kustomization.yaml": "resources:\n  - deployment.yaml\n",
                    "overlays/staging/kustomization.yaml": OVERLAY,
                    "overlays/staging/migrate-job.yaml": MIGRATE_JOB,
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
            for name in ("dev", "prod", "staging"):
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

            banner(
                "First run: dev takes the highest -dev tag, prod the highest -stable tag, "
                "staging (kustomize) the highest -rc tag"
            )
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
            banner("Rendered as Argo CD would: Helm for the environments, kustomize for staging")
            checked = check_renders(repo, base / "checkout")
            print(f"demo took {time.monotonic() - started:.1f}s; servers stopped")
            return 0 if first == 0 and second == 0 and checked else 1


def checkout(repo: Path, into: Path) -> Path:
    """The files of main, written out (for the renderers, which read directories)."""
    names = git_http.git(["ls-tree", "-r", "--name-only", "main"], cwd=repo).split()
    for name in names:
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(git_http.read_file(repo, "main", name))
    return into


def check_renders(repo: Path, into: Path) -> bool:
    """Render the promoted chart (Helm library) and overlay (kustomize); True when all agree."""
    tree = checkout(repo, into)
    ok = True
    import helm_python

    for env in ("dev", "prod"):
        values = yaml.safe_load((tree / f"environments/{env}/values.yaml").read_text("utf-8"))
        report = helm_python.lint(str(tree), values)
        errors = [m["error"] for m in report.get("messages", []) if m.get("severity") == 3]
        version = helm_python.helm_sdk_version()
        print(f"  helm lint (helm-python-sdk, Helm {version}), {env} values: {errors or 'ok'}")
        ok = ok and not errors
        with helm_python.Chart.load(str(tree)) as chart:
            rendered = chart.render(values=values, name=f"myapp-{env}", namespace=env)
        manifest = yaml.safe_load(rendered["myapp/templates/deployment.yaml"])
        image = manifest["spec"]["template"]["spec"]["containers"][0]["image"]
        expected = f"ghcr.io/myorg/myapp:{values['image']['tag']}"
        verdict = "ok" if image == expected else "MISMATCH"
        print(f"  helm template, {env} values: image {image}  {verdict}")
        ok = ok and image == expected
    overlay = tree / "overlays/staging"
    pinned = yaml.safe_load((overlay / "kustomization.yaml").read_text("utf-8"))["images"][0]
    expected = f"{pinned['name']}:{pinned['newTag']}"
    kubectl = None if os.environ.get("IMAGEPROMOTER_DEMO_NO_KUBECTL") else shutil.which("kubectl")
    if kubectl is not None:
        built = subprocess.run(
            [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
        )
        if built.returncode == 0:
            images = [
                c["image"]
                for doc in yaml.safe_load_all(built.stdout)
                for c in doc["spec"]["template"]["spec"]["containers"]
                if c["name"] == "app"
            ]
            good = images == [expected, expected]
            verdict = "ok" if good else "MISMATCH"
            print(f"  kubectl kustomize overlays/staging: app images {images}  {verdict}")
            return ok and good
        print(
            f"  kubectl kustomize failed ({built.stderr.strip()[:200]}); checking at the YAML level"
        )
    else:
        print("  no kustomize here (no kubectl): checking the overlay at the YAML level instead")
    base_image = yaml.safe_load((tree / "base/deployment.yaml").read_text("utf-8"))
    container = base_image["spec"]["template"]["spec"]["containers"][0]
    name = container["image"].rsplit(":", 1)[0]
    result = (
        f"{pinned.get('newName', name)}:{pinned['newTag']}"
        if name == pinned["name"]
        else container["image"]
    )
    job = yaml.safe_load((overlay / "migrate-job.yaml").read_text("utf-8"))
    job_image = next(
        c["image"] for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "app"
    )
    good = result == expected and job_image == expected
    verdict = "ok" if good else "MISMATCH"
    print(f"  YAML-level: base with the images: entry applied {result}, job {job_image}  {verdict}")
    return ok and good


if __name__ == "__main__":
    sys.exit(main())
