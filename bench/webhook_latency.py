"""Benchmark: registry push -> commit on the git server, through the webhook receiver.

The whole path on loopback, as tests/test_webhook_e2e.py runs it: docker-registry (htpasswd)
with notifications.endpoints pointing at the operator's webhook port, the operator (Kopf on the
kmock emulator, the real RegistryClient and GitWriter), and the git smart-HTTP server. Each round
pushes a new tag (1.0.N-dev) and times from the registry accepting the manifest (the push call
returning) until the commit promoting that tag is on the server (polled every 5 ms). The CR's
interval is 1h, so only the webhook can make the commit in time.

Baseline in the same run: a bare `git fetch` + edit + `git commit` + `git push` of the same file
in a kept clone (the least any promoter must do). Goal (issue 12): median under 1 s on loopback.

Run: .venv/bin/python bench/webhook_latency.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kmock
import kopf
import prometheus_client
import yaml

from bench import results
from imagepromoter import scans
from imagepromoter.git import writer
from imagepromoter.kube import handlers, metrics
from imagepromoter.registry import client
from tests.kmock_emulator import Emulator
from tests.servers import free_port, git_http
from tests.servers import registry as registry_server

ROOT = Path(__file__).resolve().parent.parent
NS = "gitops"
TOKEN = "bench-token"
PATH = "environments/dev/values.yaml"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def bare_git(url: str, user: str, password: str, work: Path, rounds: int) -> list[float]:
    """fetch + edit + commit + push in a kept clone, `rounds` times; milliseconds each."""
    auth = ["-c", f"http.extraHeader=Authorization: Basic {b64(f'{user}:{password}')}"]
    clone = work / "clone"

    def git(*args: str, cwd: Path = clone) -> None:
        subprocess.run(["git", *auth, *args], cwd=cwd, check=True, capture_output=True,
                       env=git_http._env())  # fmt: skip

    git("clone", "--quiet", "--depth", "1", url, str(clone), cwd=work)
    times = []
    for n in range(rounds):
        start = time.perf_counter()
        git("fetch", "--quiet", "--depth", "1", "origin", "main")
        git("reset", "--quiet", "--hard", "FETCH_HEAD")
        (clone / "BARE.md").write_text(f"{n}\n")
        git("add", "BARE.md")
        git("commit", "--quiet", "-m", f"bare {n}")
        git("push", "--quiet", "origin", "HEAD:refs/heads/main")
        times.append((time.perf_counter() - start) * 1000)
    return times


async def run(rounds: int, tmp: Path) -> None:
    port = free_port()
    crd = yaml.safe_load((ROOT / "crds" / "imagepromotion.yaml").read_text())
    iwh_crd = yaml.safe_load((ROOT / "crds" / "imagewebhook.yaml").read_text())
    endpoints = [(f"http://127.0.0.1:{port}/hook/distribution", TOKEN)]
    with (
        git_http.serve(tmp / "git") as git_server,
        registry_server.RegistryServer(tmp / "registry", auth="htpasswd", notify=endpoints) as reg,
    ):
        values = 'imageTag: "1.0.0-dev"\n'
        url = git_server.create_repo("myorg/gitops", {PATH: values})
        repo = git_server.repo_path("myorg/gitops")
        await asyncio.to_thread(reg.push_image, "myorg/myapp", tags=["1.0.0-dev"])
        async with Emulator() as api, kmock.Server(api):
            api.resources.load_bundled()
            api.register_crd(crd)
            api.register_crd(iwh_crd)
            stop, ready = threading.Event(), threading.Event()
            adapters = handlers.Adapters(
                registry_factory=lambda: scans.SharedScans(client.RegistryClient()),
                git=writer.GitWriter(tmp / "work"),
            )
            options = handlers.Options(webhook_port=port, webhook_host="127.0.0.1",
                                       base_backoff=timedelta(seconds=1))  # fmt: skip
            server = str(api.servers[0].url).rstrip("/")
            thread = threading.Thread(
                target=lambda: asyncio.run(handlers.operate(
                    adapters, options=options, connection=kopf.ConnectionInfo(server=server),
                    metrics_=metrics.Metrics(prometheus_client.CollectorRegistry()),
                    stop_flag=stop, ready_flag=ready,
                )),
                daemon=True,
            )  # fmt: skip
            thread.start()
            await asyncio.to_thread(ready.wait, 30)
            auths = {reg.host: {"username": reg.username, "password": reg.password}}
            docs: list[tuple[str, dict[str, Any]]] = [
                ("/api/v1", {"kind": "Secret", "metadata": {"name": "git"}, "data": {
                    "username": b64(git_server.username), "password": b64(git_server.password)}}),
                ("/api/v1", {"kind": "Secret", "metadata": {"name": "pull"}, "data": {
                    ".dockerconfigjson": b64(json.dumps({"auths": auths}))}}),
                ("/api/v1", {"kind": "Secret", "metadata": {"name": "registry"},
                             "data": {"token": b64(TOKEN)}}),
                ("/apis/imagepromoter.dev/v1alpha1", {"kind": "ImageWebhook",
                 "metadata": {"name": "registry"},
                 "spec": {"type": "distribution", "secretRef": "registry"}}),
                ("/apis/imagepromoter.dev/v1alpha1", {"kind": "ImagePromotion",
                 "metadata": {"name": "myapp-dev"}, "spec": {
                    "image": f"{reg.host}/myorg/myapp", "imagePullSecret": "pull",
                    "insecure": True, "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
                    "interval": "1h",
                    "git": {"url": url, "insecure": True, "branch": "main", "secretRef": "git"},
                    "targets": [{"path": PATH, "regex": 'imageTag: "(?P<value>.*)"'}]}}),
            ]  # fmt: skip
            for prefix, doc in docs:
                doc["metadata"]["namespace"] = NS
                plural = {"Secret": "secrets", "ImageWebhook": "imagewebhooks",
                          "ImagePromotion": "imagepromotions"}[doc["kind"]]  # fmt: skip
                resp = await api.post(f"{prefix}/namespaces/{NS}/{plural}", json=doc)
                assert resp.status in (200, 201), await resp.text()
            await asyncio.sleep(1.0)  # the first pass (UpToDate) settles; not part of a round
            latencies = []
            for n in range(1, rounds + 1):
                tag = f"1.0.{n}-dev"
                await asyncio.to_thread(reg.push_image, "myorg/myapp", tags=[tag])
                start = time.perf_counter()
                while tag not in git_http.read_file(repo, "main", PATH).decode():
                    if time.perf_counter() - start > 30:
                        raise SystemExit(f"{tag} was not promoted within 30 s")
                    await asyncio.sleep(0.005)
                latencies.append((time.perf_counter() - start) * 1000)
            stop.set()
            await asyncio.to_thread(thread.join, 30)
        bare = bare_git(url, git_server.username, git_server.password, tmp, rounds)
    print(f"\n{'case':<44}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}   (rounds={rounds})")
    rows = []
    for name, values in (("registry push -> commit on the git server", latencies),
                         ("bare git fetch+commit+push (same server)", bare)):  # fmt: skip
        print(f"{name:<44}{statistics.median(values):>10.1f}{percentile(values, 0.95):>9.1f}"
              f"{max(values):>9.1f}")  # fmt: skip
        rows.append((name, f"{statistics.median(values):.1f}", f"{percentile(values, 0.95):.1f}",
                     f"{max(values):.1f}"))  # fmt: skip
    results.record(
        "webhook_latency",
        "Registry push to commit through the webhook receiver (bench/webhook_latency.py)",
        [
            f"{rounds} pushes on loopback; goal: median under 1 s.",
            "",
            *results.table(("case", "median ms", "p95 ms", "max ms"), rows),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        asyncio.run(run(args.rounds, Path(tmp)))


if __name__ == "__main__":
    main()
