"""Stage 2: the strategy quoted on the partition's ticks (fills simulated, nothing sent), KPIs per iteration
window, and the Go/No-Go report with its gates."""

import json
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from shadow_pipeline.checks import shadow as checks
from shadow_pipeline.domain.gates import judge, kpi_gates
from shadow_pipeline.domain.kpi_records import params_digest
from shadow_pipeline.domain.kpis import aggregate, iteration_kpis, window_medians
from shadow_pipeline.domain.profiles import ProfileError, StrategyParams, Thresholds, load_profiles, resolve
from shadow_pipeline.domain.simulator import simulate
from shadow_pipeline.domain.windows import HOUR_NS
from shadow_pipeline.partitions import hour_and_symbol, tick_partitions
from shadow_pipeline.reporting.notes import commit_sha, ingest_note
from shadow_pipeline.reporting.plots import kpi_plot_png, markdown_image
from shadow_pipeline.reporting.snapshot import (
    KPI_FIELDS,
    PLOT_FILE,
    REPORT_FILE,
    build_snapshot,
    render_markdown,
    write_atomically,
    write_snapshot,
)
from shadow_pipeline.resources import ArtifactsResource, RedisResource, TickStreamResource

INGEST_QUALITY = ("gaps", "reordered", "drops")
TABLE_COLUMNS = (
    "iteration",
    "ticks",
    "total_fills",
    "maker_taker_ratio",
    "net_bps",
    "p95_latency_ms",
    "risk_ratio",
    "pnl",
    "valid",
)


class ShadowConfig(dg.Config):
    """Run config of a shadow run (the launchpad shows these)."""

    profile: str = Field(default="moderate", description="Strategy profile: conservative, moderate, aggressive, ...")
    window_seconds: float = Field(
        default=60.0, gt=0, description="Iteration window in exchange-time seconds; must divide an hour."
    )
    min_windows: int | None = Field(
        default=None, ge=1, description="Valid windows needed for a Go; default: the profile's (48)."
    )
    profiles_file: str | None = Field(
        default=None, description="Profiles JSON. Default: $SHADOW_PROFILES, else the file shipped in the package."
    )


def strategy_for(config: ShadowConfig, symbol: str) -> tuple[StrategyParams, Thresholds]:
    """The profile's parameters and gates for ``symbol``; a bad profile or window fails the run with the reason."""
    window_ns = round(config.window_seconds * 1e9)
    if window_ns <= 0 or HOUR_NS % window_ns:
        raise dg.Failure(
            f"window_seconds {config.window_seconds} does not divide 3600: a window would straddle two hourly "
            "partitions (use e.g. 5, 10, 30, 60, 300)"
        )
    try:
        params, thresholds = resolve(load_profiles(config.profiles_file), config.profile, symbol)
    except ProfileError as exc:
        raise dg.Failure(str(exc)) from None
    if config.min_windows is not None:
        thresholds = Thresholds(**{**thresholds.__dict__, "min_windows": config.min_windows})
    return params, thresholds


def _ingest_quality(context: dg.AssetExecutionContext) -> dict[str, Any]:
    """The partition's data-quality counts, as normalized_ticks recorded them."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("normalized_ticks"), asset_partitions=[str(context.partition_key)]),
        limit=1,
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        return {}
    return {k: v.value for k, v in materialization.metadata.items() if k in INGEST_QUALITY}


def _table(frame: pd.DataFrame, columns: tuple[str, ...], rows: int = 60) -> dg.MetadataValue:
    shown = frame.loc[:, list(columns)].head(rows)
    return dg.MetadataValue.md(shown.to_markdown(index=False, floatfmt=".4g") if len(shown) else "_no windows_")


@dg.asset(
    group_name="shadow",
    partitions_def=tick_partitions,
    io_manager_key="parquet_io_manager",
    kinds={"numba", "pandas", "parquet"},
)
def shadow_iterations(
    context: dg.AssetExecutionContext,
    config: ShadowConfig,
    normalized_ticks: pd.DataFrame,
    redis: RedisResource,
    tick_stream: TickStreamResource,
) -> dg.Output[pd.DataFrame]:
    """Per-window KPIs of the profile's quotes on the hour's ticks, from simulated orders and fills.

    Fills follow the touch + dwell model (docs/shadow-simulation.md): maker fills only on a trade at or through
    the quote or a crossing touch, after the dwell time; hedges cross the spread as a taker. Each row carries
    the notes: commit, source, profile, parameters, thresholds and the ingest aggregates.
    """
    hour, symbol = hour_and_symbol(context.partition_key)
    params, thresholds = strategy_for(config, symbol)
    if normalized_ticks.empty:
        raise dg.Failure(f"{symbol} {hour}: no ticks to quote on (normalized_ticks is empty)")
    started = time.perf_counter()
    simulation = simulate(normalized_ticks, params)
    iterations = iteration_kpis(normalized_ticks, simulation, params, thresholds, config.window_seconds)
    seconds = time.perf_counter() - started
    quality = _ingest_quality(context)
    notes: dict[str, Any] = {
        "hour": hour,
        "symbol": symbol,
        "profile": config.profile,
        "window_seconds": float(config.window_seconds),
        "commit": commit_sha(),
        "source": f"{redis.describe()} stream {tick_stream.stream}",
        "params": json.dumps(params.__dict__, sort_keys=True),
        "thresholds": json.dumps(thresholds.__dict__, sort_keys=True),
        "ingest": ingest_note(quality),
        "latency_notes": "; ".join(iterations.attrs.get("notes", [])),
        "feed_offset_ms": float(iterations.attrs.get("feed_offset_ms", float("nan"))),
    }
    iterations = iterations.assign(**notes)
    valid = int(iterations["valid"].sum()) if len(iterations) else 0
    context.log.info(
        f"{symbol} {hour}: {len(normalized_ticks)} ticks, {len(simulation.fills)} fills, "
        f"{valid}/{len(iterations)} valid windows of {config.window_seconds:g} s ({seconds:.2f} s)"
    )
    return dg.Output(
        iterations,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(iterations)),
            "valid_windows": dg.MetadataValue.int(valid),
            "fills": dg.MetadataValue.int(len(simulation.fills)),
            "maker_fills": dg.MetadataValue.int(int(simulation.fills["is_maker"].sum())),
            "taker_fills": dg.MetadataValue.int(int((~simulation.fills["is_maker"]).sum())),
            "ticks": dg.MetadataValue.int(len(normalized_ticks)),
            "profile": config.profile,
            "window_seconds": float(config.window_seconds),
            "ingest": str(notes["ingest"]),
            "commit": str(notes["commit"]),
            "parameters": dg.MetadataValue.json(params.__dict__),
            "windows": _table(iterations, TABLE_COLUMNS),
            "simulation_seconds": dg.MetadataValue.float(round(seconds, 3)),
        },
    )


@dg.asset(
    group_name="shadow",
    partitions_def=tick_partitions,
    io_manager_key="parquet_io_manager",
    kinds={"pandas", "parquet"},
    check_specs=checks.SHADOW_REPORT_CHECKS,
)
def shadow_report(
    context: dg.AssetExecutionContext, shadow_iterations: pd.DataFrame, artifacts: ArtifactsResource
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Go/No-Go for the hour and symbol: KPIs over the valid windows against the profile's gates.

    Shares and bps are notional-weighted, risk is time-weighted; medians over windows sit beside them. Also
    written as POST_SHADOW_SNAPSHOT.json and SHADOW_REPORT.md (with a KPI plot) in the artifacts folder, where
    `shadow-pipeline audit` re-checks them.
    """
    hour, symbol = hour_and_symbol(context.partition_key)
    first = shadow_iterations.iloc[0]
    thresholds = Thresholds(**json.loads(first["thresholds"]))
    kpis = {str(k): v for k, v in aggregate(shadow_iterations).iloc[0].items()}
    medians = window_medians(shadow_iterations, tuple(k for k in KPI_FIELDS if k in shadow_iterations))
    notes = {
        k: first[k]
        for k in ("hour", "symbol", "profile", "window_seconds", "commit", "source", "ingest", "latency_notes")
    }
    notes["partition"] = str(context.partition_key)
    notes["params_digest"] = params_digest(str(first["params"]))
    notes["as_of"] = pd.Timestamp(int(shadow_iterations["window_end"].max()), tz="UTC").isoformat()
    judged = judge(kpis, thresholds)
    snapshot = build_snapshot(kpis, medians, thresholds, judged, notes, pd.Timestamp.now(tz="UTC").isoformat())
    folder = artifacts.shadow_folder(hour, symbol)
    gates = kpi_gates(thresholds)
    png = kpi_plot_png(shadow_iterations, gates, f"{symbol} {hour}, profile {notes['profile']}")
    write_atomically(folder / PLOT_FILE, png)
    snapshot_path = write_snapshot(folder, snapshot)
    write_atomically(folder / REPORT_FILE, render_markdown(snapshot, PLOT_FILE).encode())
    verdict = snapshot["verdict"]
    say = context.log.info if judged.go else context.log.warning
    say(f"{symbol} {hour}: {verdict}" + (f": {'; '.join(snapshot['reasons'])}" if snapshot["reasons"] else ""))
    report = pd.DataFrame(
        [{**notes, **snapshot["kpis"], "verdict": verdict, "reasons": "; ".join(snapshot["reasons"])}]
    )
    numbers = {
        name: dg.MetadataValue.float(float("nan") if value is None else float(value))
        for name, value in snapshot["kpis"].items()
    }
    yield dg.Output(
        report,
        metadata={
            "verdict": verdict,
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in snapshot["reasons"]) or "all gates pass"),
            **numbers,
            "gates": dg.MetadataValue.md(pd.DataFrame(snapshot["gates"]).to_markdown(index=False)),
            "kpi_plot": dg.MetadataValue.md(markdown_image(png, f"{symbol} KPIs per window")),
            "snapshot": dg.MetadataValue.path(str(snapshot_path)),
            "profile": str(notes["profile"]),
        },
    )
    yield checks.min_windows(judged.outcomes[0])
    yield checks.kpi_thresholds(judged.outcomes[1:])
