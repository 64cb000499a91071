"""Log level and format for the container: -v/-vv, else IMAGEPROMOTER_LOG_LEVEL and
IMAGEPROMOTER_LOG_FORMAT (the chart's logLevel and logFormat values set them)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from imagepromoter import cli


@pytest.fixture
def root() -> logging.Logger:
    """An unregistered logger with no handlers, standing in for the root (pytest's capture holds
    the real one)."""
    return logging.Logger("imagepromoter-test-root")


LEVELS = [
    (0, {}, logging.WARNING),
    (0, {"IMAGEPROMOTER_LOG_LEVEL": "info"}, logging.INFO),
    (0, {"IMAGEPROMOTER_LOG_LEVEL": "DEBUG"}, logging.DEBUG),
    (0, {"IMAGEPROMOTER_LOG_LEVEL": "error"}, logging.ERROR),
    (1, {"IMAGEPROMOTER_LOG_LEVEL": "error"}, logging.INFO),
    (2, {}, logging.DEBUG),
]


@pytest.mark.parametrize(
    ("verbose", "environ", "level"),
    LEVELS,
    ids=["default", "info", "upper-case", "error", "-v-wins", "-vv"],
)
def test_level(verbose: int, environ: dict[str, str], level: int, root: logging.Logger) -> None:
    cli.configure_logging(verbose, environ, root)
    assert root.level == level


def test_json_is_one_object_per_line(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.configure_logging(0, {"IMAGEPROMOTER_LOG_FORMAT": "json"}, root)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        root.exception("pass failed for %s", "gitops/dev")
    (line,) = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "ERROR", "imagepromoter-test-root", "pass failed for gitops/dev"
    )  # fmt: skip
    assert "RuntimeError: boom" in entry["exception"] and entry["time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("environ", "named"),
    [({"IMAGEPROMOTER_LOG_LEVEL": "verbose"}, "IMAGEPROMOTER_LOG_LEVEL"),
     ({"IMAGEPROMOTER_LOG_FORMAT": "xml"}, "IMAGEPROMOTER_LOG_FORMAT")],
    ids=["level", "format"],
)  # fmt: skip
def test_a_bad_value_is_a_usage_error_naming_the_variable(
    environ: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["promote", "missing.yaml"]) == cli.EXIT_USAGE
    assert named in capsys.readouterr().err


def test_json_names_the_object_of_kopfs_per_object_loggers(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.configure_logging(0, {"IMAGEPROMOTER_LOG_FORMAT": "json"}, root)
    ref = {"kind": "ImagePromotion", "namespace": "gitops", "name": "myapp-dev", "uid": "u"}
    root.warning("pass failed", extra={"k8s_ref": ref})
    entry = json.loads(capsys.readouterr().err)
    assert entry["object"] == "gitops/myapp-dev"


@pytest.mark.parametrize("young", [cli.PROMOTE_GC_THRESHOLD, cli.OPERATOR_GC_THRESHOLD])
def test_a_run_sets_the_collector_aside_for_its_startup_heap_and_restores_it(young: int) -> None:
    import gc

    before = gc.get_threshold()
    with cli._startup_heap_frozen(young):
        assert gc.get_freeze_count() > 0, "what was loaded before the work is frozen"
        assert gc.get_threshold() == (young, *before[1:])
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0), "undone after the run"


def test_the_operator_runs_with_its_startup_heap_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`imagepromoter run` hands over to Kopf inside the frozen heap, and restores it after."""
    import gc

    from imagepromoter.kube import handlers

    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(
        handlers,
        "run_operator",
        lambda **_: seen.append((gc.get_threshold()[0], gc.get_freeze_count())) or 0,
    )
    before = gc.get_threshold()
    assert cli.main(["run", "--standalone", "--workdir", str(tmp_path)]) == 0
    ((young, frozen),) = seen
    assert young == cli.OPERATOR_GC_THRESHOLD and frozen > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
