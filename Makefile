# make demo: the seed scenario on local servers it starts itself. make test: everything CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck architecture unit demo bench clean servers

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

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

demo: $(STAMP) servers
	$(PY) scripts/demo.py

bench: $(STAMP) servers
	$(PY) bench/registry_scan.py
	$(PY) bench/git_promote.py
	$(PY) bench/webhook_latency.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
