"""Benchmark: N ImagePromotions over M images and G repositories, cycle by cycle, CLI and operator.

The numbers users compare (issue 11). On servers it starts itself (the real docker-registry behind
a counting pass-through proxy; git http-backend behind nginx, a post-receive hook logging each
push's arrival time and files; the kmock emulator in a process of its own), each size runs in two
modes: `imagepromoter promote` as one process per cycle over a file of N CRs, and `imagepromoter
run --standalone` as one long-lived process on the emulator. Cycles: initial (every CR
promotes), every image changed (a new tag on each image; the operator notices on its timer, and
`promote` runs one interval after the cycle before, as from a schedule),
`--repeat` of those in a row, every CR triggered (new tags and the `requested-at` annotation on
every CR; operator only: every `promote` run is a manual one), idle (nothing changed; the
operator for one interval). Each cycle reports wall time, busy time (the operator's cycle
without its wait for the timer: first registry request to last commit), promotion latency (new
tag to commit on the git server, median and p95), registry requests and pushes next to their
minimum, status PATCHes, events and Secret reads (operator), CPU time and peak RSS of the
imagepromoter process and the emulator's CPU beside the operator's. The floor, same run and
servers: the git CLI doing G fetch + commit + push and curl doing the minimum registry requests.
Bounded: each cycle has a timeout and the run a time budget; what was skipped is said in the
output.

`make bench` runs the default sizes 10/10/2 and 100/100/10 (about 10 minutes on the 2-core
machine); `--big` runs 10/10/2, 100/100/10, 300/100/10 and 1000/100/10 (about 20 minutes there).
Most of it is waiting: the operator's timer cycles and the CLI's cycles are an interval apart.

Profiling (opt-in): IMAGEPROMOTER_BENCH_WRAP names a command the CLI's `promote` process runs
under, split like a shell line, `{label}` replaced by size and cycle (e.g. `py-spy record -o
/tmp/{label}.svg --`). CPU and RSS then include the wrapper's; unset, nothing changes.

Run: .venv/bin/python bench/scale.py [--big] [--sizes N/M/G ...] [--modes cli,operator]
     [--cycles initial,changed,triggered,idle] [--repeat 5] [--interval 20s]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import results, scale_report, scale_setup
from bench.scale_operator import CLI, OperatorBench
from bench.scale_setup import Cycle, Setup, spawned
from tests.servers import git_http, registry

DEFAULT_SIZES = ("10/10/2", "100/100/10")
BIG_SIZES = ("10/10/2", "100/100/10", "300/100/10", "1000/100/10")
CYCLES = ("initial", "changed", "triggered", "idle")
TICK = 10.0  # the operator's timer tick (kube/handlers.py Options.tick), seconds


class CliBench:
    """`imagepromoter promote` over one Setup: one process per cycle, workspace kept."""

    def __init__(self, setup: Setup, timeout: float) -> None:
        self.setup, self.timeout = setup, timeout
        self.crs = setup.tmp / f"{setup.prefix}-crs.yaml"
        self.crs.write_text(yaml.safe_dump_all(setup.crs()), "utf-8")
        self.secrets = setup.tmp / f"{setup.prefix}-secrets.yaml"
        self.secrets.write_text(yaml.safe_dump(setup.secret()), "utf-8")
        self.stderr = setup.tmp / f"{setup.prefix}-cli.stderr"
        self.stdout = setup.tmp / f"{setup.prefix}-cli.json"

    def cycle(self, kind: str) -> Cycle:
        setup = self.setup
        if kind.startswith("changed"):
            setup.change_every_image()
        setup.begin_cycle()
        start = time.perf_counter()
        label = f"{setup.prefix}-{kind}".replace("/", "-").replace(" ", "")
        wrap = os.environ.get("IMAGEPROMOTER_BENCH_WRAP", "")
        command: list[str | Path] = [part.replace("{label}", label) for part in shlex.split(wrap)]
        command += [CLI, "promote", self.crs, "--secrets", self.secrets]
        command += ["--workdir", setup.workdir, "--output", "json"]
        with self.stderr.open("wb") as err, self.stdout.open("wb") as out:
            process = spawned(subprocess.Popen(command, stdout=out, stderr=err, process_group=0))
        note = ""
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - start > self.timeout:
                    os.killpg(process.pid, signal.SIGKILL)
                    _, status, usage = os.wait4(process.pid, 0)
                    note = f"timed out after {self.timeout:.0f} s"
                    break
                time.sleep(0.02)
        finally:
            if process.returncode is None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not note:
            setup.poll()
            promoted = f"{len(setup.arrived)}/{setup.n} promoted" if kind != "idle" else ""
            note = f"exit {code} {promoted}: {self.failures()}"
            if errors := self.stderr.read_text(errors="replace").strip():
                print(errors[-2000:], file=sys.stderr)
        setup.poll()
        changed = kind != "idle"
        return Cycle(
            size=setup.size, mode="cli", kind=kind, wall_s=wall,
            requests=setup.requests(), requests_min=setup.requests_min(),
            pushes=setup.pushes, pushes_min=setup.g if changed else 0,
            latencies=setup.latencies() if changed else [],
            cpu_s=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024,
            promoted=len(setup.arrived), note=note, busy_s=wall,
        )  # fmt: skip

    def failures(self) -> str:
        """How many CRs ended Ready=False, by reason, and one message (from `--output json`)."""
        try:
            entries = json.loads(self.stdout.read_text() or "[]")
        except ValueError:
            return "no JSON output"
        reasons: collections.Counter[str] = collections.Counter()
        message = ""
        for entry in entries:
            for condition in (entry.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "Ready" and condition.get("status") != "True":
                    reasons[condition.get("reason", "")] += 1
                    message = message or str(condition.get("message", ""))[:100]
        counted = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        return f"{counted or 'no Ready=False'} ({message})" if message else counted


def interval_seconds(text: str) -> float:
    """'20s', '1m', '1m30s' -> seconds."""
    total, number = 0.0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total


def show(c: Cycle) -> None:
    p50, p95 = c.latency(0.5), c.latency(0.95)
    latency = "" if p50 is None else f"  latency p50 {p50:.2f} p95 {p95:.2f} s"
    api = "" if c.status_patches is None else (
        f"  PATCHes {scale_report.patches(c)} events {c.events} Secret reads {c.secret_reads}"
        f"  API CPU {c.api_cpu_s:.2f} s")  # fmt: skip
    work = "" if c.mode == "floor" else f"  CPU {c.cpu_s:.2f} s  RSS {c.rss_mb:.0f} MB"
    print(
        f"  {c.mode:<8} {c.kind:<10} {c.wall_s:7.2f} s"
        f"{f' (busy {c.busy_s:.2f} s)' if c.busy_s is not None and c.mode == 'operator' else ''}"
        f"{latency}"
        f"  requests {scale_report.ratio(c.requests, c.requests_min)}"
        f"  pushes {scale_report.ratio(c.pushes, c.pushes_min)}{api}"
        f"{work} {c.note}",
        flush=True,
    )


class Run:
    """The sizes x modes x cycles of one bench run, within its time budget."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.cycles: list[Cycle] = []
        self.skipped: list[str] = []
        self.deadline = time.monotonic() + args.budget * 60
        self.kinds = [k.strip() for k in args.cycles.split(",") if k.strip()]
        # waves fall on the operator's tick grid, one interval (rounded up to it) apart: an idle
        # window of that long holds one wave
        self.window = math.ceil(interval_seconds(args.interval) / TICK) * TICK

    def plan(self) -> list[str]:
        kinds = []
        for kind in self.kinds:
            if kind == "changed":
                kinds += [f"changed {i}" for i in range(1, self.args.repeat + 1)]
            else:
                kinds.append(kind)
        return kinds

    def over_budget(self, what: str) -> bool:
        if time.monotonic() < self.deadline:
            return False
        self.skipped.append(what)
        return True

    def record(self, cycle: Cycle) -> bool:
        """Keep and print a cycle; False when the next cycle cannot start from where it ended."""
        self.cycles.append(cycle)
        show(cycle)
        # a CR failing leaves the others promoted (the next `promote` starts from there); a
        # timeout or an exited operator leaves a state no next cycle can be measured from
        return not cycle.note.startswith(("timed out", "operator exited"))

    def size(self, reg: registry.RegistryServer, proxy: registry.CountingProxy,
             git: git_http.GitHttpServer, size: str) -> None:  # fmt: skip
        for mode in self.args.modes.split(","):
            if self.over_budget(f"{size} {mode}"):
                continue
            started = time.perf_counter()
            setup = Setup(self.tmp, reg, proxy, git, size, mode, self.args.interval)
            print(f"{size} {mode}: seeded in {time.perf_counter() - started:.1f} s", flush=True)
            try:
                if mode == "cli":
                    self.cli(setup)
                else:
                    self.operator(setup)
            finally:
                shutil.rmtree(setup.workdir, ignore_errors=True)
            if mode == self.args.modes.split(",")[0] and not self.over_budget(f"{size} floor"):
                git_s = setup.git_floor()
                curl_s, curl_requests = setup.curl_floor()
                self.record(Cycle(
                    size=size, mode="floor", kind="git CLI + curl", wall_s=git_s + curl_s,
                    requests=curl_requests, requests_min=setup.requests_min(),
                    pushes=setup.g, pushes_min=setup.g,
                    note=f"git CLI {git_s:.2f} s + curl {curl_s:.2f} s",
                ))  # fmt: skip

    def cli(self, setup: Setup) -> None:
        """`promote` once per interval, as a CI schedule or cron job of the CRs' interval runs it.

        Each cycle starts one interval after the one before, so CLI and operator cycles are
        spaced alike. Run back to back, minutes of load on the 2-core VM moved the CLI's cycle
        times, CPU time too, more than anything in the work did (issue 11's note).
        """
        bench = CliBench(setup, self.args.cycle_timeout)
        spacing = interval_seconds(self.args.interval)
        started: float | None = None
        for kind in self.plan():
            if kind == "triggered":
                continue  # every `promote` run is a manual trigger: the changed cycle
            if self.over_budget(f"{setup.size} cli {kind}"):
                return
            if started is not None:
                time.sleep(max(0.0, started + spacing - time.monotonic()))
            started = time.monotonic()
            if kind == "initial":
                setup.seeded_at = dict.fromkeys(setup.seeded_at, time.time())
            if not self.record(bench.cycle(kind)):
                return

    def operator(self, setup: Setup) -> None:
        with OperatorBench(
            setup, self.args.cycle_timeout, verbose=bool(self.args.keep_logs)
        ) as bench:
            try:
                for kind in self.plan():
                    if self.over_budget(f"{setup.size} operator {kind}"):
                        return
                    if kind == "initial":
                        setup.seeded_at = dict.fromkeys(setup.seeded_at, time.time())
                        cycle = bench.initial()
                    elif kind == "triggered":
                        cycle = bench.triggered()
                    elif kind == "idle":
                        cycle = bench.idle(self.window)
                    else:
                        cycle = bench.changed(kind)
                    self.keep_requests(setup, kind)
                    if not self.record(cycle):
                        print(bench.tail(), file=sys.stderr)
                        return
            finally:
                if self.args.keep_logs:
                    self.args.keep_logs.mkdir(parents=True, exist_ok=True)
                    shutil.copy(bench.log, self.args.keep_logs / bench.log.name)

    def keep_requests(self, setup: Setup, kind: str) -> None:
        """`--keep-logs`: the cycle's registry requests, one per line (to see which repeated)."""
        if self.args.keep_logs:
            self.args.keep_logs.mkdir(parents=True, exist_ok=True)
            lines = "".join(f"{r.at:.3f} {r.method} {r.path}\n" for r in setup.proxy.seen())
            (self.args.keep_logs / f"{setup.prefix}-{kind}-requests.txt").write_text(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=None, help="N/M/G ...")
    parser.add_argument("--big", action="store_true", help=f"sizes {' '.join(BIG_SIZES)}")
    parser.add_argument("--modes", default="cli,operator")
    parser.add_argument("--cycles", default=",".join(CYCLES), help="of " + ",".join(CYCLES))
    parser.add_argument("--repeat", type=int, default=5, help="changed cycles in a row")
    parser.add_argument("--interval", default="20s", help="the CRs' spec.interval")
    parser.add_argument("--cycle-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--budget", type=float, default=30.0, help="minutes for the whole run")
    parser.add_argument("--png", type=Path, default=scale_report.PNG)
    parser.add_argument("--results", type=Path, default=results.RESULTS, help="RESULTS.md path")
    parser.add_argument("--pidfile", type=Path, default=None, help="write spawned groups here")
    parser.add_argument(
        "--keep-logs", type=Path, default=None,
        help="the operator's log (then verbose) and each cycle's registry requests go here",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = args.sizes or list(BIG_SIZES if args.big else DEFAULT_SIZES)
    results.RESULTS = args.results
    scale_setup.PIDFILE[:] = [args.pidfile] if args.pidfile else []
    # `timeout` sends SIGTERM: exit through the `finally`s that stop every process
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        measure(args, sizes)
    finally:
        signal.signal(signal.SIGTERM, previous)


def measure(args: argparse.Namespace, sizes: list[str]) -> None:
    """Every size and mode, then the report."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        tmp = Path(name)
        run = Run(args, tmp)
        reg = registry.start(tmp / "registry")
        proxy = registry.CountingProxy(reg.url)
        try:
            with git_http.serve(tmp / "git") as git:
                scale_setup.write_groups()
                for size in sizes:
                    run.size(reg, proxy, git, size)
        finally:
            proxy.stop()
            reg.stop()
    report(run, sizes, args, time.monotonic() - began)


def report(run: Run, sizes: list[str], args: argparse.Namespace, seconds: float) -> None:
    judged = scale_report.goals(run.cycles)
    print("\nissue 11 goals:", *(f"- {line}" for line in judged), sep="\n")
    png = scale_report.plot(run.cycles, judged, args.png)
    print(f"figure: {png}")
    skipped = [f"Skipped (time budget {args.budget:.0f} min): {', '.join(run.skipped)}."]
    results.record(
        "scale",
        "N ImagePromotions over M images and G repositories, CLI and operator (bench/scale.py)",
        [
            f"Sizes {', '.join(sizes)}; modes {args.modes}; the CRs' interval {args.interval}; "
            f"{args.repeat} changed cycles in a row; the whole run took {seconds / 60:.1f} min.",
            "`cli`: one `imagepromoter promote` process per cycle (no triggered cycle: every run",
            "is a manual one), each starting one interval after the cycle before, as from a",
            "schedule, and spaced as the operator's timer cycles are. `operator`:",
            "one `imagepromoter run --standalone` process on the kmock emulator (its own",
            "process: API CPU s), started next to the N CRs (initial).",
            "Its changed cycles wait for its timer (waves on a 10 s tick grid, one interval",
            "apart), so their wall time and latency include up to an interval; busy s leaves",
            "that wait out: from the cycle's first registry request to the last commit's arrival",
            "(the CLI's is its wall time); the changed cycles in a row are judged on it. Triggered",
            "cycles set `imagepromoter.dev/requested-at` on every CR with the new tags; the idle",
            "cycle is one interval (rounded up to the grid) from the next wave's first registry",
            "request, nothing changed; its requests are those of its first interval less 5 s",
            "(a wave that starts late after a busy cycle must not pull the next one in; a second",
            "wave within it would still count), and so are its Secret reads (from 1 s before).",
            "Trailing writes are",
            "charged to their cycle (up to 30 s of quiet). Latency: new tag to the push's arrival",
            "at the git server (post-receive",
            "hook, ns clock). Minimum requests: distinct images x (1 tag page + 1 digest);",
            "minimum pushes: G. CPU and RSS: the imagepromoter",
            "process (operator: CPU of the cycle, peak RSS sampled during it).",
            "floor: the git CLI doing G fetch + commit of every file + push, and one curl",
            "process making the minimum registry requests, same servers, same run.",
            "",
            *results.table(scale_report.HEADER, [scale_report.row(c) for c in run.cycles]),
            "",
            "Issue 11's goals, judged from this table (not asserted by any test):",
            "",
            *(f"- {line}" for line in judged),
            *(["", skipped[0]] if run.skipped else []),
            "",
            "Figure: [bench/scaling.png](scaling.png) (cycle time and peak RSS against N).",
        ],
    )


if __name__ == "__main__":
    main()
