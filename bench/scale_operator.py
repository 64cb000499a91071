"""bench/scale.py's operator mode: `imagepromoter run --standalone` on the emulator, cycle by cycle.

The emulator (bench/scale_emulator.py) and the operator are two processes this module starts in
process groups of their own (recorded in tests.servers.SPAWNED_GROUPS, so the harness's checks
see them) and always stops. The operator reaches the emulator through a kubeconfig, as it would
reach a cluster, with the allocator settings the image's ENV gives it (MALLOC_ARENA_MAX); its
liveness probe is on a free port, metrics and webhooks are off. The CRs and
the push Secret exist before it starts, so the initial cycle is "the operator starts next to N
CRs". CPU time of each process comes from /proc/<pid>/stat (all threads), RSS from sampling
/proc/<pid>/status while the cycle runs: peak per cycle, so growth across cycles shows. A cycle
ends when every CR's commit is on the git server and every CR's status says so (or after a
timeout); its registry requests are counted until then, its PATCHes and events after a quiet
period (up to 30 s), so writes that trail the last commit are charged to the cycle that caused
them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import yaml

from bench.scale_setup import Cycle, Setup, spawned
from tests.servers import free_port

HERE = Path(__file__).resolve().parent
CLI = Path(sys.executable).with_name("imagepromoter")
REQUESTED_AT = "imagepromoter.dev/requested-at"
TICKS = os.sysconf("SC_CLK_TCK")
POLL = 0.2
LATE_START = 5.0  # seconds a wave's first request may lag its due instant (half the 10 s tick)
SECRET_LEAD = 1.0  # seconds a wave's Secret read may come before its first registry request
QUIET, QUIET_MAX = 2.0, 30.0  # trailing writes (Kopf's annotations) are charged to their cycle


def image_allocator_env(dockerfile: Path = HERE.parent / "Dockerfile") -> dict[str, str]:
    """The allocator settings (MALLOC_*) the operator image's final stage sets in ENV.

    The bench runs the operator as the image does; these change its resident memory.
    """
    final = dockerfile.read_text().split("\nFROM ")[-1].replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                if key.startswith("MALLOC_"):
                    found[key] = value
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of a live process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


class EmulatorProcess:
    """bench/scale_emulator.py as a child process, driven over its stdin/stdout."""

    def __init__(self) -> None:
        self.process = spawned(
            subprocess.Popen(
                [sys.executable, str(HERE / "scale_emulator.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                process_group=0,
            )
        )
        self.url = str(self._read()["url"])

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator exited")
        return dict(json.loads(line))

    def command(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def counts(self) -> tuple[dict[str, int], float]:
        answer = self.command("counts")
        return dict(answer["counts"]), float(answer["idle_s"])

    def secret_reads(self) -> list[float]:
        """The wall time (time.time()) of every Secret read so far."""
        return [float(t) for t in self.command("counts")["secret_reads"]]

    def stop(self) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            try:
                self.process.stdin.close()  # end of input: it stops
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_process(self.process)


class OperatorBench:
    """One operator process over one Setup, and its cycles."""

    def __init__(self, setup: Setup, timeout: float, *, verbose: bool = False) -> None:
        self.setup, self.timeout = setup, timeout
        self.verbose = verbose  # the operator logs every pass (INFO): costs CPU, for diagnosis
        self.emulator: EmulatorProcess | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log = setup.tmp / f"{setup.prefix}-operator.log"
        self._log_file: IO[bytes] | None = None

    def __enter__(self) -> OperatorBench:
        self.emulator = EmulatorProcess()
        answer = self.emulator.command("create", docs=[self.setup.secret(), *self.setup.crs()])
        if answer["failed"]:
            raise RuntimeError(f"the emulator refused {answer['failed']} objects")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process, grace=20.0)
        if self._log_file is not None:
            self._log_file.close()
        if self.emulator is not None:
            self.emulator.stop()

    def _start_operator(self) -> None:
        assert self.emulator is not None
        kubeconfig = self.setup.tmp / f"{self.setup.prefix}-kubeconfig"
        cluster = {"name": "bench", "cluster": {"server": self.emulator.url}}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "bench", "user": {"token": "bench"}}],
            "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
            "current-context": "bench",
        }
        kubeconfig.write_text(yaml.safe_dump(config), "utf-8")
        self._log_file = self.log.open("wb")
        command = [
            str(CLI), "run", "--standalone", "--workdir", str(self.setup.workdir),
            "--metrics-port", "0", "--webhook-port", "0",
            "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
        ]  # fmt: skip
        command[1:1] = ["-v"] if self.verbose else []
        self.process = spawned(
            subprocess.Popen(
                command,
                env={**os.environ, **image_allocator_env(), "KUBECONFIG": str(kubeconfig)},
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        )

    def tail(self, lines: int = 30) -> str:
        """The end of the operator's log (printed when a cycle fails)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def initial(self) -> Cycle:
        return self._cycle("initial", self._start_operator)

    def changed(self, kind: str = "changed") -> Cycle:
        return self._cycle(kind, self.setup.change_every_image)

    def triggered(self) -> Cycle:
        def trigger() -> None:
            self.setup.change_every_image()
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            assert self.emulator is not None
            names = [f"app-{i:04d}" for i in range(self.setup.n)]
            answer = self.emulator.command(
                "annotate", names=names, namespace="gitops", key=REQUESTED_AT, value=stamp
            )
            if answer["failed"]:
                raise RuntimeError(f"{answer['failed']} annotations failed")

        return self._cycle("triggered", trigger)

    def idle(self, window: float) -> Cycle:
        """One interval with nothing new, from the first registry request of the next wave.

        A window from an arbitrary instant would hold one wave or none, by phase: the passes a
        trigger started are next due one interval later rounded up to the tick (docs/operator.md),
        so a window of exactly one interval from when the previous cycle ended can end just before
        them. Registry requests are counted from the wave's first request for one interval less
        half a tick (LATE_START): the first wave after a busy cycle can start its requests a few
        seconds after its due instant, and the next, on time, would otherwise fall inside. A second
        wave within the window (the operator scanning more often than the interval) still counts.
        """
        return self._cycle("idle", lambda: None, window=window)

    def _cycle(self, kind: str, start: Callable[[], None], window: float | None = None) -> Cycle:
        """Run `start`, wait until every CR is promoted (or `window` elapsed); measure."""
        setup, emulator = self.setup, self.emulator
        assert emulator is not None
        setup.begin_cycle()
        counts_before, _ = emulator.counts()
        cpu_before = cpu_seconds(self.process.pid) if self.process else 0.0
        api_before = cpu_seconds(emulator.process.pid)
        began = time.perf_counter()
        began_wall = time.time()
        start()
        assert self.process is not None
        pid = self.process.pid
        peak, note, done_at = 0.0, "", None
        opened: float | None = None  # idle: when its window opened (the wave's first request)
        while True:
            time.sleep(POLL)
            if self.process.poll() is not None:
                note = f"operator exited {self.process.returncode}"
                break
            peak = max(peak, rss_mb(pid))
            setup.poll()
            elapsed = time.perf_counter() - began
            if window is not None:
                if opened is None:
                    first_seen = min((r.at for r in setup.proxy.seen()), default=None)
                    if first_seen is not None:
                        opened = first_seen - began_wall
                    elif elapsed >= 2 * window:  # no wave at all: the window is the last one
                        opened = elapsed - window
                if opened is not None and elapsed >= opened + window:
                    done_at = elapsed
                    break
            elif len(setup.arrived) >= setup.n:
                answer = emulator.command("statuses", tag=setup.tag)
                if answer["done"] >= setup.n:
                    done_at = elapsed
                    break
            if elapsed > self.timeout:
                answer = emulator.command("statuses", tag=setup.tag)
                note = f"timed out: {answer['done']}/{setup.n} done, {answer['reasons']}"
                break
        quiet_until = time.perf_counter() + QUIET_MAX
        while note == "" and time.perf_counter() < quiet_until:
            if emulator.counts()[1] >= QUIET:
                break
            time.sleep(POLL)
            peak = max(peak, rss_mb(pid))
        setup.poll()
        counts, _ = emulator.counts()
        delta = {k: counts.get(k, 0) - counts_before.get(k, 0) for k in counts}
        alive = self.process.poll() is None
        changed = kind != "idle"
        busy = None
        seen = setup.proxy.seen()
        first = min((r.at for r in seen), default=None)
        if done_at is not None and window is None and first is not None and setup.arrived:
            busy = max(setup.arrived.values()) - first  # server clocks: no polling step in it
        # registry requests until the cycle ended: the quiet period after it is for trailing
        # API writes, and may run into the next interval's scans
        until = began_wall + done_at if done_at is not None else None
        if opened is not None and window is not None:
            # the idle window: [opened, opened + window - LATE_START)
            until = began_wall + opened + window - LATE_START
        requests = sum(1 for r in seen if until is None or r.at < until)
        secret_reads = sum(v for k, v in delta.items() if k.startswith("GET secrets"))
        if opened is not None and window is not None:  # the window's, as its requests are: a
            # wave reads its Secret just before its first registry request (SECRET_LEAD)
            since = began_wall + opened - SECRET_LEAD
            secret_reads = sum(1 for t in emulator.secret_reads() if since <= t < (until or since))
        wall = time.perf_counter() - began if done_at is None else done_at
        if window is not None and done_at is not None:
            wall = window  # the idle window, not the wait for its wave
        return Cycle(
            size=setup.size,
            mode="operator",
            kind=kind,
            wall_s=wall,
            requests=requests,
            requests_min=setup.requests_min(),
            pushes=setup.pushes,
            pushes_min=setup.g if changed else 0,
            latencies=setup.latencies() if changed else [],
            cpu_s=(cpu_seconds(pid) - cpu_before) if alive else 0.0,
            rss_mb=peak,
            api_cpu_s=cpu_seconds(emulator.process.pid) - api_before,
            status_patches=delta.get("PATCH imagepromotions/status", 0),
            object_patches=delta.get("PATCH imagepromotions", 0),
            events=delta.get("POST events", 0),
            secret_reads=secret_reads,
            promoted=len(setup.arrived),
            note=note,
            busy_s=busy,
        )
