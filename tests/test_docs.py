"""Docs with one source per rule: every timing figure in README.md and docs/*.md is one that a
bench script wrote into bench/RESULTS.md, and the drifts once found stay fixed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = (ROOT / "bench" / "RESULTS.md").read_text()
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a measured figure: a number with a time or throughput unit ("63.2 ms", "233 edits/s"), or a
# decimal number of seconds or MB ("3.44 s", "0.4 MB"; whole ones are mostly settings: "30 s")
FIGURE = re.compile(
    r"(?<![\w.])(\d[\d,]*(?:\.\d+)?) ?(ms|edits/s|calls/s)\b|(?<![\w.])(\d[\d,]*\.\d+) ?(s|MB)\b"
)
CODE = re.compile(r"`[^`\n]*`")  # settings and formulas in code spans are not measurements


def figures(text: str) -> list[str]:
    return [m[1] or m[3] for m in FIGURE.finditer(CODE.sub("", text))]


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_measured_figure_comes_from_bench_results(path: Path) -> None:
    numbers_in_results = set(re.findall(r"\d[\d,]*(?:\.\d+)?", RESULTS))
    for number in figures(path.read_text()):
        assert number in numbers_in_results, (
            f"{path.name} quotes {number} that no bench run wrote into bench/RESULTS.md"
        )


def test_readme_benchmarks_quote_the_results_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Benchmarks**") : readme.index("## Design notes")]
    assert "bench/RESULTS.md" in section
    assert len(figures(section)) >= 5, "the README quotes the headline figures"


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_no_stale_todo_for_a_finished_issue(path: Path) -> None:
    assert "TODO(issue" not in path.read_text()


def test_no_claim_of_a_dependency_the_project_does_not_have() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = " ".join(project["dependencies"] + project["optional-dependencies"]["test"])
    sources = [*DOCS, *(ROOT / "operator").rglob("*.py")]
    for path in sources:
        for name in re.findall(r"depends on (?:the )?`([\w.-]+)`", path.read_text()):
            assert name in declared, f"{path.name} says the project depends on {name}"


def test_bench_sections_name_their_rounds_instead_of_the_docs() -> None:
    for path in DOCS:
        assert not re.search(r"\b\d+ rounds\b", path.read_text()), (
            f"{path.name}: the number of rounds belongs to bench/RESULTS.md"
        )
