"""Running the pipeline's jobs in this process on the project's instance (the CLI and the demo use it).

Runs land in $DAGSTER_HOME's instance when it is set, so `dagster dev` shows them; else in an ephemeral one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import redis

from shadow_pipeline.definitions import defs
from shadow_pipeline.domain.windows import HOUR_NS, hour_keys
from shadow_pipeline.jobs import PIPELINE_JOB, SHADOW_JOB
from shadow_pipeline.partitions import partition_key

DRYRUN_ASSET = "dryrun_accuracy_report"

SUMMARY_KPIS = ("valid_windows", "total_fills", "maker_taker_ratio", "net_bps", "p95_latency_ms", "risk_ratio")


def console_level() -> str:
    """Dagster's console logs for runs launched from the CLI: all of them with -v, else only the summary."""
    return "DEBUG" if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else "CRITICAL"


def project_instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def shadow_run_config(
    profile: str = "moderate",
    window_seconds: float = 60.0,
    min_windows: int | None = None,
    profiles_file: str | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {"profile": profile, "window_seconds": window_seconds}
    if min_windows is not None:
        config["min_windows"] = min_windows
    if profiles_file:
        config["profiles_file"] = profiles_file
    return {"ops": {"shadow_iterations": {"config": config}}}


def stream_hours(client: redis.Redis, stream: str) -> list[str]:
    """Every hour from the stream's first to its last tick (by ts_server), oldest first."""
    ends: list[Any] = [client.xrange(stream, count=1), client.xrevrange(stream, count=1)]
    stamps = [int(entries[0][1]["ts_server"]) for entries in ends if entries and "ts_server" in entries[0][1]]
    if not stamps:
        return []
    first, last = (min(stamps) // HOUR_NS) * HOUR_NS, max(stamps)
    return [str(h) for h in hour_keys(np.arange(first, last + 1, HOUR_NS, dtype=np.int64))]


def _failure_text(event: dg.DagsterEvent) -> str:
    error = event.step_failure_data.error
    return error.message.strip() if error else "step failed"


def _summary(result: dg.ExecuteInProcessResult, hour: str, symbol: str) -> dict[str, Any]:
    row: dict[str, Any] = {"hour": hour, "symbol": symbol, "run": "success" if result.success else "failed"}
    reports = result.asset_materializations_for_node("shadow_report")
    if reports:
        metadata = reports[0].metadata
        row["verdict"] = metadata["verdict"].value
        row.update({name: metadata[name].value for name in SUMMARY_KPIS if name in metadata})
        lines = str(metadata["reasons"].value).splitlines()
        row["reasons"] = "; ".join(line.removeprefix("- ") for line in lines)
    else:
        failures = [_failure_text(e) for e in result.all_events if e.is_step_failure]
        row["verdict"] = "no report"
        row["reasons"] = " | ".join(failures)[:300]
    return row


def run_shadow(
    hours: Sequence[str],
    symbols: Iterable[str],
    run_config: dict[str, Any],
    instance: dg.DagsterInstance,
    report_only: bool = False,
    console_log_level: str = "CRITICAL",
    export: bool = False,
) -> pd.DataFrame:
    """shadow_job per (hour, symbol) (with ``export`` also exported_kpis, from pipeline_job), or with
    ``report_only`` just shadow_report from stored iterations.

    A No-Go fails its run (blocking gates) but the report is stored first, so every row has a verdict. The runs'
    logs stay in the instance (the UI shows them); ``console_log_level`` is what also goes to stderr."""
    job = defs.resolve_job_def(PIPELINE_JOB if export else SHADOW_JOB)
    selection: list[dg.AssetKey] | None = None
    if report_only:
        selection = [dg.AssetKey("shadow_report")]
    elif export:
        selection = [key for key in job.asset_layer.executable_asset_keys if key != dg.AssetKey(DRYRUN_ASSET)]
    loggers = {"loggers": {"console": {"config": {"log_level": console_log_level}}}}
    rows = []
    for hour in hours:
        for symbol in symbols:
            result = job.execute_in_process(
                run_config=loggers if report_only else {**run_config, **loggers},
                partition_key=partition_key(hour, symbol),
                instance=instance,
                asset_selection=selection,
                raise_on_error=False,
            )
            rows.append(_summary(result, hour, symbol))
    return pd.DataFrame(rows)


def run_dryrun(
    hours: Sequence[str],
    symbols: Iterable[str],
    profile: str,
    window_seconds: float,
    iterations: int,
    reality: str,
    instance: dg.DagsterInstance,
    console_log_level: str = "CRITICAL",
) -> pd.DataFrame:
    """pipeline_job per (hour, symbol): the shadow's windows exported to Redis, read back, validated."""
    job = defs.resolve_job_def(PIPELINE_JOB)
    run_config = shadow_run_config(profile, window_seconds)
    run_config["ops"]["exported_kpis"] = {"config": {"mode": "both"}}
    run_config["ops"]["dryrun_accuracy_report"] = {"config": {"reality": reality, "iterations": iterations}}
    run_config["loggers"] = {"console": {"config": {"log_level": console_log_level}}}
    rows = []
    for hour in hours:
        for symbol in symbols:
            result = job.execute_in_process(
                run_config=run_config,
                partition_key=partition_key(hour, symbol),
                instance=instance,
                raise_on_error=False,
            )
            row: dict[str, Any] = {"hour": hour, "symbol": symbol, "run": "success" if result.success else "failed"}
            reports = result.asset_materializations_for_node(DRYRUN_ASSET)
            if reports:
                metadata = reports[0].metadata
                row["status"] = metadata["status"].value
                row["windows"] = metadata["windows_compared"].value
                row["fills_predicted"] = metadata["predicted_fills"].value
                row["fills_actual"] = metadata["actual_fills"].value
                row["report"] = metadata["report"].value
            else:
                row["status"] = "no report"
                row["report"] = " | ".join(_failure_text(e) for e in result.all_events if e.is_step_failure)[:300]
            rows.append(row)
    return pd.DataFrame(rows)
