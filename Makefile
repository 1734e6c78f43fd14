# Two entry points on a fresh machine: `make demo` and `make test`.
# Everything they need is bootstrapped here, idempotently, from pinned files.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: bootstrap test test-fast lint typecheck pytest demo bench chaos openapi clean

# Bootstrap steps hold a lock, so a `make bench` and a `make test` started together do not
# install over each other.
LOCK := flock .bootstrap.lock

$(VENV)/.stamp: requirements.txt requirements-dev.txt constraints.txt
	@$(LOCK) sh -c 'test -x $(PY) || $(PYTHON) -m venv $(VENV)'
	$(LOCK) $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -r requirements-dev.txt
	@touch $@

# `npm ci` on a fresh clone (exactly the lockfile); afterwards `npm install`, which reconciles
# in place instead of wiping node_modules under a running Azurite.
node_modules/.stamp: package.json package-lock.json
	@$(LOCK) sh -c 'if [ -d node_modules ]; then npm install --no-audit --no-fund --loglevel=error; \
	 else npm ci --no-audit --no-fund --loglevel=error; fi'
	@touch $@

# checkov (tests/infra) pins older packages than .venv's, so it gets a venv of its own.
INFRA_VENV := .venv-infra
$(INFRA_VENV)/.stamp: requirements-infra.txt
	@$(LOCK) sh -c 'test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)'
	$(LOCK) $(INFRA_VENV)/bin/pip install --disable-pip-version-check -q -r requirements-infra.txt
	@touch $@

bootstrap: $(VENV)/.stamp node_modules/.stamp $(INFRA_VENV)/.stamp

# ruff also checks cyclomatic complexity (C901, product folders only: pyproject.toml); tools/budget.py
# checks the file and function lengths ruff has no rule for.
lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tools.budget

typecheck: $(VENV)/.stamp
	$(VENV)/bin/mypy

# 4 xdist workers, work-stealing: most tests wait on simulated Azure time, so even 2 cores keep 4 busy
# (full suite ~3.5 min vs ~8 min serial). PYTEST_ARGS comes last: PYTEST_ARGS="-n 0" runs serially.
pytest: bootstrap
	$(PY) -m pytest -n 4 --dist worksteal $(PYTEST_ARGS)

test: lint typecheck pytest

# Unit and orchestrator tests only (no local cloud, no devhost on the real app): under a minute on 2 cores.
# `make test` still runs everything; tests/conftest.py sets the `stack` marker.
test-fast: $(VENV)/.stamp $(INFRA_VENV)/.stamp
	$(PY) -m pytest -n 2 -m "not stack" $(PYTEST_ARGS)

demo: bootstrap
	$(PY) -m examples.demo

bench: bootstrap
	$(PY) -m bench

# The longer crash-and-fault chaos run (more captures, more kills; not part of `make test`).
# Replay a failure with the seed its message prints: make chaos CHAOS_SEED=<seed>
chaos: bootstrap
	CHAOS_LONG=1 CHAOS_SEED=$(CHAOS_SEED) $(PY) -m pytest -n 2 -rP tests/e2e/test_chaos_e2e.py $(PYTEST_ARGS)

# Regenerate docs/openapi.json from the wire models (tests/api fails while it is stale).
openapi: $(VENV)/.stamp
	$(PY) -m shared.openapi

clean:
	rm -rf .azsim .devhost .pytest_cache .mypy_cache .ruff_cache
