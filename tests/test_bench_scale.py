"""bench/scale.py cannot rot: it runs at its smallest size, and stops everything it started.

The figures are not judged here (the goals of issue 11 are printed by the bench, never asserted:
timing belongs to bench/), only that the bench measured something real: every CR's commit
reached the git server in the initial cycle of both modes, the emulator counted the operator's
writes, curl's floor made exactly the minimum requests through the counting proxy, and the table,
the goals and the figure were written. A SIGTERM in the middle of the operator's cycle (as
`timeout` sends) leaves no server, emulator or operator process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import need_server
from tests.test_servers_stop import load, started_by_block

pytestmark = [pytest.mark.servers, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
SMALLEST = ["--sizes", "10/10/2", "--cycles", "initial,idle", "--interval", "2s"]


def live_in_groups(groups: set[int]) -> list[str]:
    """Non-zombie processes whose process group is one of `groups`, whoever their parent is."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if state != "Z" and int(pgrp) in groups:
            found.append(f"{stat.parent.name} {text[text.index('(') : text.rindex(')') + 1]}")
    return found


def test_the_scale_bench_runs_at_its_smallest_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import results

    out = tmp_path / "RESULTS.md"
    png = tmp_path / "scaling.png"
    monkeypatch.setattr(results, "RESULTS", out)
    monkeypatch.setattr(sys, "argv", ["scale.py", *SMALLEST, "--png", str(png)])
    bench = load(ROOT / "bench" / "scale.py")
    with started_by_block() as groups:
        need_server(bench.main)
    assert len(groups) >= 5, "registry, git server, a promote process, emulator, operator"
    assert live_in_groups(set(groups)) == []
    printed = capsys.readouterr().out
    text = out.read_text()
    section = text[text.index("<!-- bench:scale -->") : text.index("<!-- /bench:scale -->")]
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:3]): line.split("|")
        for line in section.splitlines()
        if line.startswith("| 10/10/2 ")
    }
    assert set(rows) == {
        ("10/10/2", "cli", "initial"),
        ("10/10/2", "cli", "idle"),
        ("10/10/2", "floor", "git CLI + curl"),
        ("10/10/2", "operator", "initial"),
        ("10/10/2", "operator", "idle"),
    }, printed
    note = -2  # the last cell before the closing bar
    for key in [("10/10/2", "cli", "initial"), ("10/10/2", "operator", "initial")]:
        cells = [cell.strip() for cell in rows[key]]
        assert cells[note] == "", f"{key} did not complete: {cells[note]}"
        assert " / " in cells[5], f"{key}: latencies measured"
    operator = [cell.strip() for cell in rows["10/10/2", "operator", "initial"]]
    assert int(operator[8].split(" + ")[0]) > 0, "the emulator counted the operator's PATCHes"
    floor = [cell.strip() for cell in rows["10/10/2", "floor", "git CLI + curl"]]
    assert floor[6].startswith("20 (20, 1.00x)"), "curl's minimum requests, counted by the proxy"
    assert "Issue 11's goals" in section and ": not measured (1000/100/10 not run)" in section
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sigterm_mid_cycle_leaves_no_process_behind(tmp_path: Path) -> None:
    pidfile = tmp_path / "groups"
    command = [
        sys.executable, str(ROOT / "bench" / "scale.py"), *SMALLEST, "--modes", "operator",
        "--interval", "1h", "--png", str(tmp_path / "x.png"),
        "--results", str(tmp_path / "RESULTS.md"), "--pidfile", str(pidfile),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # the idle cycle of one hour runs once `initial` printed
            lines.append(line)
            if "operator initial" in line:
                break
        else:
            pytest.fail("the bench ended before its operator's initial cycle:\n" + "".join(lines))
        groups = {int(g) for g in pidfile.read_text().split()}
        assert len(groups) >= 4, "registry, git server, emulator, operator"
        assert live_in_groups(groups), "they run until the signal"
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 143
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    deadline = time.monotonic() + 10
    while live_in_groups(groups) and time.monotonic() < deadline:
        time.sleep(0.1)  # a SIGKILLed group's last process is reaped by init shortly after
    assert live_in_groups(groups) == []
    assert not (tmp_path / "RESULTS.md").exists(), "an interrupted run writes no figures"
