"""Running the pipeline's jobs in this process on the project's instance (the CLI and the demo use it).

Every setting reaches the run as typed run config (``dg.RunConfig``: op config and resource config), so what a
command line option says is what the asset sees, and the run's config in the UI shows it. Runs land in
$DAGSTER_HOME's instance when it is set, so `dagster dev` shows them; else in an ephemeral one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dagster as dg
import numpy as np
import pandas as pd
import redis

from shadow_pipeline import settings
from shadow_pipeline.defs.dryrun.assets import DryRunConfig
from shadow_pipeline.defs.export.assets import ExportConfig
from shadow_pipeline.defs.ingest.jobs import INGEST_JOB
from shadow_pipeline.defs.live.checks import LIVE_MATCHES_BATCH
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.pipeline.jobs import PIPELINE_JOB
from shadow_pipeline.defs.reconcile.jobs import RECONCILE_JOB
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.defs.shadow.jobs import SHADOW_JOB
from shadow_pipeline.defs.tune.assets import TuneConfig
from shadow_pipeline.defs.tune.jobs import TUNE_JOB
from shadow_pipeline.domain.kpis.catalogue import SUMMARY, VALID_WINDOWS, names
from shadow_pipeline.domain.market.shards import shard_streams
from shadow_pipeline.domain.market.windows import HOUR_NS, hour_keys
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.redis_io.url import redact_text
from shadow_pipeline.resources import ArtifactsResource, LandingResource, TickStreamResource
from shadow_pipeline.summaries import DryRunSummary, ExportSummary, ReconcileSummary, ShadowSummary, TuneSummary

DRYRUN_ASSET = dg.AssetKey(DryRunSummary.ASSET)
EXPORT_ASSET = dg.AssetKey(ExportSummary.ASSET)
REPORT_ASSET = dg.AssetKey(ShadowSummary.ASSET)
TUNE_ASSET = dg.AssetKey(TuneSummary.ASSET)
RUN_FAILED = "run failed"  # the verdict column of a run that crashed: no verdict at all
ALL_PASS = "all gates pass"  # the reasons column of a verdict without any


class ErrorInfo(Protocol):
    """What a failed step or run reports about its error (Dagster's serializable error info, duck-typed: its
    class is not public API)."""

    @property
    def message(self) -> str: ...
    @property
    def cls_name(self) -> str | None: ...
    @property
    def cause(self) -> ErrorInfo | None: ...
    @property
    def context(self) -> ErrorInfo | None: ...


@functools.cache
def definitions() -> dg.Definitions:
    from shadow_pipeline.definitions import defs

    return defs()


def default(config: type[dg.Config], field: str) -> Any:
    """The default of a Config field, so that CLI options never restate it."""
    return config.model_fields[field].default


def console_level() -> str:
    """Dagster's console logs for runs launched from the CLI: all of them with -v, else only the summary."""
    return "DEBUG" if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else "CRITICAL"


def project_instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if settings.dagster_home() else dg.DagsterInstance.ephemeral()


@dataclass(frozen=True)
class Placement:
    """Where a command's runs read and write: the tick stream and the storage folders (None: the defaults)."""

    stream: str | None = None
    data_dir: str | None = None
    artifacts_dir: str | None = None

    def resources(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        if self.stream:
            chosen["tick_stream"] = TickStreamResource(stream=self.stream)
        if self.data_dir:
            chosen["landing"] = LandingResource.under(self.data_dir)
            chosen["io_manager"] = ParquetIOManager.under(self.data_dir)
        if self.artifacts_dir:
            chosen["artifacts"] = ArtifactsResource(base_path=self.artifacts_dir)
        return chosen


def run_config(
    placement: Placement, ops: dict[str, dg.Config] | None = None, log_level: str = "CRITICAL"
) -> dg.RunConfig:
    return dg.RunConfig(
        ops=ops or {},
        resources=placement.resources(),
        loggers={"console": {"config": {"log_level": log_level}}},
    )


def stream_hours(client: redis.Redis, stream: str) -> list[str]:
    """Every hour from the stream's first to its last tick (by ts_server), oldest first; over every shard of it
    ($SHADOW_STREAM_SHARDS; a malformed value raises its one-line SettingsError)."""
    ends: list[Any] = []
    for shard in shard_streams(stream, settings.stream_shards()):
        ends += [client.xrange(shard, count=1), client.xrevrange(shard, count=1)]
    stamps = [int(entries[0][1]["ts_server"]) for entries in ends if entries and "ts_server" in entries[0][1]]
    if not stamps:
        return []
    first, last = (min(stamps) // HOUR_NS) * HOUR_NS, max(stamps)
    return [str(h) for h in hour_keys(np.arange(first, last + 1, HOUR_NS, dtype=np.int64))]


def partition_keys(hours: Sequence[str], symbols: Iterable[str]) -> list[dg.MultiPartitionKey]:
    """Every (hour, symbol) key, checked before any run starts (PartitionOutOfRange names the range)."""
    return [partition_key(hour, symbol) for hour in hours for symbol in symbols]


def _root_message(error: ErrorInfo) -> str:
    """The innermost cause, on one line, URLs redacted: Dagster wraps an asset's exception in 'Error occurred
    while executing op ...' (as its ``__cause__``, or as the ``__context__`` of an error Dagster raised while
    handling it); a user exception's own ``__context__`` is not followed (it was handled)."""
    while True:
        below = error.cause or (error.context if (error.cls_name or "").startswith("Dagster") else None)
        if below is None:
            break
        error = below
    message = error.message
    if error.cls_name == "Failure":  # raised on purpose with a reason for people: the reason is the message
        message = message.split(": ", 1)[-1]
    return one_line(message)


def one_line(text: str) -> str:
    """``text`` with its whitespace runs collapsed and any URL redacted: safe for a table cell or stderr."""
    return " ".join(redact_text(text).split())


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Why a run failed: each failed step's root cause (else the run failure's), once each, redacted."""
    errors = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
    if not any(errors):
        errors = [e.event_specific_data.error for e in result.all_events if e.is_run_failure]  # type: ignore[union-attr]
    texts = [_root_message(error) for error in errors if error is not None]
    return " | ".join(dict.fromkeys(t for t in texts if t))[:300] or "run failed"


def _row(key: dg.MultiPartitionKey, result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    keys = key.keys_by_dimension
    return {"hour": keys["hour"], "symbol": keys["symbol"], "run": "success" if result.success else "failed"}


def _shadow_row(key: dg.MultiPartitionKey, result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    row = _row(key, result)
    summary = ShadowSummary.of(result)
    if summary is None:
        return {**row, "verdict": RUN_FAILED, "reasons": _failure_text(result)}
    row["verdict"] = summary.verdict
    shown = sorted(names(SUMMARY), key=lambda name: name != VALID_WINDOWS.name)  # the count a verdict needs first
    row.update({name: _number(summary.kpis[name]) for name in shown if name in summary.kpis})
    row["knob_flips"] = summary.knob_flips  # would the verdict change across the fill model's knob?
    row["reasons"] = _reasons(summary.reasons)
    return row


def _number(value: float | None) -> float:
    return float("nan") if value is None else value


def _reasons(reasons: Sequence[str]) -> str:
    return "; ".join(reasons) or ALL_PASS


def _execute(
    job_name: str,
    keys: Sequence[dg.MultiPartitionKey],
    config: dg.RunConfig,
    instance: dg.DagsterInstance,
    selection: Sequence[dg.AssetKey] | None = None,
) -> list[tuple[dg.MultiPartitionKey, dg.ExecuteInProcessResult]]:
    job = definitions().resolve_job_def(job_name)
    return [
        (
            key,
            job.execute_in_process(
                run_config=config,
                partition_key=key,
                instance=instance,
                asset_selection=list(selection) if selection is not None else None,
                raise_on_error=False,
            ),
        )
        for key in keys
    ]


def run_shadow(
    keys: Sequence[dg.MultiPartitionKey],
    shadow: ShadowConfig,
    placement: Placement,
    instance: dg.DagsterInstance,
    log_level: str = "CRITICAL",
    export: ExportConfig | None = None,
) -> pd.DataFrame:
    """shadow_job per partition (with ``export`` also exported_kpis, from pipeline_job): one summary row each.

    A No-Go is a successful run with failed gate checks; a run that crashed has the verdict ``run failed``."""
    ops: dict[str, dg.Config] = {"shadow_iterations": shadow}
    job, selection = SHADOW_JOB, None
    if export is not None:
        ops["exported_kpis"] = export
        job = PIPELINE_JOB
        pipeline = definitions().resolve_job_def(PIPELINE_JOB)
        selection = [k for k in pipeline.asset_layer.executable_asset_keys if k != DRYRUN_ASSET]
    results = _execute(job, keys, run_config(placement, ops, log_level), instance, selection)
    return pd.DataFrame([_shadow_row(key, result) for key, result in results])


def run_report(
    keys: Sequence[dg.MultiPartitionKey], placement: Placement, instance: dg.DagsterInstance, log_level: str
) -> pd.DataFrame:
    """shadow_report again from stored shadow_iterations and fill_sensitivity (no ingest, no simulation)."""
    results = _execute(SHADOW_JOB, keys, run_config(placement, {}, log_level), instance, [REPORT_ASSET])
    return pd.DataFrame([_shadow_row(key, result) for key, result in results])


def run_export(
    keys: Sequence[dg.MultiPartitionKey],
    export: ExportConfig,
    placement: Placement,
    instance: dg.DagsterInstance,
    log_level: str,
) -> pd.DataFrame:
    """exported_kpis for stored partitions: the same asset, checks and schema validation as the pipeline's."""
    results = _execute(
        PIPELINE_JOB, keys, run_config(placement, {"exported_kpis": export}, log_level), instance, [EXPORT_ASSET]
    )
    rows = []
    for key, result in results:
        row = _row(key, result)
        summary = ExportSummary.of(result)
        if summary is not None:
            row["written"] = ", ".join(f"{mode} {count}" for mode, count in summary.written.items())
            row["keys"] = ", ".join(summary.keys.values())
        else:
            row["keys"] = _failure_text(result)
        rows.append(row)
    return pd.DataFrame(rows)


def run_dryrun(
    keys: Sequence[dg.MultiPartitionKey],
    shadow: ShadowConfig,
    dryrun: DryRunConfig,
    placement: Placement,
    instance: dg.DagsterInstance,
    log_level: str = "CRITICAL",
) -> pd.DataFrame:
    """pipeline_job per partition: the shadow's windows exported to Redis, read back, validated."""
    ops: dict[str, dg.Config] = {
        "shadow_iterations": shadow,
        "exported_kpis": ExportConfig(mode="both"),
        "dryrun_accuracy_report": dryrun,
    }
    rows = []
    for key, result in _execute(PIPELINE_JOB, keys, run_config(placement, ops, log_level), instance):
        row = _row(key, result)
        summary = DryRunSummary.of(result)
        if summary is not None:
            row["status"] = summary.status
            row["windows"] = summary.windows
            row["fills_predicted"] = summary.predicted_fills
            row["fills_actual"] = summary.actual_fills
            row["no_data"] = f"{len(summary.no_data)}: {', '.join(summary.no_data)}" if summary.no_data else "0"
            row["not_judged"] = ", ".join(summary.not_judged) or "none"
            row["report"] = summary.report
        else:
            row["status"] = RUN_FAILED
            row["report"] = _failure_text(result)
        row["live_vs_batch"] = live_vs_batch(result)
        rows.append(row)
    return pd.DataFrame(rows)


def live_vs_batch(result: dg.ExecuteInProcessResult) -> str:
    """The run's ``live_windows_match_batch`` outcome in a few words: how many live windows, and whether they equal
    the partition's rows (no live shadow ran: "no live windows")."""
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == LIVE_MATCHES_BATCH:
            windows = evaluation.metadata.get("live_windows")
            count = int(windows.value) if windows is not None else 0  # type: ignore[arg-type]
            if not count:
                return "no live windows"
            return f"{count} live windows " + ("equal" if evaluation.passed else "DIFFER")
    return "not checked"


RECONCILED = ("precision", "recall", "net_bps_gap", "shadow_net_bps", "real_net_bps", "brier", "orders")


def run_reconcile(
    keys: Sequence[dg.MultiPartitionKey],
    shadow: ShadowConfig,
    dryrun: DryRunConfig,
    placement: Placement,
    instance: dg.DagsterInstance,
    log_level: str = "CRITICAL",
) -> pd.DataFrame:
    """reconcile_job per partition (a bot's orders, profile strategy external): the shadow's verdict, the
    per-window dry-run status and the per-order reconciliation's headline numbers and failed gates."""
    ops: dict[str, dg.Config] = {
        "shadow_iterations": shadow,
        "exported_kpis": ExportConfig(mode="both"),
        "dryrun_accuracy_report": dryrun,
    }
    rows = []
    for key, result in _execute(RECONCILE_JOB, keys, run_config(placement, ops, log_level), instance):
        row = _row(key, result)
        verdict, dry, reconciled = ShadowSummary.of(result), DryRunSummary.of(result), ReconcileSummary.of(result)
        row["verdict"] = verdict.verdict if verdict else RUN_FAILED
        row["dryrun"] = dry.status if dry else RUN_FAILED
        if reconciled is None:
            row["gates"] = RUN_FAILED
            row["report"] = _failure_text(result)
        else:
            row.update({name: _number(reconciled.numbers.get(name)) for name in RECONCILED})
            row["gates"] = "; ".join(reconciled.failed) or ALL_PASS
            row["report"] = reconciled.report
        rows.append(row)
    return pd.DataFrame(rows)


def run_tune(
    keys: Sequence[dg.MultiPartitionKey],
    tune: TuneConfig,
    placement: Placement,
    instance: dg.DagsterInstance,
    log_level: str = "CRITICAL",
) -> pd.DataFrame:
    """ingest_job for every (hour, symbol), then tune_job per symbol at its newest hour, on those hours only
    (``period_of`` checks that they fit one tuning period before anything runs).

    One row per symbol; a symbol whose ingest failed is not tuned (its row says why)."""
    by_symbol: dict[str, list[dg.MultiPartitionKey]] = {}
    for key in keys:
        by_symbol.setdefault(key.keys_by_dimension["symbol"], []).append(key)
    ingested = dict(_execute(INGEST_JOB, keys, run_config(placement, {}, log_level), instance))
    rows = []
    for symbol, symbol_keys in by_symbol.items():
        ordered = sorted(symbol_keys, key=lambda k: k.keys_by_dimension["hour"])
        newest = ordered[-1]
        failed = [k for k in ordered if not ingested[k].success]
        row: dict[str, Any] = {"hour": newest.keys_by_dimension["hour"], "symbol": symbol, "hours": len(ordered)}
        if failed:
            rows.append({**row, "run": "failed", "verdict": RUN_FAILED, "reasons": _failure_text(ingested[failed[0]])})
            continue
        config = tune.model_copy(update={"hours": [k.keys_by_dimension["hour"] for k in ordered]})
        ops: dict[str, dg.Config] = {"tuned_profile": config}
        [(_, result)] = _execute(TUNE_JOB, [newest], run_config(placement, ops, log_level), instance)
        rows.append({**row, **_tune_row(result)})
    return pd.DataFrame(rows)


def _tune_row(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    summary = TuneSummary.of(result)
    if summary is None:
        return {"run": "failed", "verdict": RUN_FAILED, "reasons": _failure_text(result)}
    objective = summary.objective
    return {
        "run": "success",
        "verdict": summary.verdict,
        f"base_out_of_sample_{objective}": _number(summary.base_out_of_sample),
        f"in_sample_{objective}": _number(summary.in_sample),
        f"out_of_sample_{objective}": _number(summary.out_of_sample),
        "pbo": _number(summary.pbo),
        "max_pbo": summary.max_pbo,
        "judged_hours": summary.judged_hours,
        "folds": summary.folds,
        "out_of_sample_valid_windows": summary.out_of_sample_valid_windows,
        "sets_evaluated": summary.sets_evaluated,
        "sets_per_second": _number(summary.sets_per_second),
        "live_ready": summary.live_ready,
        "summary": summary.summary,
        "reasons": _reasons(summary.reasons),
    }


def verdict_exit_code(table: pd.DataFrame, column: str, passing: Iterable[str]) -> int:
    """0 when every row passes, 1 when a verdict says no, 2 when a run crashed (no verdict): the CLI's contract."""
    if table.empty:
        return 0
    if crashed(table, column).any():
        return 2
    return 0 if table[column].isin(list(passing)).all() else 1


def crashed(table: pd.DataFrame, column: str | None = None) -> pd.Series:
    """The rows whose run failed (or, with ``column``, that have the verdict ``run failed``)."""
    if table.empty:
        return pd.Series([], dtype=bool)
    failed = table["run"] == "failed"
    return failed | (table[column] == RUN_FAILED) if column and column in table else failed


def crash_summary(table: pd.DataFrame, reason_column: str, column: str | None = None) -> str | None:
    """One line for stderr when runs crashed: how many, which partitions, and their distinct reasons."""
    rows = table[crashed(table, column)]
    if rows.empty:
        return None
    where = ", ".join(f"{row.hour} {row.symbol}" for row in rows.itertuples())
    reasons = " | ".join(dict.fromkeys(one_line(str(r)) for r in rows.get(reason_column, pd.Series(dtype=str))))
    return f"{len(rows)} of {len(table)} runs failed ({where}): {reasons or 'run failed'}"
