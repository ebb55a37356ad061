"""Stage 3: the shadow KPIs exported to Redis, where dashboards and the live bot's risk manager read them."""

from collections.abc import Iterator
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from shadow_pipeline.defs.partitions import tick_partitions
from shadow_pipeline.defs.units import PartitionValue, run_units, unit_key
from shadow_pipeline.domain.kpis.records import KpiRecordError
from shadow_pipeline.domain.kpis.run_notes import RunNotesMissing, run_notes
from shadow_pipeline.redis_io.kpi_export import DEFAULT_STREAM_MAXLEN, DEFAULT_TTL_SECONDS, export_partition
from shadow_pipeline.reporting.kpi_metrics import MetricsError, check_sinks, kpi_metrics, publish
from shadow_pipeline.resources import RedisResource
from shadow_pipeline.summaries import ExportSummary

ExportMode = Literal["hash", "stream", "both"]  # the CLI's --mode offers these too


class ExportConfig(dg.Config):
    """How the KPIs go to Redis (docs/dry-run.md: hash vs stream)."""

    mode: ExportMode = Field(default="both", description="hash: latest per symbol; stream: one entry per window; both.")
    per_symbol: bool = Field(default=True, description="Hash mode: also shadow:kpi:{symbol}, one field per KPI.")
    ttl_seconds: int = Field(
        default=DEFAULT_TTL_SECONDS, ge=1, le=366 * 24 * 3600, description="Expiry of the hashes (at most a year)."
    )
    maxlen: int = Field(
        default=DEFAULT_STREAM_MAXLEN, ge=1, le=1_000_000_000, description="Stream mode: MAXLEN ~ per symbol."
    )
    textfile_dir: str | None = Field(
        default=None,
        description="Also write the KPI metrics to this node_exporter textfile directory (an existing one), one "
        ".prom file per instrument and profile (docs/metrics.md). Default: none.",
    )
    pushgateway: str | None = Field(
        default=None,
        description="Also push the KPI metrics to this Prometheus pushgateway (http://host:port), grouped by "
        "instrument and profile. Default: none.",
    )


@dg.asset(group_name="export", partitions_def=tick_partitions, kinds={"redis"})
def exported_kpis(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    shadow_iterations: PartitionValue,
    shadow_report: PartitionValue,
    redis: RedisResource,
) -> Iterator[dg.MaterializeResult]:
    """The partition's KPIs in Redis: the report's aggregate in shadow:kpi:all and shadow:kpi:{symbol} (with a
    TTL), and one entry per window in shadow:kpi:stream:{symbol} (re-exporting adds nothing).

    Every record is validated against the shipped JSON Schema first; an invalid one fails the run and nothing
    of the partition is written. Exported whatever the Go/No-Go verdict: readers see a No-Go too.

    When configured, the report's KPIs, thresholds and verdict also go to Prometheus (a textfile, a
    pushgateway; docs/metrics.md) after Redis, the record of truth: a sink that fails then fails the run, which
    says that Redis holds the KPIs (re-running adds no stream entry), so a missing metric never passes unseen.
    """
    yield from run_units(
        context,
        lambda hour, symbol, given: [
            _export_unit(context, config, given["shadow_iterations"], given["shadow_report"], hour, symbol, redis)
        ],
        {"shadow_iterations": shadow_iterations, "shadow_report": shadow_report},
    )


def _export_unit(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    shadow_iterations: pd.DataFrame,
    shadow_report: pd.DataFrame,
    hour: str,
    symbol: str,
    redis: RedisResource,
) -> dg.MaterializeResult:
    if shadow_iterations.empty or shadow_report.empty:
        raise dg.Failure("shadow_iterations has no windows for this partition: nothing to export")
    partition = unit_key(hour, symbol)
    report = {str(k): v for k, v in shadow_report.iloc[0].items()}
    try:
        check_sinks(config.textfile_dir, config.pushgateway)  # a bad directory or URL, before any write
        metrics = kpi_metrics(report, run_notes(shadow_iterations).thresholds)
        results = export_partition(
            redis.get_client(decode_responses=True),
            shadow_iterations,
            report,
            config.mode,
            config.per_symbol,
            config.ttl_seconds,
            config.maxlen,
        )
    except (KpiRecordError, RunNotesMissing, MetricsError) as exc:
        raise dg.Failure(str(exc)) from None
    sent, failures = publish(metrics, config.textfile_dir, config.pushgateway)
    if failures:
        raise dg.Failure(f"{partition}: KPIs written to Redis, but {'; '.join(failures)}")
    metadata: dict[str, dg.MetadataValue] = {}
    for result in results:
        metadata[f"{result.mode}_keys"] = dg.MetadataValue.text(", ".join(result.keys))
        metadata[f"{result.mode}_records_written"] = dg.MetadataValue.int(result.written)
        if result.mode == "stream":
            metadata["stream_records_already_there"] = dg.MetadataValue.int(result.skipped)
    summary = ExportSummary(
        written={r.mode: r.written for r in results}, keys={r.mode: ", ".join(r.keys) for r in results}
    )
    context.log.info(f"exported {len(shadow_iterations)} windows of {partition} to {redis.describe()}")
    return dg.MaterializeResult(
        metadata={
            "mode": config.mode,
            "windows": dg.MetadataValue.int(len(shadow_iterations)),
            **({"metrics_sent_to": dg.MetadataValue.text(", ".join(sent))} if sent else {}),
            **metadata,
            **summary.metadata(),
        }
    )
