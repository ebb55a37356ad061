# Everything a user or CI runs. The first target that needs Python builds .venv from pyproject.toml, with the
# optional hftbacktest extra (hbt: the dry-run's independent reality engine) and the scale-out parts (scale: PostgreSQL
# storage, celery); `pip install .` leaves them out.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
# Landing zone and asset storage (Parquet); a folder here, or an object-store URL.
export SHADOW_DATA_DIR ?= $(CURDIR)/.shadow_data
# Shadow reports for people and tools (POST_SHADOW_SNAPSHOT.json, SHADOW_REPORT.md, plots).
export SHADOW_ARTIFACTS_DIR ?= $(CURDIR)/artifacts
# dg checks that the project's venv is the active one.
export VIRTUAL_ENV := $(abspath $(VENV))
INSTANCE := $(DAGSTER_HOME)/dagster.yaml
# Exit codes. A verdict command exits 0 (Go, PASS/WARN), 1 (a verdict: No-Go, FAIL) or 2 (an error), but make
# exits 2 whenever a recipe fails, so both look alike. Each verdict target ends with $(RECORD), which also writes
# the command's own status to $(VERDICT_FILE) when it is set; `.ci/verdict TARGET ...` runs make with one and
# exits with that status (README, "Exit codes").
SAVE_STATUS = $(if $(VERDICT_FILE),echo $$status > '$(VERDICT_FILE)';)
RECORD = status=$$?; $(SAVE_STATUS) exit $$status

.PHONY: FORCE rollup demo loop test lint typecheck defs pytest dev ingest live-shadow ingest-job shadow-redis shadow-report shadow-audit shadow-ci \
	shadow-redis-export shadow-redis-export-stream shadow-tune dryrun dryrun-validate bench bench-partitions strategies soak clean \
	feed feed-server shadow-live-validate setup system-deps ci-dryrun

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shadow-pipeline needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,hbt,scale]'
	@touch $@

# The instance file: dagster.yaml, plus PostgreSQL storage when $$SHADOW_DAGSTER_PG_URL is set (checked reachable;
# docs/scaling.md). Rewritten by every target that needs it, since the variable may differ from the last make.
$(INSTANCE): dagster.yaml FORCE | $(STAMP)
	@$(BIN)/python -m shadow_pipeline.cli_instance --base dagster.yaml --out $@

FORCE:

## The venv and the Dagster instance, nothing else (CI's first step).
setup: $(STAMP) $(INSTANCE)

## System packages some tests need: Chromium (the UI tests) and promtool (the alert rules' tests). apt-get when
## root on Debian/Ubuntu; otherwise what to install, and a failure.
SYSTEM_DEPS := chromium:chromium prometheus:promtool
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do command -v $${dep#*:} > /dev/null || missing="$$missing $${dep%%:*}"; done; \
	if [ -z "$$missing" ]; then echo "system packages: all present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "error: missing system packages:$$missing; install them (as root on Debian: apt-get install$$missing)" >&2; exit 2; fi

## The main flow on the embedded default: start Redis, replay the synthetic market, ingest it through Dagster.
demo: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline demo

## The bot's loop on the embedded default: an example bot publishes its orders, the shadow fills them (profile
## external), a paper venue (hftbacktest) fills them too, and every order is reconciled (docs/reconciliation.md).
loop: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline loop

## The system packages the tests need (system-deps), lint, types, Dagster definitions, then the test suite
## (against a real Redis the tests start).
test: system-deps lint typecheck defs pytest

lint: $(STAMP)
	$(BIN)/ruff check shadow_pipeline shadow_pipeline_tests
	$(BIN)/ruff format --check shadow_pipeline shadow_pipeline_tests

typecheck: $(STAMP)
	$(BIN)/mypy

defs: $(STAMP) $(INSTANCE)
	$(BIN)/dg check defs

# The checkout on PYTHONPATH: the executor tests' step processes (multiprocess, celery) import the test modules.
pytest: $(STAMP) $(INSTANCE)
	PYTHONPATH=$(CURDIR) $(BIN)/pytest

## The Dagster UI with webserver and daemon, on $REDIS_URL or an embedded Redis that stops with it.
dev: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline with-redis -- $(BIN)/dagster dev -w workspace.yaml

## The ingest service: consume $(or $(STREAM),lob:ticks) until Ctrl-C/SIGTERM, metrics on :$(METRICS_PORT).
METRICS_PORT ?= 9108
ingest: $(STAMP)
	$(BIN)/shadow-pipeline ingest --metrics-port $(METRICS_PORT)

## The live shadow: each window's KPIs to shadow:live:kpi:* within a second of its close, until Ctrl-C/SIGTERM,
## metrics on :$(LIVE_METRICS_PORT) (docs/live-shadow.md).
LIVE_METRICS_PORT ?= 9109
live-shadow: $(STAMP)
	$(BIN)/shadow-pipeline with-redis -- $(BIN)/shadow-pipeline live-shadow --metrics-port $(LIVE_METRICS_PORT) \
	  --profile $(or $(PROFILE),moderate) --window-seconds $(or $(WINDOW_SECONDS),60) $(LIVE_FLAGS)

## `dg launch` of ingest_job for one partition. Without REDIS_URL: into a fresh embedded Redis filled with the
## synthetic market first (landing under .shadow_data/embedded, emptied first since that Redis starts empty).
PARTITION ?= 2024-08-09-00:00|BTCUSDT
EMBEDDED_DATA := $(CURDIR)/.shadow_data/embedded
ingest-job: $(STAMP) $(INSTANCE)
	$(if $(REDIS_URL),,rm -rf $(EMBEDDED_DATA))
	$(if $(REDIS_URL),,SHADOW_DATA_DIR=$(EMBEDDED_DATA)) $(BIN)/shadow-pipeline with-redis -- sh -c '\
	  $(if $(REDIS_URL),,$(BIN)/shadow-pipeline replay --source synthetic --minutes 10 > /dev/null && )\
	  $(BIN)/dg launch --job ingest_job --partition "$(PARTITION)"'

## Shadow Mode from the stream: ingest and simulate PROFILE per (hour, symbol), 60 s windows, gates, reports;
## exits 1 on a No-Go (a verdict), 2 on an error.
## Without REDIS_URL: a fresh embedded Redis filled with SHADOW_MINUTES of the synthetic market first (48 windows
## need 48 minutes; an hour fills the partition); data under .shadow_data/embedded (emptied first), which shadow-report then reads.
# PROFILE empty: ShadowConfig's default profile (moderate); windows are ShadowConfig's default (60 s).
# SHADOW_FLAGS: more `shadow` options, e.g. SHADOW_FLAGS='--min_lot 0.004' or '--touch_dwell_ms 250' (one parameter
# of the profile for this run, no new profiles file), '--export', '--window-seconds 30'.
PROFILE ?=
PROFILE_FLAG := $(if $(PROFILE),--profile $(PROFILE))
SHADOW_MINUTES ?= 60
SHADOW_RUN_DATA := $(if $(REDIS_URL),$(SHADOW_DATA_DIR),$(EMBEDDED_DATA))
shadow-redis: $(STAMP) $(INSTANCE)
	$(if $(REDIS_URL),,rm -rf $(EMBEDDED_DATA))
	$(BIN)/shadow-pipeline with-redis -- sh -c '\
	  $(if $(REDIS_URL),,$(BIN)/shadow-pipeline replay --source synthetic --minutes $(SHADOW_MINUTES) > /dev/null && )\
	  $(BIN)/shadow-pipeline shadow $(PROFILE_FLAG) --data-dir $(SHADOW_RUN_DATA) $(SHADOW_FLAGS)'; $(RECORD)

## A day of stored hours rolled up per instrument, and its profiles ranked side by side (after shadow-redis;
## docs/rollups.md): ROLLUP_REPORT.md, PROFILE_COMPARISON.md under artifacts/rollup/DAY/SYMBOL/.
DAY ?= 2024-08-09
SYMBOL ?= BTCUSDT
rollup: $(STAMP) $(INSTANCE)
	SHADOW_DATA_DIR=$(SHADOW_RUN_DATA) $(BIN)/dg launch --job rollup_job --partition "$(DAY)|$(SYMBOL)"

## The newest hour's shadow_report again from stored iterations (after shadow-redis): snapshot, Markdown, plot.
shadow-report: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline report --data-dir $(SHADOW_RUN_DATA); $(RECORD)

## Re-check the gates on every POST_SHADOW_SNAPSHOT.json under artifacts/ with the current profiles.
shadow-audit: $(STAMP)
	$(BIN)/shadow-pipeline audit; $(RECORD)

## CI gate: the newest hour's report (an error stops here), then the audit of every snapshot: exit 1 on any No-Go.
shadow-ci: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline report --data-dir $(SHADOW_RUN_DATA); status=$$?; [ $$status -le 1 ] || { $(SAVE_STATUS) exit $$status; }
	$(BIN)/shadow-pipeline audit; $(RECORD)

## The stored KPIs to Redis ($REDIS_URL; an embedded server would vanish with the command): hashes with a TTL,
## or one stream entry per window. Re-exporting adds nothing to a stream.
shadow-redis-export: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline export --mode hash --per-symbol --data-dir $(SHADOW_RUN_DATA)
shadow-redis-export-stream: $(STAMP) $(INSTANCE)
	$(BIN)/shadow-pipeline export --mode stream --data-dir $(SHADOW_RUN_DATA)

## Auto-tune PROFILE per symbol, walk-forward (docs/tuning.md): ingest every hour, tune the profile's tune.space
## on TUNE_TRAIN_HOURS, judge the winner on the next hour; ends with the summary table. STEP1_BASELINE_SUMMARY.md
## and TUNED_PROFILES.json land in artifacts/tune/<newest hour>/<symbol>/. A No-Go is reported, not an error of
## the target (the command itself exits 1 on it); 2 (an error) fails the target.
## Without REDIS_URL: a fresh embedded Redis filled with TUNE_MINUTES of the synthetic market first (two hours:
## one fold; each hour more is one fold more). TUNE_FLAGS: more options, e.g. --max-sets 30 or --min_lot 0.004.
TUNE_MINUTES ?= 120
TUNE_TRAIN_HOURS ?= 1
shadow-tune: $(STAMP) $(INSTANCE)
	$(if $(REDIS_URL),,rm -rf $(EMBEDDED_DATA))
	$(BIN)/shadow-pipeline with-redis -- sh -c '\
	  $(if $(REDIS_URL),,$(BIN)/shadow-pipeline replay --source synthetic --minutes $(TUNE_MINUTES) > /dev/null && )\
	  $(BIN)/shadow-pipeline tune $(PROFILE_FLAG) --train-hours $(TUNE_TRAIN_HOURS) --data-dir $(SHADOW_RUN_DATA) \
	    $(TUNE_FLAGS)'; $(RECORD)

## Dry-run validation: ingest, shadow, export, read back and compare with an independent reality (hftbacktest
## for the default queue-model shadow), per symbol;
## DRYRUN_WINDOWS windows of 60 s (dryrun: 6, dryrun-validate: 12). Without REDIS_URL: a fresh embedded Redis
## filled with DRYRUN_MINUTES of the synthetic market first. Exit 1 on any FAIL, 2 on an error.
DRYRUN_MINUTES ?= 15
define DRYRUN
	$(if $(REDIS_URL),,rm -rf $(EMBEDDED_DATA))
	$(BIN)/shadow-pipeline with-redis -- sh -c '\
	  $(if $(REDIS_URL),,$(BIN)/shadow-pipeline replay --source synthetic --minutes $(DRYRUN_MINUTES) > /dev/null && )\
	  $(BIN)/shadow-pipeline dryrun --iterations $(1) $(PROFILE_FLAG) --data-dir $(SHADOW_RUN_DATA)'; $(RECORD)
endef
dryrun: $(STAMP) $(INSTANCE)
	$(call DRYRUN,6)
dryrun-validate: $(STAMP) $(INSTANCE)
	$(call DRYRUN,12)

## Live (docs/live.md). The feed handler: VENUE's order books and trades for SYMBOLS into the tick stream until
## Ctrl-C/SIGTERM, metrics on :$(FEED_METRICS_PORT). FEED_FLAGS e.g. '--depth' (the depth stream too) or
## '--ws-url ws://127.0.0.1:PORT --rest-url http://127.0.0.1:PORT' (the local venue server of `make feed-server`).
VENUE ?= binance-usdm
SYMBOLS ?= BTCUSDT
FEED_METRICS_PORT ?= 9110
feed: $(STAMP)
	$(BIN)/shadow-pipeline feed --venue $(VENUE) --symbols $(SYMBOLS) --metrics-port $(FEED_METRICS_PORT) $(FEED_FLAGS)

## The local venue server, for a feed without network: the synthetic market (FEED_SERVER_FLAGS: '--recording FILE'
## for a recording) through VENUE's protocol, paced 1x; prints the URLs to give `make feed`.
feed-server: $(STAMP)
	$(BIN)/shadow-pipeline feed-server --venue $(VENUE) --symbols $(SYMBOLS) $(or $(FEED_SERVER_FLAGS),--synthetic-minutes 60 --speed 1)

## The seed's Step 7: feed, ingest and live shadow for LIVE_WINDOWS windows of LIVE_WINDOW_SECONDS on VENUE's
## SYMBOLS, then the dry-run's accuracy report, Go/No-Go and live-vs-batch check (exit 0 Go, 1 No-Go, 2 error).
## Without network (the default) against the local venue server playing the synthetic market in real time (48 x 10 s:
## about 9 minutes); VALIDATE_FLAGS='--network' for the venue itself, '--recording F' for a recording.
## Without REDIS_URL: a fresh embedded Redis, data under .shadow_data/embedded (emptied first).
LIVE_WINDOWS ?= 48
LIVE_WINDOW_SECONDS ?= 10
shadow-live-validate: $(STAMP) $(INSTANCE)
	$(if $(REDIS_URL),,rm -rf $(EMBEDDED_DATA))
	$(if $(REDIS_URL),,SHADOW_DATA_DIR=$(EMBEDDED_DATA)) $(BIN)/shadow-pipeline with-redis -- \
	  $(BIN)/shadow-pipeline live-validate --venue $(VENUE) --symbols $(SYMBOLS) --windows $(LIVE_WINDOWS) --window-seconds $(LIVE_WINDOW_SECONDS) \
	  $(PROFILE_FLAG) --logs $(SHADOW_ARTIFACTS_DIR)/live-validate $(VALIDATE_FLAGS); $(RECORD)

## CI's dry-run (.github/workflows/dryrun.yml runs this target; docs/ci.md): DURATION minutes of the synthetic
## market for SYMBOLS, feed_replay_job and pipeline_job per (hour, symbol) through `dagster job execute`, then the
## accuracy gate on the newest ITERATIONS windows: exit 0 PASS/WARN, 1 any FAIL, 2 an error (.ci/verdict tells
## them apart). On $REDIS_URL (empty) or an embedded Redis; data in .shadow_data/ci, reports in artifacts/ci
## (both emptied first).
ITERATIONS ?= 6
DURATION ?= 10
CI_DATA := $(CURDIR)/.shadow_data/ci
CI_ARTIFACTS := $(SHADOW_ARTIFACTS_DIR)/ci
ci-dryrun: $(STAMP) $(INSTANCE)
	rm -rf '$(CI_DATA)' '$(CI_ARTIFACTS)'
	SHADOW_DATA_DIR='$(CI_DATA)' SHADOW_ARTIFACTS_DIR='$(CI_ARTIFACTS)' SHADOW_SYMBOLS='$(SYMBOLS)' \
	  $(BIN)/shadow-pipeline with-redis -- $(BIN)/python -m shadow_pipeline.cli_ci \
	  --iterations '$(ITERATIONS)' --duration '$(DURATION)'; $(RECORD)

## Throughput benchmarks, each as a ratio against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m shadow_pipeline_tests.bench
	$(BIN)/python -m shadow_pipeline_tests.bench_shards

## Partition layouts at desk scale (500 instruments x 2 years): partition counts, the asset page's GraphQL timings and
## the sensor's tick on generated run history; not in `bench` (it takes a while). docs/partitions.md.
bench-partitions: $(STAMP)
	nice -n 10 $(BIN)/python -m shadow_pipeline_tests.bench_partitions $(BENCH_PARTITIONS_ARGS)

## The packaged strategies' KPIs side by side on the shared recordings, shadow and hftbacktest (docs/strategies.md).
strategies: $(STAMP)
	$(BIN)/python -m shadow_pipeline.reporting.strategies

## Ingest soak: 1 M ticks per scenario, 20 consumer SIGKILLs, Redis restarts with AOF; 0 lost, 0 duplicated
## (docs/ingest.md, "Claiming and completeness"). SOAK_ARGS=--short for the test suite's version.
soak: $(STAMP)
	$(BIN)/python -m shadow_pipeline_tests.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .shadow_data .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts
