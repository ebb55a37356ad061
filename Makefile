# Everything a user or CI runs. The first target that needs Python builds .venv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
# Landing zone and asset storage (Parquet); a folder here, or an object-store URL.
export SHADOW_DATA_DIR ?= $(CURDIR)/.shadow_data
# dg checks that the project's venv is the active one.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
INSTANCE := $(DAGSTER_HOME)/dagster.yaml

.PHONY: demo test lint typecheck defs pytest dev ingest ingest-job bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shadow-pipeline needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(INSTANCE): dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## The main flow on the embedded default: start Redis, replay the synthetic market, ingest it through Dagster.
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

## The ingest service: consume $(or $(STREAM),lob:ticks) until Ctrl-C/SIGTERM, metrics on :$(METRICS_PORT).
METRICS_PORT ?= 9108
ingest: $(STAMP)
	$(BIN)/shadow-pipeline ingest --metrics-port $(METRICS_PORT)

## `dg launch` of ingest_job for one partition. Without REDIS_URL: into a fresh embedded Redis filled with the
## synthetic market first (landing under .shadow_data/embedded, emptied first since that Redis starts empty).
PARTITION ?= 2024-08-09-00:00|BTCUSDT
EMBEDDED_DATA := $(CURDIR)/.shadow_data/embedded
ingest-job: $(STAMP) $(INSTANCE)
	$(if $(REDIS_URL),,rm -rf $(EMBEDDED_DATA))
	$(if $(REDIS_URL),,SHADOW_DATA_DIR=$(EMBEDDED_DATA)) $(BIN)/shadow-pipeline with-redis -- sh -c '\
	  $(if $(REDIS_URL),,$(BIN)/shadow-pipeline replay --source synthetic --minutes 10 > /dev/null && )\
	  $(BIN)/dg launch --job ingest_job --partition "$(PARTITION)"'

## Throughput benchmarks, each as a ratio against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m shadow_pipeline_tests.bench

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .shadow_data .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts
