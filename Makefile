# Everything a user or CI runs. The first target that needs Python builds .venv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
# dg checks that the project's venv is the active one.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
INSTANCE := $(DAGSTER_HOME)/dagster.yaml

.PHONY: demo test lint typecheck defs pytest dev bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shadow-pipeline needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(INSTANCE): dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## The main job on the embedded default: start Redis, replay the synthetic market, show what landed.
demo: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline demo

## Lint, types, Dagster definitions, then the test suite (against a real Redis the tests start).
test: lint typecheck defs pytest

lint: $(STAMP)
	$(BIN)/ruff check shadow_pipeline shadow_pipeline_tests
	$(BIN)/ruff format --check shadow_pipeline shadow_pipeline_tests

typecheck: $(STAMP)
	$(BIN)/mypy

defs: $(STAMP) $(INSTANCE)
	$(BIN)/dg check defs

pytest: $(STAMP) $(INSTANCE)
	$(BIN)/pytest

## The Dagster UI with webserver and daemon, on $REDIS_URL or an embedded Redis that stops with it.
dev: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline with-redis -- $(BIN)/dagster dev -w workspace.yaml

## Throughput benchmarks, each as a ratio against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m shadow_pipeline_tests.bench

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts
