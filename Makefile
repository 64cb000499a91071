# make demo: the seed scenario on local servers it starts itself. make test: everything CI runs.
# make unit: the inner loop (seconds). make lock: after changing dependencies in pyproject.toml.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# What is installed: exact versions with hashes, resolved from pyproject.toml's ranges by uv.
TEST_LOCK := requirements-test.lock
RUNTIME_LOCK := requirements.lock
BUILD_LOCK := requirements-build.lock
LOCK_FLAGS ?=
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet $(LOCK_FLAGS)

.PHONY: test lint typecheck architecture unit demo bench clean servers lock chart

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml $(TEST_LOCK) $(BUILD_LOCK) | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r $(TEST_LOCK) -r $(BUILD_LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Re-resolve the locks from pyproject.toml, keeping every pin that still fits (LOCK_FLAGS=--upgrade
# moves them all to the newest allowed). The runtime lock (the image) is constrained by the test
# lock, so the image runs exactly the versions the tests ran; the build lock pins the build
# backend ([build-system] requires) that makes the wheel.
lock: | $(PY)
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q uv
	$(UV_COMPILE) --extra test -o $(TEST_LOCK)
	$(UV_COMPILE) -c $(TEST_LOCK) -o $(RUNTIME_LOCK)
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
	  | $(VENV)/bin/uv pip compile - --universal --python-version 3.11 --generate-hashes --quiet \
	    $(LOCK_FLAGS) -o $(BUILD_LOCK)

servers:
	scripts/install-test-servers

lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests bench scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict operator/

architecture: $(STAMP)
	$(VENV)/bin/lint-imports

test: $(STAMP) servers lint typecheck architecture
	$(VENV)/bin/pytest

# The inner loop: pure-core and unit tests, no server started (a test that starts one unmarked
# fails), no exhaustive sweep; seconds, not minutes.
unit: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not servers and not slow" --hypothesis-profile=unit

# `helm lint` and `helm template` through Helm's Go library (helm-python-sdk, a test extra; no helm
# binary needed). tests/test_chart.py runs both in `make test`. VALUES=file.yaml to try your own.
chart: $(STAMP)
	$(PY) scripts/helm_template.py $(VALUES)

demo: $(STAMP) servers
	$(PY) scripts/demo.py

# Heavy: run it on a quiet machine. Each script prints its table and writes its section of
# bench/RESULTS.md, which README.md and docs/ quote.
bench: $(STAMP) servers
	$(PY) bench/registry_scan.py
	$(PY) bench/git_promote.py
	$(PY) bench/values_corpus.py
	$(PY) bench/webhook_latency.py
	$(PY) bench/hostile.py
	$(PY) bench/stall.py
	$(PY) bench/scale.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
