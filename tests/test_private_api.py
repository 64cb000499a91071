"""The private names of other libraries that our code relies on, checked on their own and fast.

Kopf is held to one minor version in pyproject.toml because `kube/secrets.py` and
`kube/patching.py` call its API client and `kube/handlers.py` edits its handler registry;
`_yamlscan.py` wraps ruamel.yaml's scanner. When an upgrade moves one of these, a test here names
it, before the e2e tests fail in a less obvious way. Bump the pin only with this file green.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import tomllib
from pathlib import Path
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.structs import credentials as kopf_credentials
from kopf._core.reactor import processing as kopf_processing
from packaging.requirements import Requirement
from packaging.version import Version
from ruamel.yaml import YAML
from ruamel.yaml import error as yaml_error
from ruamel.yaml import events as yaml_events
from ruamel.yaml import tokens as yaml_tokens

from imagepromoter import _yamlscan
from imagepromoter.kube import handlers

ROOT = Path(__file__).resolve().parent.parent

# --- Kopf ------------------------------------------------------------------------------------


def test_kopf_is_the_minor_version_the_pin_allows() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "kopf"]
    installed = Version(importlib.metadata.version("kopf"))
    assert installed in pin.specifier
    upper = [s for s in pin.specifier if s.operator == "<"]
    assert upper and Version(upper[0].version).minor == installed.minor + 1, "one minor only"


def test_kopf_api_get_takes_what_secrets_py_passes() -> None:
    assert inspect.iscoroutinefunction(kopf_api.get)
    params = inspect.signature(kopf_api.get).parameters
    assert next(iter(params)) == "url"
    assert {"settings", "logger"} <= {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}


@pytest.mark.parametrize("name", ["APINotFoundError", "APIForbiddenError"])
def test_kopf_api_errors_secrets_py_catches(name: str) -> None:
    assert issubclass(getattr(kopf_errors, name), kopf_errors.APIError)


def test_kopf_api_request_takes_what_secrets_py_and_patching_py_pass() -> None:
    """`request(method, url, *, settings, payload, headers, timeout, backoffs, logger)`: the
    status PATCH (kube/patching.py) and the Secret GET (kube/secrets.py) without Kopf's retries."""
    assert inspect.iscoroutinefunction(kopf_api.request)
    params = inspect.signature(kopf_api.request).parameters
    assert list(params)[:2] == ["method", "url"]
    keywords = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert {"settings", "payload", "headers", "timeout", "backoffs", "logger"} <= keywords
    source = inspect.getsource(kopf_api.request)
    assert "effective = backoffs if backoffs is not None" in source, "() still means no retries"


def test_kopf_api_errors_carry_the_status_patching_py_reports() -> None:
    error = kopf_errors.APIConflictError("x", status=409, headers={})
    assert isinstance(error, kopf_errors.APIError) and error.status == 409
    assert issubclass(kopf_errors.APINotFoundError, kopf_errors.APIError)
    assert issubclass(kopf_credentials.LoginError, Exception)


def _timer_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.timer("imagepromoter.dev", "v1alpha1", "imagepromotions", interval=1, registry=registry)
    def tick(**_: Any) -> None:
        pass

    return registry


def test_kopf_keeps_timers_in_the_spawning_registry_as_dataclasses() -> None:
    registry = _timer_registry()
    (handler,) = registry._spawning._handlers
    assert dataclasses.is_dataclass(handler)
    assert handler.requires_finalizer is True, "Kopf still adds a finalizer for timers by default"


def test_without_finalizers_clears_the_flag_kopf_reads() -> None:
    registry = _timer_registry()
    handlers._without_finalizers(registry)
    (handler,) = registry._spawning._handlers
    assert handler.requires_finalizer is False
    # ... and Kopf still decides about the finalizer from that registry and that flag:
    assert "registry._spawning.requires_finalizer(" in inspect.getsource(kopf_processing)
    source = inspect.getsource(type(registry._spawning).requires_finalizer)
    assert "handler.requires_finalizer" in source


# --- ruamel.yaml (_yamlscan.py) --------------------------------------------------------------


def test_ruamel_parser_reads_tokens_through_the_scanner_instance() -> None:
    """`_yamlscan.parse` replaces `yaml.scanner.get_token` after the first event and relies on
    the parser calling it for every later token, the scalar's own token last before its event."""
    yaml = YAML(typ="safe", pure=True)
    events = yaml.parse("key: value\n")
    first = next(events)
    assert isinstance(first, yaml_events.StreamStartEvent)
    original = yaml.scanner.get_token
    seen: list[Any] = []

    def remembering() -> Any:
        token = original()
        seen.append(token)
        return token

    yaml.scanner.get_token = remembering
    last_before: dict[str, Any] = {}
    for event in events:
        if isinstance(event, yaml_events.ScalarEvent):
            last_before[event.value] = seen[-1]
    token = last_before["value"]
    assert isinstance(token, yaml_tokens.ScalarToken) and token.value == "value"
    assert (token.start_mark.index, token.end_mark.index, token.start_mark.line) == (5, 10, 0)


def test_ruamel_finds_plug_ins_through_official_plug_ins() -> None:
    """`_yamlscan._Parsing` overrides `official_plug_ins` (ruamel globs for them per instance)."""
    assert "self.official_plug_ins()" in inspect.getsource(YAML.__init__)
    yaml = _yamlscan._Parsing(typ="safe", pure=True)
    assert yaml.plug_ins == []
    assert [type(e).__name__ for e in yaml.parse("a: 1\n")][:2] == [
        "StreamStartEvent",
        "DocumentStartEvent",
    ]


@pytest.mark.parametrize(
    "name", ["ValueToken", "BlockEntryToken", "AnchorToken", "TagToken", "ScalarToken"]
)
def test_ruamel_token_classes_yamlscan_names(name: str) -> None:
    assert issubclass(getattr(yaml_tokens, name), yaml_tokens.Token)


def test_ruamel_errors_carry_the_marks_yamlscan_reads() -> None:
    with pytest.raises(yaml_error.MarkedYAMLError) as caught:
        list(YAML(typ="safe", pure=True).parse("a: [1, 2\n"))
    error = caught.value
    mark = error.problem_mark or error.context_mark
    assert mark is not None and (mark.line, mark.column) >= (0, 0)
    assert isinstance(error.problem or error.context, str)
