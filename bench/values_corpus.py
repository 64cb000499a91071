"""Benchmark: values edits over the real-world corpus, next to a ruamel.yaml round trip.

Every scalar leaf of every Helm values file in the corpus (`../shared/fixtures/values-corpus/`
beside the clone, or $IMAGEPROMOTER_VALUES_CORPUS), read in place, is set to a new string with
`values.set_key`, in the same run:
- warm: one file's parse reused between its edits (the parse is cached by text), the operator's
  case when CRs target many keys of one file, and the corpus test's;
- cold: the parse caches cleared before each edit (one full parse plus the check), on `--sample`
  leaves per file spread evenly, so the figure weights every file alike, not by its size;
- baseline: ruamel.yaml's round trip (load, set, dump), what most tools do, on the same sampled
  leaves; it re-serialises the whole file (comments and quoting may move), which we never do.

Run: .venv/bin/python bench/values_corpus.py [--sample N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from ruamel.yaml import YAML  # noqa: E402

from bench import results  # noqa: E402
from imagepromoter import _yamlpaths, _yamlscan, errors, values  # noqa: E402

CORPUS = Path(
    os.environ.get("IMAGEPROMOTER_VALUES_CORPUS")
    or ROOT.parent / "shared" / "fixtures" / "values-corpus"
)
NEW_VALUE = "9.9.9-bench"


def clear_caches() -> None:
    _yamlscan.parse.cache_clear()
    _yamlscan.event_keys.cache_clear()


def spread(items: list[str], count: int) -> list[str]:
    if len(items) <= count:
        return items
    return [items[i * len(items) // count] for i in range(count)]


def round_trip(text: str, key: str) -> float:
    """Seconds for ruamel.yaml to load `text`, set `key`, and dump it."""
    started = time.perf_counter()
    yaml = YAML()  # round-trip mode: keeps comments, re-serialises everything
    documents = list(yaml.load_all(text))
    node: Any = documents[0]
    segments = list(_yamlpaths.split_key(key))
    for segment in segments[:-1]:
        node = node[int(segment) if isinstance(node, list) else segment]
    last = segments[-1]
    node[int(last) if isinstance(node, list) else last] = NEW_VALUE
    out = io.StringIO()
    yaml.dump_all(documents, out)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=5, help="cold and baseline leaves per file")
    args = parser.parse_args()
    files = sorted(CORPUS.glob("*.yaml"))
    if not files:
        sys.exit(f"no values corpus at {CORPUS} (set IMAGEPROMOTER_VALUES_CORPUS)")
    leaves = edited = refused = 0
    warm_seconds = 0.0
    cold: list[float] = []
    baseline: list[float] = []
    for path in files:
        text = path.read_bytes().decode("utf-8")
        clear_caches()
        keys = list(_yamlpaths._leaf_paths(_yamlscan.parse(text)))
        single_document = len(_yamlscan.parse(text).documents) == 1
        leaves += len(keys)
        values.set_key(text, keys[0], NEW_VALUE) if keys else None  # the parse is now cached
        ok: list[str] = []
        started = time.perf_counter()
        for key in keys:
            try:
                values.set_key(text, key, NEW_VALUE)
                edited += 1
                ok.append(key)
            except errors.TargetError:  # aliases, block scalars, tags: refused by design
                refused += 1
        warm_seconds += time.perf_counter() - started
        for key in spread(ok, args.sample):
            clear_caches()
            started = time.perf_counter()
            values.set_key(text, key, NEW_VALUE)
            cold.append(time.perf_counter() - started)
            if single_document:
                baseline.append(round_trip(text, key))
    rate = (edited + refused) / warm_seconds
    rows = [
        ("files", len(files), ""),
        ("scalar leaves (key paths)", f"{leaves:,}", f"{edited:,} edited, {refused:,} refused"),
        ("warm: set_key calls per second", f"{rate:,.0f}", "parse reused within a file"),
        ("cold: ms per edit, median", f"{statistics.median(cold) * 1000:.1f}",
         f"{len(cold)} edits, {args.sample} per file"),
        ("cold: ms per edit, mean", f"{statistics.mean(cold) * 1000:.1f}", ""),
        ("baseline ruamel.yaml round trip: ms per edit, median",
         f"{statistics.median(baseline) * 1000:.1f}", f"{len(baseline)} edits, same leaves"),
        ("baseline ruamel.yaml round trip: ms per edit, mean",
         f"{statistics.mean(baseline) * 1000:.1f}", "re-serialises the whole file"),
    ]  # fmt: skip
    print(f"{'figure':56} {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name:56} {value!s:>10}  {note}")
    results.record(
        "values_corpus",
        "Values edits over the real-world corpus (bench/values_corpus.py)",
        results.table(("figure", "value", "note"), rows),
    )


if __name__ == "__main__":
    main()
