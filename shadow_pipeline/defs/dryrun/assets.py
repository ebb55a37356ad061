"""Stage 4: the shadow's predictions, read back from Redis, against reality, window by window, with a MAPE gate."""

from collections.abc import Iterator
from typing import Annotated, Literal

import dagster as dg
import numpy as np
import pandas as pd
import redis
from pydantic import Field

from shadow_pipeline.defs.dryrun import checks
from shadow_pipeline.defs.partitions import tick_partitions
from shadow_pipeline.defs.units import PartitionValue, run_units, unit_key
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.kpis.run_notes import RunNotesMissing, run_notes
from shadow_pipeline.domain.market.windows import hour_bounds
from shadow_pipeline.domain.simulation.models import QueueAware, fee_model_of, fill_model_of, latency_model_of
from shadow_pipeline.domain.simulation.order_engine import simulate_orders
from shadow_pipeline.domain.simulation.shadow import is_external
from shadow_pipeline.domain.simulation.simulator import run
from shadow_pipeline.domain.strategies.external.intents import Grid
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import StrategyParams, setting_range
from shadow_pipeline.domain.validation.accuracy import compare
from shadow_pipeline.domain.validation.actual_fills import simulation_from_fills
from shadow_pipeline.domain.validation.depth_events import depth_events
from shadow_pipeline.domain.validation.hftbacktest_engine import HftbacktestMissing, hftbacktest_replay
from shadow_pipeline.domain.validation.paper_venue import match_orders
from shadow_pipeline.domain.validation.queue_fit import QueueFit, fit_queue
from shadow_pipeline.redis_io.depth_stream import BadDepthEntry, read_depth
from shadow_pipeline.redis_io.dryrun_fills import BadFillEntry, read_fills
from shadow_pipeline.redis_io.keys import depth_stream, fills_stream, kpi_stream
from shadow_pipeline.redis_io.kpi_export import read_stream_records
from shadow_pipeline.redis_io.order_stream import load_intents
from shadow_pipeline.reporting.accuracy import write_reports
from shadow_pipeline.resources import ArtifactsResource, RedisResource
from shadow_pipeline.summaries import DryRunSummary

Reality = Literal["auto", "hftbacktest", "queue", "fills"]  # the CLI's --reality offers these too
QueueModel = Literal["risk_averse", "power", "log"]
Depth = Literal["auto", "off", "required"]
TOP_OF_BOOK = "top of book: normalized_ticks"


class DryRunConfig(dg.Config):
    """Where reality comes from and how much of it to compare (docs/dry-run.md)."""

    reality: Reality = Field(
        default="auto",
        description="auto: hftbacktest when the shadow runs the queue model, else the queue model; hftbacktest: "
        "hftbacktest's engine on the same ticks (extra hbt); queue: our queue-aware engine (only against a dwell "
        "shadow); fills: a real bot's fills from dryrun:fills:{symbol}.",
    )
    queue_model: QueueModel = Field(
        default="risk_averse", description="hftbacktest's queue model: risk-averse, or probabilistic (power, log)."
    )
    depth: Depth = Field(
        default="auto",
        description="The hftbacktest reality's book: auto: the full L2 book of lob:depth:{symbol} when it has "
        "entries for the hour, else the ticks' top of book; off: top of book; required: full depth or fail.",
    )
    iterations: int | None = Field(default=None, ge=1, le=1_000_000, description="Compare only the newest N windows.")
    min_fills: int = Field(
        default=1, ge=0, le=1_000_000, description="Fills both sides need in a window to compare shares."
    )
    size_decrease_share: Annotated[
        float, Field(**setting_range("params", "fill.size_decrease_share").constraints())
    ] = Field(
        default=0.0,
        description="Reality queue: share of unexplained touch-size decreases ahead of us.",
    )


def _reality_of(config: DryRunConfig, params: StrategyParams) -> str:
    """The reality source; never the shadow's own model, whose comparison with itself could not fail. A bot's
    own orders (strategy external) are checked against its fills by default: that is what it has them for."""
    model = fill_model_of(params)
    if config.reality == "auto":
        return "fills" if is_external(params) else model.reality
    if config.reality == model.name:
        raise dg.Failure(
            f"reality {config.reality!r} is the shadow's own fill model ({model.name}): the dry-run would compare "
            f"the model with itself. Use reality {model.reality} (the default for a {model.name} shadow) or fills "
            "(a real bot's fills)."
        )
    return config.reality


def _bot_plan(client: redis.Redis, params: StrategyParams, hour: str) -> OrderPlan:
    """The bot's orders of the hour (strategy external), for an engine reality to fill them too."""
    loaded = load_intents(client, params.symbol, Grid(params.symbol, params.tick_size, params.lot_step))
    return loaded.checked.plan.decided_within(*hour_bounds(hour))


def _depth_of(
    mode: Depth, client: redis.Redis, symbol: str, hour: str, ticks: pd.DataFrame, params: StrategyParams
) -> tuple[np.ndarray | None, str]:
    """hftbacktest's depth events for the partition (None: the ticks' top of book) and the reality's input line.

    A depth stream that is there but wrong fails the run (in auto mode too): a reality on a wrong book would be
    judged as if it were right; ``depth: off`` runs on the ticks alone.
    """
    if mode == "off":
        return None, f"{TOP_OF_BOOK} (depth off)"
    start, end = hour_bounds(hour)
    try:
        read = read_depth(client, symbol, start, end)
        if read is None:
            if mode == "required":
                raise dg.Failure(
                    f"depth required, but {depth_stream(symbol)} has no entries for {hour}: publish the book "
                    "(shadow-pipeline replay --depth, or the feed handler) or run with depth auto/off"
                )
            return None, f"{TOP_OF_BOOK} (no depth stream)"
        return depth_events(read.levels, ticks, params), read.describe()
    except BadDepthEntry as exc:  # names the stream and the entry
        raise dg.Failure(str(exc)) from None
    except ValueError as exc:  # a book that cannot be this instrument's (off its tick grid, say)
        raise dg.Failure(f"{depth_stream(symbol)}: {exc}") from None


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
    normalized_ticks: PartitionValue,
    shadow_iterations: PartitionValue,
    redis: RedisResource,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Per KPI: MAPE (and WPE, absolute error) of the shadow's window predictions against reality, medians
    predicted vs actual, PASS < 15 % / WARN 15-30 % / FAIL > 30 %; NO DATA (too few events) and NOT JUDGED
    (latency under an engine reality, which runs the shadow's own latency model) are counted apart.

    The predictions are read back from Redis (shadow:kpi:stream:{symbol}), as a downstream consumer sees them.
    Reality is an independent engine on the same ticks and strategy (hftbacktest for the default queue-model
    shadow, our queue-aware engine for a dwell shadow), or the fills a real dry-run bot reported, to which the
    queue model's unknowns are then fitted. The report says which pair was compared.
    """
    yield from run_units(
        context,
        lambda hour, symbol, given: _accuracy_unit(
            context, config, given["normalized_ticks"], given["shadow_iterations"], hour, symbol, redis, artifacts
        ),
        {"normalized_ticks": normalized_ticks, "shadow_iterations": shadow_iterations},
    )


def _accuracy_unit(
    context: dg.AssetExecutionContext,
    config: DryRunConfig,
    normalized_ticks: pd.DataFrame,
    shadow_iterations: pd.DataFrame,
    hour: str,
    symbol: str,
    redis: RedisResource,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    partition = unit_key(hour, symbol)
    try:
        shadow_run = run_notes(shadow_iterations)
    except RunNotesMissing as exc:
        raise dg.Failure(str(exc)) from None
    params, thresholds, window_seconds = shadow_run.params, shadow_run.thresholds, shadow_run.window_seconds
    client = redis.get_client(decode_responses=True)
    records = read_stream_records(
        client,
        symbol,
        partition=partition,
        profile=params.profile,
        window_seconds=window_seconds,
        params_digest=shadow_run.params_digest,
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
    source_name = _reality_of(config, params)
    if config.depth == "required" and source_name != "hftbacktest":
        raise dg.Failure(f"depth required, but only the hftbacktest reality runs on depth (reality: {source_name})")
    fit: QueueFit | None = None
    plan = _bot_plan(client, params, hour) if is_external(params) else None
    reality_input = f"{TOP_OF_BOOK} (the {source_name} reality reads no depth)"
    if source_name == "hftbacktest":
        try:
            depth, reality_input = _depth_of(config.depth, client, symbol, hour, normalized_ticks, params)
            if plan is None:
                reality = hftbacktest_replay(normalized_ticks, params, config.queue_model, depth=depth)
            else:  # the bot's own orders, matched by hftbacktest as the paper venue does
                latency, fees = latency_model_of(params), fee_model_of(params)
                matched = match_orders(plan, normalized_ticks, params, latency, fees, config.queue_model, events=depth)
                reality = simulation_from_fills(matched, normalized_ticks, params)
        except HftbacktestMissing as exc:
            raise dg.Failure(str(exc)) from None
        source = f"hftbacktest 2.4.4 ({config.queue_model.replace('_', '-')} queue, no partial fills) " + (
            f"quoting {params.strategy}" if plan is None else f"matching the bot's {len(plan)} orders"
        )
    elif source_name == "queue":
        queue = QueueAware(config.size_decrease_share)
        latency, fees = latency_model_of(params), fee_model_of(params)
        if plan is None:
            reality = run(normalized_ticks, params, queue, latency, fees)
        else:
            reality = simulate_orders(normalized_ticks, plan, params, queue, latency, fees).simulation
        source = f"our queue-aware engine, {queue.label}, " + (
            f"quoting {params.strategy}" if plan is None else f"filling the bot's {len(plan)} orders"
        )
    else:
        start, end = hour_bounds(hour)
        try:
            fills = read_fills(client, symbol, start, end)
            reality = simulation_from_fills(fills, normalized_ticks, params)
        except (BadFillEntry, ValueError) as exc:  # the bot's report is outside input: say what is wrong with it
            raise dg.Failure(f"{fills_stream(symbol)}: {exc}") from None
        source = f"{len(fills)} fills from {fills_stream(symbol)}"
        reality_input = f"a bot's fills: {fills_stream(symbol)}"
    actual = iteration_kpis(normalized_ticks, reality, params, thresholds, window_seconds)
    if source_name == "fills":
        fit = fit_queue(normalized_ticks, params, thresholds, window_seconds, actual, plan=plan)
        context.log.info(f"{symbol} {hour}: the queue model fits the bot's fills best at {fit.summary}")
    try:
        accuracy = compare(
            predicted, actual, config.min_fills, config.iterations, engine_reality=source_name != "fills"
        )
    except ValueError as exc:
        raise dg.Failure(f"{kpi_stream(symbol)}, {partition}: {exc}") from None
    predicted_fills = int(accuracy.windows["total_fills_predicted"].sum())
    actual_fills = int(accuracy.windows["total_fills_actual"].sum())
    notes = {
        "hour": hour,
        "symbol": symbol,
        "partition": partition,
        "profile": params.profile,
        "strategy": params.strategy,  # the shadow's, which an engine reality (hftbacktest, queue) ran too
        "window_seconds": window_seconds,
        "shadow": shadow_run.fill_model,
        "reality": source,
        "reality_input": reality_input,
        "compared": f"shadow {shadow_run.fill_model} against {source}",
        "predictions": f"{len(records)} records from {kpi_stream(symbol)}",
        "windows_compared": len(accuracy.windows),
        "predicted_fills": predicted_fills,
        "actual_fills": actual_fills,
    }
    if fit is not None:
        notes["queue_fit"] = fit.summary
    path = write_reports(artifacts.dryrun_folder(hour, symbol), accuracy, notes)
    context.log.info(f"{symbol} {hour}: dry-run accuracy {accuracy.worst} against {source} on {reality_input}")
    summary = DryRunSummary(
        status=accuracy.worst,
        windows=len(accuracy.windows),
        predicted_fills=int(predicted_fills),
        actual_fills=int(actual_fills),
        report=str(path),
        no_data=accuracy.no_data,
        not_judged=accuracy.not_judged,
    )
    yield dg.Output(
        accuracy.table,
        metadata={
            "status": accuracy.worst,
            "no_data_count": dg.MetadataValue.int(len(accuracy.no_data)),
            "no_data": ", ".join(accuracy.no_data) or "none",
            "not_judged": ", ".join(accuracy.not_judged) or "none",
            "accuracy": dg.MetadataValue.md(accuracy.table.to_markdown(index=False, floatfmt=".4g")),
            "windows_compared": dg.MetadataValue.int(len(accuracy.windows)),
            "predicted_fills": dg.MetadataValue.int(predicted_fills),
            "actual_fills": dg.MetadataValue.int(actual_fills),
            "reality": source,
            "reality_input": reality_input,
            "strategy": params.strategy,
            "shadow_fill_model": shadow_run.fill_model,
            "compared": str(notes["compared"]),
            "report": dg.MetadataValue.path(str(path)),
            **(
                {
                    "queue_fit": fit.summary,
                    "queue_fit_table": dg.MetadataValue.md(fit.table.to_markdown(index=False, floatfmt=".4g")),
                }
                if fit is not None
                else {}
            ),
            **summary.metadata(),
        },
    )
    yield from checks.accuracy_gates(accuracy)
