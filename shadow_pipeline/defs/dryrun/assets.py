"""Stage 4: the shadow's predictions, read back from Redis, against reality, window by window, with a MAPE gate."""

from collections.abc import Iterator
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from shadow_pipeline.defs.dryrun import checks
from shadow_pipeline.defs.partitions import hour_and_symbol, tick_partitions
from shadow_pipeline.domain.accuracy import compare
from shadow_pipeline.domain.actual_fills import simulation_from_fills
from shadow_pipeline.domain.kpis import iteration_kpis
from shadow_pipeline.domain.queue_replay import QueueOptions, queue_replay
from shadow_pipeline.domain.run_notes import RunNotesMissing, run_notes
from shadow_pipeline.domain.windows import hour_bounds
from shadow_pipeline.redis_io.dryrun_fills import BadFillEntry, read_fills
from shadow_pipeline.redis_io.keys import fills_stream, kpi_stream
from shadow_pipeline.redis_io.kpi_export import read_stream_records
from shadow_pipeline.reporting.accuracy import write_reports
from shadow_pipeline.resources import ArtifactsResource, RedisResource


class DryRunConfig(dg.Config):
    """Where reality comes from and how much of it to compare (docs/dry-run.md)."""

    reality: Literal["queue", "fills"] = Field(
        default="queue", description="queue: queue-aware replay of the same ticks; fills: dryrun:fills:{symbol}."
    )
    iterations: int | None = Field(default=None, ge=1, description="Compare only the newest N windows.")
    min_fills: int = Field(default=1, ge=0, description="Fills both sides need in a window to compare shares.")
    size_decrease_share: float = Field(
        default=0.0, ge=0, le=1, description="Queue replay: share of unexplained touch-size decreases ahead of us."
    )


@dg.asset(
    group_name="dryrun",
    partitions_def=tick_partitions,
    deps=["exported_kpis"],
    kinds={"redis", "numba", "pandas"},
    check_specs=checks.DRYRUN_CHECKS,
)
def dryrun_accuracy_report(
    context: dg.AssetExecutionContext,
    config: DryRunConfig,
    normalized_ticks: pd.DataFrame,
    shadow_iterations: pd.DataFrame,
    redis: RedisResource,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Per KPI: MAPE (and WPE, absolute error) of the shadow's window predictions against reality, medians
    predicted vs actual, PASS < 15 % / WARN 15-30 % / FAIL > 30 %.

    The predictions are read back from Redis (shadow:kpi:stream:{symbol}), as a downstream consumer sees them.
    Reality is a queue-aware replay of the same ticks and quotes, or the fills a real dry-run bot reported.
    """
    hour, symbol = hour_and_symbol(context.partition_key)
    partition = str(context.partition_key)
    try:
        run = run_notes(shadow_iterations)
    except RunNotesMissing as exc:
        raise dg.Failure(str(exc)) from None
    params, thresholds, window_seconds = run.params, run.thresholds, run.window_seconds
    client = redis.get_client(decode_responses=True)
    records = read_stream_records(
        client,
        symbol,
        partition=partition,
        profile=params.profile,
        window_seconds=window_seconds,
        params_digest=run.params_digest,
    )
    if not records:
        raise dg.Failure(
            f"no predictions for {partition} (profile {params.profile}, {window_seconds:g} s windows, these "
            f"parameters) in {kpi_stream(symbol)}: "
            "materialize exported_kpis with mode stream or both first"
        )
    predicted = pd.DataFrame(records)
    predicted["window_end"] = (
        pd.to_datetime(predicted["timestamp"], utc=True, format="ISO8601").dt.as_unit("ns").astype("int64")
    )
    if config.reality == "queue":
        reality = queue_replay(normalized_ticks, params, QueueOptions(size_decrease_share=config.size_decrease_share))
        source = f"queue-aware replay (size_decrease_share {config.size_decrease_share:g})"
    else:
        start, end = hour_bounds(hour)
        try:
            fills = read_fills(client, symbol, start, end)
            reality = simulation_from_fills(fills, normalized_ticks, params)
        except (BadFillEntry, ValueError) as exc:  # the bot's report is outside input: say what is wrong with it
            raise dg.Failure(f"{fills_stream(symbol)}: {exc}") from None
        source = f"{len(fills)} fills from {fills_stream(symbol)}"
    actual = iteration_kpis(normalized_ticks, reality, params, thresholds, window_seconds)
    try:
        accuracy = compare(predicted, actual, config.min_fills, config.iterations)
    except ValueError as exc:
        raise dg.Failure(f"{kpi_stream(symbol)}, {partition}: {exc}") from None
    predicted_fills = int(accuracy.windows["total_fills_predicted"].sum())
    actual_fills = int(accuracy.windows["total_fills_actual"].sum())
    notes = {
        "hour": hour,
        "symbol": symbol,
        "partition": partition,
        "profile": params.profile,
        "window_seconds": window_seconds,
        "reality": source,
        "predictions": f"{len(records)} records from {kpi_stream(symbol)}",
        "windows_compared": len(accuracy.windows),
        "predicted_fills": predicted_fills,
        "actual_fills": actual_fills,
    }
    path = write_reports(artifacts.dryrun_folder(hour, symbol), accuracy, notes)
    context.log.info(f"{symbol} {hour}: dry-run accuracy {accuracy.worst} against {source}")
    yield dg.Output(
        accuracy.table,
        metadata={
            "status": accuracy.worst,
            "accuracy": dg.MetadataValue.md(accuracy.table.to_markdown(index=False, floatfmt=".4g")),
            "windows_compared": dg.MetadataValue.int(len(accuracy.windows)),
            "predicted_fills": dg.MetadataValue.int(predicted_fills),
            "actual_fills": dg.MetadataValue.int(actual_fills),
            "reality": source,
            "report": dg.MetadataValue.path(str(path)),
        },
    )
    yield from checks.accuracy_gates(accuracy)
