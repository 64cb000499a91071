"""Benchmark: listing 10,000 tags with RegistryClient vs `skopeo list-tags` vs bare curl GETs.

Starts its own `docker-registry` (no auth) with 10,000 tags seeded through the storage tree, and
lists them, in the same run, three ways:
- ours: `RegistryClient.list_tags`, in-process (the operator's case: warm interpreter) and as a
  whole `python -c` process (the CLI's case);
- skopeo: `skopeo list-tags --tls-verify=false docker://...` (Debian's skopeo);
- curl: one `curl` process GETting exactly the pages our client fetched, over one connection:
  the physical limit for those bytes.
Two shapes: `direct` (distribution 2.8 answers all 10,000 tags in one page) and `ghcr-pages`
(our paginating proxy in front, 100 tags per page and `n` capped at 100 as on ghcr.io: 100 pages
for everyone). Requests are counted at a counting proxy (or the paginating one); wall times are
medians of `--rounds`; peak memory is max RSS of each process (and tracemalloc's peak for the
in-process listing).

Goals (issue 3): no more requests than pages; in-process listing within 1.5x of the bare GETs.

Run: .venv/bin/python bench/registry_scan.py [--rounds N] [--tags N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench import results  # noqa: E402
from imagepromoter import reference  # noqa: E402
from imagepromoter.registry import client  # noqa: E402
from tests.servers import git_http, registry  # noqa: E402

REPO = "bench/app"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
CURL = shutil.which("curl") or "/usr/bin/curl"
TIME = "/usr/bin/time"

OURS_PROCESS = """
import asyncio, sys
from imagepromoter import reference
from imagepromoter.registry import client
async def main():
    c = client.RegistryClient()
    try:
        access = reference.RegistryAccess(reference.parse(sys.argv[1]), insecure=True)
        print(len(await c.list_tags(access)))
    finally:
        await c.aclose()
asyncio.run(main())
"""


@dataclass
class Figure:
    name: str
    requests: int
    seconds: float
    peak_mib: float
    note: str = ""


def run_measured(argv: list[str]) -> tuple[float, float, bytes]:
    """Wall seconds, max RSS (MiB) and stdout of one process.

    Max RSS comes from GNU time: a child forked from this Python process would inherit its
    high-water mark, so wait4's figure would be ours, not the child's.
    """
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'operator'}:{ROOT}"}
    with tempfile.NamedTemporaryFile() as rss:
        start = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M", "-o", rss.name, *argv], capture_output=True, env=env
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')[:500]}")
        return seconds, int(Path(rss.name).read_text().split()[-1]) / 1024, done.stdout


async def ours_in_process(
    host: str, rate: float, *, trace: bool = False
) -> tuple[float, float, float, int, int]:
    """One new client listing twice: cold and warm seconds, tracemalloc peak MiB, tags, requests.

    Cold includes the client's first connection; warm reuses it, which is the operator's steady
    state (one shared client, scans every interval). tracemalloc slows Python several times, so
    the timed rounds run without it (`trace=False`, peak 0) and one extra round measures memory.
    """
    requests: list[int | None] = []
    scanner = client.RegistryClient(
        on_request=lambda h, s: requests.append(s), requests_per_second=rate
    )
    access = reference.RegistryAccess(reference.parse(f"{host}/{REPO}"), insecure=True)
    if trace:
        tracemalloc.start()
    try:
        start = time.perf_counter()
        tags = await scanner.list_tags(access)
        cold = time.perf_counter() - start
        count = len(requests)
        start = time.perf_counter()
        await scanner.list_tags(access)
        warm = time.perf_counter() - start
    finally:
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
        await scanner.aclose()
    return cold, warm, peak / 2**20, len(tags), count


def median(values: list[float]) -> float:
    return statistics.median(values)


DEFAULT_LABEL = (
    f"default {client.limits.DEFAULT_RATE:g} req/s, burst {client.limits.DEFAULT_BURST:g}"
)


def bench_shape(
    name: str, reg: registry.RegistryServer, proxy: registry.PaginatingProxy | None, rounds: int
) -> list[Figure]:
    counter = proxy or registry.CountingProxy(reg.url)
    host = (proxy or reg).host
    figures: list[Figure] = []
    try:
        # ours, in-process (timed without the proxy for `direct`), default limits and unlimited
        tags = 0
        for label, rate in ((DEFAULT_LABEL, client.limits.DEFAULT_RATE), ("no rate", 1e9)):
            colds, warms, peaks = [], [], []
            for _ in range(rounds):
                cold, warm, _, tags, _ = asyncio.run(ours_in_process(host, rate))
                colds.append(cold)
                warms.append(warm)
            peaks.append(asyncio.run(ours_in_process(host, rate, trace=True))[2])
            for kind, values in (("cold", colds), ("warm", warms)):
                figures.append(
                    Figure(
                        f"{name}: ours {kind}, {label}",
                        0,
                        median(values),
                        max(peaks),
                        f"{tags} tags; tracemalloc peak",
                    )
                )
        counter.clear()
        asyncio.run(ours_in_process(counter.host, 1e9))
        pages = [r.path for r in counter.seen("/tags/list")]
        pages = pages[: len(pages) // 2]  # it listed twice
        for figure in figures:
            figure.requests = len(pages)
        # ours, whole process
        requests = len(pages)
        argv = [sys.executable, "-c", OURS_PROCESS, f"{host}/{REPO}"]
        runs = [run_measured(argv) for _ in range(rounds)]
        assert int(runs[0][2]) == tags, runs[0][2]
        figures.append(
            Figure(
                f"{name}: ours, python process",
                requests,
                median([r[0] for r in runs]),
                max(r[1] for r in runs),
                "max RSS, includes interpreter start and imports",
            )
        )
        # skopeo
        argv = [SKOPEO, "list-tags", "--tls-verify=false", f"docker://{host}/{REPO}"]
        runs = [run_measured(argv) for _ in range(rounds)]
        counter.clear()
        run_measured([SKOPEO, "list-tags", "--tls-verify=false", f"docker://{counter.host}/{REPO}"])
        skopeo_requests = len(counter.seen())
        figures.append(
            Figure(
                f"{name}: skopeo list-tags",
                skopeo_requests,
                median([r[0] for r in runs]),
                max(r[1] for r in runs),
                "max RSS",
            )
        )
        # curl: the same pages, one process, one connection
        base = f"http://{host}"
        urls = [base + path for path in pages]
        argv = [CURL, "-sf", *[part for url in urls for part in ("-o", "/dev/null", url)]]
        runs = [run_measured(argv) for _ in range(rounds)]
        figures.append(
            Figure(
                f"{name}: curl, same pages",
                len(urls),
                median([r[0] for r in runs]),
                max(r[1] for r in runs),
                "max RSS; the physical limit",
            )
        )
    finally:
        if proxy is None:
            counter.stop()
    return figures


PROMOTE_CR = """\
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {{name: bench, namespace: default}}
spec:
  image: {image}
  insecure: true
  tagRegex: '^(?P<version>.+)$'
  git: {{url: '{git_url}', insecure: true, branch: main, secretRef: push}}
  targets: [{{path: values.yaml, key: image.tag}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: push, namespace: default}}
stringData: {{username: '{user}', password: '{password}'}}
"""


def bench_promote_dry_run(reg: registry.RegistryServer, tmp: Path, rounds: int) -> list[Figure]:
    """The whole CLI, `imagepromoter promote --dry-run`, next to `skopeo list-tags` alone."""
    figures = []
    with git_http.serve(tmp / "git") as git:
        url = git.create_repo("bench", {"values.yaml": "image:\n  tag: 0.0.0\n"})
        cr = tmp / "cr.yaml"
        cr.write_text(
            PROMOTE_CR.format(
                image=f"{reg.host}/{REPO}", git_url=url, user=git.username, password=git.password
            ),
            "utf-8",
        )
        promote = [
            sys.executable,
            "-m",
            "imagepromoter",
            "promote",
            str(cr),
            "--dry-run",
            "--workdir",
            str(tmp / "work"),
        ]
        skopeo = [SKOPEO, "list-tags", "--tls-verify=false", f"docker://{reg.host}/{REPO}"]
        for name, argv in (("imagepromoter promote --dry-run", promote), ("skopeo", skopeo)):
            runs = [run_measured(argv) for _ in range(rounds)]
            figures.append(
                Figure(
                    name=f"process: {name}",
                    requests=0,
                    seconds=median([r[0] for r in runs]),
                    peak_mib=max(r[1] for r in runs),
                    note="whole process, warm git workspace after round 1",
                )
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tags", type=int, default=10_000)
    args = parser.parse_args()
    for binary in (SKOPEO, CURL, TIME):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is not installed")
    with (
        tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp,
        registry.serve(Path(tmp)) as reg,
    ):
        start = time.perf_counter()
        pushed = reg.push_image(REPO, tags=["0.0.0"], created="2026-01-01T00:00:00Z")
        reg.seed_tags(
            REPO, [f"1.{i // 1000}.{i % 1000}" for i in range(args.tags - 1)], pushed.digest
        )
        print(f"seeded {args.tags} tags in {time.perf_counter() - start:.1f} s\n")
        figures = bench_shape("direct", reg, None, args.rounds)
        pages = registry.PaginatingProxy(reg.url, page_size=100, max_n=100, cache_upstream=True)
        try:
            figures += bench_shape("ghcr-pages", reg, pages, args.rounds)
        finally:
            pages.stop()
        processes = bench_promote_dry_run(reg, Path(tmp), args.rounds)
        figures += processes
    print(f"{'case':44} {'requests':>8} {'wall ms':>9} {'peak MiB':>9}  note")
    for f in figures:
        print(f"{f.name:44} {f.requests:>8} {f.seconds * 1000:>9.1f} {f.peak_mib:>9.1f}  {f.note}")
    print()
    ratios = []
    for shape in ("direct", "ghcr-pages"):
        by = {f.name.split(": ")[1]: f for f in figures if f.name.startswith(shape)}
        curl = by["curl, same pages"].seconds
        ratios.append(
            f"{shape}: ours/curl cold {by[f'ours cold, {DEFAULT_LABEL}'].seconds / curl:.2f}, "
            f"warm {by[f'ours warm, {DEFAULT_LABEL}'].seconds / curl:.2f}, "
            f"warm without rate limit {by['ours warm, no rate'].seconds / curl:.2f} (goal <= 1.5); "
            f"ours process / skopeo "
            f"{by['ours, python process'].seconds / by['skopeo list-tags'].seconds:.2f}; "
            f"requests ours {by['ours, python process'].requests} vs pages "
            f"{by['curl, same pages'].requests}"
        )
        print(ratios[-1])
    ours, skopeo = processes
    whole = ours.seconds / skopeo.seconds
    print(
        f"\nwhole `imagepromoter promote --dry-run` (scan, select, fetch, plan, diff) / "
        f"`skopeo list-tags` (list only): {whole:.2f} (goal < 1.0)"
    )
    rows = [
        (f.name, f.requests or "", f"{f.seconds * 1000:.1f}", f"{f.peak_mib:.1f}", f.note)
        for f in figures
    ]
    results.record(
        "registry_scan",
        f"Listing {args.tags:,} tags (bench/registry_scan.py)",
        [
            f"Medians of {args.rounds} rounds.",
            "",
            *results.table(("case", "requests", "wall ms", "peak MiB", "note"), rows),
            "",
            *(f"- {line}" for line in ratios),
            f"- whole `imagepromoter promote --dry-run` / `skopeo list-tags`: {whole:.2f}",
        ],
    )


if __name__ == "__main__":
    main()
