"""bench/scale.py's output: the table, issue 11's goals judged from it, and bench/scaling.png.

The goals are judged here, from the measured cycles, and printed (met / not met / not measured)
next to the table and in the figure; they are never asserted by a test (a slow machine would
fail it, a fast one would hide a regression). Where a goal names a size that was not run, it says
so instead of judging a smaller one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.scale_setup import Cycle

PNG = Path(__file__).resolve().parent / "scaling.png"
HEADER = ("N/M/G", "mode", "cycle", "wall s", "busy s", "latency p50 / p95 s",
          "registry requests (min)", "pushes (min)", "PATCHes: status + object", "events",
          "Secret reads", "CPU s", "API CPU s", "peak RSS MB", "note")  # fmt: skip
BIG, MID = "1000/100/10", "100/100/10"


def _medians(cycles: Sequence[Cycle]) -> str:
    """'; medians of K and L changed cycles: ...' for the CLI at BIG and MID, both run 3+ times.

    One cycle's wall time moves by a tenth from run to run on the 2-core machine, so the
    ratio of two single cycles moves by more; the medians say how much of a verdict is noise.
    """
    walls = {
        size: [c.wall_s for c in cycles
               if (c.size, c.mode) == (size, "cli") and c.kind.startswith("changed ")]
        for size in (BIG, MID)
    }  # fmt: skip
    if min(len(w) for w in walls.values()) < 3:
        return ""
    big, mid = statistics.median(walls[BIG]), statistics.median(walls[MID])
    return (
        f"; medians of {len(walls[BIG])} and {len(walls[MID])} changed cycles: {big:.2f} s, "
        f"{big / mid:.2f}x {mid:.2f} s"
    )


def ratio(value: int, least: int) -> str:
    return f"{value} ({least})" if least == 0 else f"{value} ({least}, {value / least:.2f}x)"


def _opt(value: float | int | None, fmt: str = "{}") -> str:
    return "" if value is None else fmt.format(value)


def row(c: Cycle) -> tuple[object, ...]:
    p50, p95 = c.latency(0.5), c.latency(0.95)
    latency = "" if p50 is None else f"{p50:.2f} / {p95:.2f}"
    return (
        c.size, c.mode, c.kind, f"{c.wall_s:.2f}", _opt(c.busy_s, "{:.2f}"), latency,
        ratio(c.requests, c.requests_min),
        ratio(c.pushes, c.pushes_min), patches(c), _opt(c.events),
        _opt(c.secret_reads), f"{c.cpu_s:.2f}" if c.mode != "floor" else "",
        _opt(c.api_cpu_s, "{:.2f}"), f"{c.rss_mb:.0f}" if c.rss_mb else "",
        " ".join(c.note.replace("|", "/").split()),
    )  # fmt: skip


def patches(c: Cycle) -> str:
    if c.status_patches is None:
        return ""
    return f"{c.status_patches} + {c.object_patches or 0}"


def _find(cycles: Sequence[Cycle], size: str, mode: str, kind: str) -> Cycle | None:
    return next((c for c in cycles if (c.size, c.mode, c.kind) == (size, mode, kind)), None)


def _failed(c: Cycle) -> str:
    """Why a cycle's figures do not count as met, if it failed."""
    return f"; but {c.kind} failed: {c.note[:80]}" if c.note else ""


def _busy(c: Cycle) -> float:
    """The cycle's own work: the operator's busy time (without its wait for the timer)."""
    return c.busy_s if c.busy_s is not None else c.wall_s


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def goals(cycles: Sequence[Cycle]) -> list[str]:
    """Issue 11's goals, each with its verdict and the figures it rests on."""
    out: list[str] = []
    measured = [c for c in cycles if c.mode != "floor"]
    over = [c for c in measured if c.requests > c.requests_min or c.pushes > c.pushes_min]
    if measured:
        worst = ", ".join(
            f"{c.size} {c.mode} {c.kind}: {c.requests}/{c.requests_min} requests, "
            f"{c.pushes}/{c.pushes_min} pushes"
            for c in over[:4]
        )
        out.append(
            f"requests and pushes at 1.00x the minimum in every cycle: {_mark(not over)}"
            + (f" ({len(over)} of {len(measured)} cycles above; {worst}, ...)" if over else "")
        )
    idle = [c for c in measured if c.kind == "idle"]
    if idle:
        busy = [c for c in idle if c.pushes or c.status_patches or c.object_patches]
        detail = "; ".join(
            f"{c.size} {c.mode}: {c.pushes} pushes"
            + (f", {patches(c)} PATCHes" if c.status_patches is not None else "")
            for c in idle
        )
        out.append(f"idle cycle: 0 pushes, 0 PATCHes: {_mark(not busy)} ({detail})")
    big, mid = _find(cycles, BIG, "cli", "changed 1"), _find(cycles, MID, "cli", "changed 1")
    if big is None or mid is None:
        missing = " and ".join(size for size, c in ((BIG, big), (MID, mid)) if c is None)
        out.append(f"{BIG} CLI changed <= 15 s and <= 2x {MID}: not measured ({missing} not run)")
    else:
        ok = big.wall_s <= 15 and big.wall_s <= 2 * mid.wall_s and not big.note
        out.append(
            f"{BIG} CLI, every image changed: <= 15 s and <= 2x {MID}: {_mark(ok)} "
            f"({big.wall_s:.2f} s, {big.wall_s / mid.wall_s:.2f}x {mid.wall_s:.2f} s"
            + _medians(cycles)
            + ")"
            + _failed(big)
        )
    op = _find(cycles, BIG, "operator", "changed 1")
    if op is None:
        out.append(f"{BIG} operator, same cycle: not measured ({BIG} not run)")
    else:
        per_cr = max(op.promoted, 1)
        ok = (
            not op.note
            and (op.status_patches or 0) <= op.promoted
            and (op.events or 0) <= op.promoted
            and op.cpu_s <= 15
        )
        out.append(
            f"{BIG} operator, every image changed: <= 1 status PATCH and 1 event per promoted CR,"
            f" operator CPU <= 15 s: {_mark(ok)} ({(op.status_patches or 0) / per_cr:.2f} PATCHes"
            f" and {(op.events or 0) / per_cr:.2f} events per CR over {op.promoted} promoted; "
            f"CPU {op.cpu_s:.2f} s; wall {op.wall_s:.2f} s, emulator CPU {op.api_cpu_s or 0:.2f} s)"
            + (f"; {op.note}" if op.note else "")
        )
    for size in dict.fromkeys(c.size for c in cycles):
        for mode in ("cli", "operator"):
            runs = [c for c in cycles if (c.size, c.mode) == (size, mode)
                    and c.kind.startswith("changed ")]  # fmt: skip
            if len(runs) >= 2:
                first, last = runs[0], runs[-1]
                failed = next((c for c in runs if c.note), None)
                a, b = _busy(first), _busy(last)
                ok = b <= 1.1 * a and failed is None
                out.append(
                    f"{size} {mode}, {len(runs)} changed cycles in a row: last <= 1.1x first, "
                    f"busy time: {_mark(ok)} ({a:.2f} s -> {b:.2f} s, "
                    f"{b / a:.2f}x; wall {first.wall_s:.2f} -> {last.wall_s:.2f} s; "
                    f"CPU {first.cpu_s:.2f} -> "
                    f"{last.cpu_s:.2f} s; RSS {first.rss_mb:.0f} -> {last.rss_mb:.0f} MB)"
                    + (_failed(failed) if failed else "")
                )
    ops = [c for c in cycles if (c.size, c.mode) == (BIG, "operator") and c.rss_mb]
    if not ops:
        out.append(f"operator RSS < 150 MB at N=1000 and flat: not measured ({BIG} not run)")
    else:
        peak = max(c.rss_mb for c in ops)
        changed = [c.rss_mb for c in ops if c.kind.startswith("changed ")]
        flat = not changed or changed[-1] <= 1.1 * changed[0]
        out.append(
            f"operator RSS < 150 MB at N=1000 and flat across cycles: {_mark(peak < 150 and flat)}"
            f" (peak {peak:.0f} MB; changed cycles "
            + " -> ".join(f"{r:.0f}" for r in changed)
            + " MB)"
        )
    return out


def plot(cycles: Sequence[Cycle], judged: Sequence[str], path: Path = PNG) -> Path:
    """Cycle time and peak RSS against N, CLI and operator, the goals printed beneath."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (times, memory) = pyplot.subplots(1, 2, figsize=(12, 5.2))
    series = [
        ("cli", "changed 1", "CLI, every image changed", "o-"),
        ("operator", "changed 1", "operator, every image changed (timer: waits <= interval)", "s-"),
        ("operator", "triggered", "operator, every CR triggered", "^-"),
        ("floor", "git CLI + curl", "floor: git CLI + curl", "kx:"),
    ]
    for mode, kind, label, style in series:
        points = sorted((c.n, c.wall_s) for c in cycles if (c.mode, c.kind) == (mode, kind))
        if points:
            times.plot(*zip(*points, strict=True), style, label=label)
    for mode, style in (("cli", "o-"), ("operator", "s-")):
        peaks: dict[int, float] = {}
        for c in cycles:
            if c.mode == mode and c.rss_mb:
                peaks[c.n] = max(peaks.get(c.n, 0.0), c.rss_mb)
        if peaks:
            memory.plot(*zip(*sorted(peaks.items()), strict=True), style, label=mode)
    for axis, title, unit in ((times, "cycle wall time", "s"), (memory, "peak RSS", "MB")):
        axis.set_xscale("log")
        axis.set_xlabel("N ImagePromotions (M images, G repositories: see RESULTS.md)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    text = "issue 11 goals (bench/scale.py):\n" + "\n".join(
        line if len(line) <= 150 else line[:147] + "..." for line in judged
    )
    figure.text(0.01, 0.01, text, fontsize=6.5, family="monospace", va="bottom")
    figure.subplots_adjust(bottom=0.14 + 0.028 * len(judged), wspace=0.25)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
