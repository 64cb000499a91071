"""Benchmark: hostile inputs per class, with the number of inputs tried and the slowest case.

Pure, in-process measurements of the code paths `tests/hostile/` drives through real servers:
user regexes (RE2, next to Python's `re` on the same pattern as the baseline), hostile tag
lists, bounded YAML and JSON loading, values files (deep, many targets) and redaction. Each
class prints how many inputs it tried, the slowest one and its CPU time; the baselines are the
old code paths where running them is safe (small sizes: the old ones grow exponentially or
quadratically, which is the point). Peak RSS of this process is printed at the end.

Run: .venv/bin/python bench/hostile.py
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

from imagepromoter import bounded, errors, policy, redact, regexes, values

Row = tuple[str, float]


def cpu(fn: Callable[[], object]) -> float:
    """CPU seconds of one call; any exception is the expected refusal and counts as done."""
    started = time.process_time()
    with contextlib.suppress(ValueError, RecursionError, errors.PromotionError):
        fn()
    return time.process_time() - started


def report(kind: str, rows: list[Row], baseline: str = "") -> None:
    slowest = max(rows, key=lambda r: r[1])
    print(f"{kind}: {len(rows)} inputs; slowest {slowest[0]} {slowest[1] * 1000:.1f} ms CPU")
    if baseline:
        print(f"  baseline: {baseline}")


def regex_class() -> None:
    rows: list[Row] = []
    catastrophic = regexes.compile("^(a+)+$", "spec.tagRegex")
    for n in (25, 37, 128, 10_000, 1_000_000):
        text = "a" * n + "b"
        rows.append(
            (
                f"tagRegex ^(a+)+$ on {n + 1} chars",
                cpu(lambda text=text: catastrophic.fullmatch(text)),
            )
        )
    nested = regexes.compile(r': "(?P<value>(?:[0-9]+)+)"', "regex", multiline=True)
    file = 'blob: "' + "1" * (1 << 20) + 'x"\ntag: "1.0.0"\n'
    rows.append(
        ("target regex (?:[0-9]+)+ over a 1 MiB line", cpu(lambda: list(nested.finditer(file))))
    )
    exclude = regexes.compile("(x+x+)+y", "spec.excludeTags[0]")
    rows.append(("excludeTags (x+x+)+y on 128 chars", cpu(lambda: exclude.search("x" * 128))))
    old = [(n, cpu(lambda n=n: re.fullmatch("^(a+)+$", "a" * n + "b"))) for n in (18, 20, 22)]
    base = ", ".join(f"{n + 1} chars {s * 1000:.0f} ms" for n, s in old)
    report("user regexes (RE2)", rows, f"Python re on ^(a+)+$: {base} (x4 per 2 characters)")


def tags_class() -> None:
    hostile = [
        "9.9.9\n",
        "9.9.9\nSigned-off-by: x",
        "1.0.0 #x",
        ": ",
        '"',
        "9\x00",
        "9\u202e",
        "９.９.９",
        "/../9",
        "!!python/x",
        "9" * 10_000,
    ]
    rows: list[Row] = []
    for count in (1_000, 100_000):
        tags = [f"1.{i // 1000}.{i % 1000}" for i in range(count)] + hostile * (count // 100)
        rows.append(
            (
                f"{len(tags)} tags, {len(hostile) * (count // 100)} hostile",
                cpu(lambda tags=tags: policy.evaluate(tags, tag_regex=".*")),
            )
        )
    report("hostile tag lists", rows)


def _laughs(levels: int) -> str:
    lines = ['l0: &l0 ["ha","ha","ha","ha","ha","ha","ha","ha","ha"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def parsing_class() -> None:
    import yaml

    rows: list[Row] = []
    cases = {
        "alias bomb, 9 levels (1.7 KB)": _laughs(9),
        "20,000-deep flow CR": "spec: " + "[" * 20_000 + "]" * 20_000,
        "20,000-deep block mapping": "".join("  " * i + f"k{i}:\n" for i in range(2_000)),
        "4 MiB comment": "# " + "x" * (4 << 20),
    }
    for name, text in cases.items():
        rows.append((name, cpu(lambda text=text: bounded.yaml_documents(text, "f.yaml"))))
    for depth in (100_000, 1_000_000):
        body = b"[" * depth + b"]" * depth
        rows.append((f"{depth:,}-deep tag JSON", cpu(lambda body=body: bounded.loads_json(body))))
    small = _laughs(6)
    old = cpu(lambda: json.dumps(yaml.safe_load(small)))
    report(
        "bounded YAML/JSON",
        rows,
        f"old loader on a 6-level bomb, then walked: {old * 1000:.0f} ms "
        "(it grows x9 per level; the test bomb has 9)",
    )


def values_class() -> None:
    rows: list[Row] = []
    deep = "[" * 10_000 + "]" * 10_000 + "\n"
    rows.append(
        ("10,000-deep values file, missing key", cpu(lambda: values.set_key(deep, "a.b", "1")))
    )
    for apps in (100, 1000):
        text = "".join(f"app{i}:\n  image:\n    tag: 1.0.0\n" for i in range(apps))
        edits = [(f"app{i}.image.tag", "2.0.0") for i in range(apps)]
        rows.append(
            (
                f"{apps} key targets on one {len(text) // 1024} KB file",
                cpu(lambda text=text, edits=edits: values.set_keys(text, edits)),
            )
        )
    text = "".join(f"app{i}:\n  image:\n    tag: 1.0.0\n" for i in range(1000))

    def sequential(count: int) -> None:
        edited = text
        for i in range(count):
            edited = values.set_key(edited, f"app{i}.image.tag", "2.0.0")

    per = cpu(lambda: sequential(10)) / 10
    report(
        "values files",
        rows,
        f"one set_key per target on the 1000-key file: {per * 1000:.0f} ms "
        f"per target, about {per * 1000:.0f} s for 1000",
    )


def redaction_class() -> None:
    password = "S3cr3t-Pa55w0rd-xyzw"
    redactor = redact.Redactor([password], [("reader", password)])
    rows: list[Row] = []
    for size in (1024, 1 << 20):
        text = ("x" * 136 + password[:16] + " ") * (size // 153)
        rows.append(
            (
                f"{len(text) // 1024} KiB message with {size // 153} pieces",
                cpu(lambda text=text: redactor(text)),
            )
        )
    rows.append(("building the redactor", cpu(lambda: redact.Redactor([password] * 50))))
    report("redaction", rows)


def main() -> None:
    regex_class()
    tags_class()
    parsing_class()
    values_class()
    redaction_class()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of this process: {peak / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
