"""Stage 2: the strategy quoted on the partition's ticks (fills simulated, nothing sent), KPIs per iteration
window, and the Go/No-Go report with its gates."""

import json
import time
from collections.abc import Iterator
from typing import Annotated

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from shadow_pipeline.defs.partitions import tick_partitions
from shadow_pipeline.defs.rollup.profiles import keep_profile_result
from shadow_pipeline.defs.shadow import checks
from shadow_pipeline.defs.shadow.fills import SHADOW_FILLS_DESCRIPTION, fills_output
from shadow_pipeline.defs.shadow.tags import tag_run
from shadow_pipeline.defs.units import PartitionValue, run_units
from shadow_pipeline.domain.kpis.catalogue import SUMMARY, names
from shadow_pipeline.domain.kpis.gates import GO, Gate, kpi_gates
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.kpis.run_notes import RunNotes, RunNotesMissing, run_notes, with_notes
from shadow_pipeline.domain.market.windows import HOUR_NS, hour_bounds
from shadow_pipeline.domain.simulation.shadow import is_external, shadow
from shadow_pipeline.domain.strategies.external.intents import Grid
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import (
    ProfileError,
    StrategyParams,
    Thresholds,
    load_profiles,
    profile_document,
    resolve,
    setting_range,
)
from shadow_pipeline.domain.tuning.search_space import TUNABLES, with_values
from shadow_pipeline.domain.validation.sensitivity import fill_sensitivity, verdict_flips
from shadow_pipeline.redis_io.keys import order_stream
from shadow_pipeline.redis_io.order_stream import load_intents
from shadow_pipeline.reporting.notes import commit_sha, ingest_note
from shadow_pipeline.reporting.plots import kpi_plot_png, markdown_image
from shadow_pipeline.reporting.pnl_plots import FILL_PLOTS, sparkline_png
from shadow_pipeline.reporting.snapshot import (
    PLOT_FILE,
    REPORT_FILE,
    gates_markdown,
    judge_partition,
    render_markdown,
    report_row,
    write_atomically,
    write_snapshot,
)
from shadow_pipeline.resources import ArtifactsResource, RedisResource, TickStreamResource
from shadow_pipeline.summaries import ShadowSummary, finite

# The window table in the UI: the CLI's summary KPIs that exist per window, beside the window's identity.
TABLE_COLUMNS = ("iteration", "ticks", *names(k for k in SUMMARY if k.per_window is not None), "pnl", "valid")


class ShadowConfig(dg.Config):
    """Run config of a shadow run (the launchpad shows these). Every number carries its bounds here (the
    profile's settings take theirs from the profiles schema), so a value out of range fails when the config is
    built, by the CLI or by Dagster, before any ingest or simulation."""

    profile: str = Field(default="moderate", description="Strategy profile: conservative, moderate, aggressive, ...")
    window_seconds: float = Field(
        default=60.0,
        ge=0.1,
        le=3600,
        allow_inf_nan=False,
        description="Iteration window in exchange-time seconds, 0.1 to 3600; must divide an hour.",
    )
    min_windows: Annotated[int | None, Field(**setting_range("thresholds", "min_windows").constraints())] = Field(
        default=None,
        description="Valid windows needed for a Go; default: the profile's (48).",
    )
    profiles_file: str | None = Field(
        default=None, description="Profiles JSON. Default: $SHADOW_PROFILES, else the file shipped in the package."
    )
    touch_dwell_ms: Annotated[float | None, Field(**TUNABLES["touch_dwell_ms"].range.constraints())] = Field(
        default=None,
        description="Override the profile's touch_dwell_ms (ms at its price before a quote may fill; dwell fill "
        "model only) for this run; default: the profile's.",
    )
    min_lot: Annotated[float | None, Field(**TUNABLES["min_lot"].range.constraints())] = Field(
        default=None,
        description="Override the profile's min_lot (order size in base currency, a multiple of the symbol's "
        "lot_step; max_inventory counts these lots) for this run; default: the profile's.",
    )

    @field_validator("window_seconds")
    @classmethod
    def _tiles_the_hour(cls, seconds: float) -> float:
        """A window that straddled two hourly partitions would be cut in two, each half judged as a window."""
        if HOUR_NS % round(seconds * 1e9):
            raise ValueError(
                f"window_seconds {seconds:g} does not divide 3600: a window would straddle two hourly partitions "
                "(use e.g. 5, 10, 30, 60, 300)"
            )
        return seconds

    def overrides(self) -> dict[str, float]:
        """The single-parameter overrides that are set, by their tunable names (``search_space.with_values``)."""
        chosen = {"min_lot": self.min_lot, "touch_dwell_ms": self.touch_dwell_ms}
        return {name: value for name, value in chosen.items() if value is not None}

    def strategy(self, symbol: str) -> tuple[StrategyParams, Thresholds]:
        """The profile's parameters and gates for ``symbol`` with the overrides applied (raises ProfileError with
        the reason): the batch and the live shadow resolve a profile through this one function."""
        params, thresholds = resolve(load_profiles(self.profiles_file), self.profile, symbol)
        try:
            params = with_values(params, self.overrides())
        except ProfileError as exc:
            raise ProfileError(f"override of profile {self.profile!r} for {symbol}: {exc}") from None
        if self.min_windows is not None:
            thresholds = Thresholds(**{**thresholds.__dict__, "min_windows": self.min_windows})
        return params, thresholds


def strategy_for(config: ShadowConfig, symbol: str) -> tuple[StrategyParams, Thresholds]:
    """``config.strategy(symbol)``; a bad profile or override fails the run with the reason."""
    try:
        return config.strategy(symbol)
    except ProfileError as exc:
        raise dg.Failure(str(exc)) from None


def _bot_orders(
    context: dg.AssetExecutionContext, redis: RedisResource, params: StrategyParams, hour: str
) -> tuple[OrderPlan, dict[str, dg.MetadataValue]]:
    """The orders the bot decided in the hour, from its order stream; its bad intents dead-lettered."""
    grid = Grid(params.symbol, params.tick_size, params.lot_step)
    loaded = load_intents(redis.get_client(), params.symbol, grid)
    start, end = hour_bounds(hour)
    plan = loaded.checked.plan.decided_within(start, end)
    rejected = len(loaded.checked.rejected)
    stream = order_stream(params.symbol)
    say = context.log.warning if loaded.dead_lettered_now else context.log.info
    say(
        f"{params.symbol} {hour}: {len(plan)} orders of the bot in the hour from {stream} ({loaded.entries} intents "
        f"in the stream, {rejected} rejected, {loaded.dead_lettered_now} newly dead-lettered to {stream}:dlq)"
    )
    if not len(plan):
        raise dg.Failure(f"{params.symbol} {hour}: strategy external, but {stream} has no valid order in the hour")
    return plan, {
        "bot_orders": dg.MetadataValue.int(len(plan)),
        "intents_in_stream": dg.MetadataValue.int(loaded.entries),
        "intents_rejected": dg.MetadataValue.int(rejected),
        "order_stream": dg.MetadataValue.text(stream),
    }


def _notes_of(iterations: pd.DataFrame) -> RunNotes:
    try:
        return run_notes(iterations)
    except RunNotesMissing as exc:
        raise dg.Failure(str(exc)) from None


def kpi_lines(iterations: pd.DataFrame, gates: list[Gate]) -> dict[str, dg.MetadataValue]:
    """Each gated KPI over the windows with its threshold dashed, as ``<kpi>_line``: small enough that the UI
    shows it in the metadata table itself, where the full KPI plot needs a click (docs/fills.md)."""
    return {
        f"{gate.kpi}_line": dg.MetadataValue.md(
            markdown_image(sparkline_png(iterations[gate.kpi].to_numpy(dtype=float), (gate.threshold,)), gate.kpi)
        )
        for gate in gates
    }


def _table(frame: pd.DataFrame, columns: tuple[str, ...], rows: int = 60) -> dg.MetadataValue:
    shown = frame.loc[:, list(columns)].head(rows)
    return dg.MetadataValue.md(shown.to_markdown(index=False, floatfmt=".4g") if len(shown) else "_no windows_")


@dg.multi_asset(
    group_name="shadow",
    partitions_def=tick_partitions,
    outs={
        "shadow_iterations": dg.AssetOut(
            kinds={"numba", "pandas", "parquet"},
            description="Per-window KPIs of the profile's quotes on the hour's ticks, from simulated orders and "
            "fills under the profile's fill model (queue-aware by default; docs/shadow-simulation.md). One row "
            "per window; the run notes (commit, source, profile, fill model, parameters, thresholds, ingest "
            "quality) are stored once with them. The record of truth for the hour: the live shadow's windows "
            "(shadow:live:kpi:*, published as each window closes) are held to it by the check "
            "live_windows_match_batch (docs/live-shadow.md).",
        ),
        "fill_sensitivity": dg.AssetOut(
            kinds={"numba", "pandas", "parquet"},
            description="The hour's KPIs and Go/No-Go at both bounds of the fill model's unknown knob "
            "(size_decrease_share 0 and 1 under queue, touch_dwell_ms 0 and 10 s under dwell) beside the chosen "
            "value: whether the verdict hinges on the queue assumption.",
        ),
        "shadow_fills": dg.AssetOut(kinds={"pandas", "parquet"}, description=SHADOW_FILLS_DESCRIPTION),
    },
)
def shadow_iterations(
    context: dg.AssetExecutionContext,
    config: ShadowConfig,
    normalized_ticks: PartitionValue,
    tick_quality: PartitionValue,
    redis: RedisResource,
    tick_stream: TickStreamResource,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame]]:
    """Simulated orders and fills of the profile's strategy on the hour's ticks, nothing sent: the KPIs per
    window, the fills themselves, and the same hour at the bounds of the fill model's knob."""
    yield from run_units(
        context,
        lambda hour, symbol, given: _iterations_unit(
            context,
            config,
            given["normalized_ticks"],
            given["tick_quality"],
            hour,
            symbol,
            redis,
            tick_stream,
            artifacts,
        ),
        {"normalized_ticks": normalized_ticks, "tick_quality": tick_quality},
    )


def _iterations_unit(
    context: dg.AssetExecutionContext,
    config: ShadowConfig,
    normalized_ticks: pd.DataFrame,
    tick_quality: pd.DataFrame,
    hour: str,
    symbol: str,
    redis: RedisResource,
    tick_stream: TickStreamResource,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame]]:
    params, thresholds = strategy_for(config, symbol)
    if normalized_ticks.empty:
        raise dg.Failure(f"{symbol} {hour}: no ticks to quote on (normalized_ticks is empty)")
    plan, orders_note = _bot_orders(context, redis, params, hour) if is_external(params) else (None, {})
    started = time.perf_counter()
    simulation = shadow(normalized_ticks, params, plan)
    iterations = iteration_kpis(normalized_ticks, simulation, params, thresholds, config.window_seconds)
    seconds = time.perf_counter() - started
    quality = {str(k): v for k, v in tick_quality.to_dict(orient="records")[0].items()} if len(tick_quality) else {}
    notes = RunNotes(
        hour=hour,
        symbol=symbol,
        profile=config.profile,
        window_seconds=float(config.window_seconds),
        commit=commit_sha(),
        source=f"{redis.describe()} stream {tick_stream.stream}",
        params=params,
        thresholds=thresholds,
        ingest=ingest_note(quality),
        latency_notes="; ".join(iterations.attrs.get("notes", [])),
        feed_offset_ms=float(iterations.attrs.get("feed_offset_ms", float("nan"))),
    )
    iterations = with_notes(iterations, notes)
    valid = int(iterations["valid"].sum()) if len(iterations) else 0
    context.log.info(
        f"{symbol} {hour}: {len(normalized_ticks)} ticks, {len(simulation.fills)} fills ({notes.fill_model}), "
        f"{valid}/{len(iterations)} valid windows of {config.window_seconds:g} s ({seconds:.2f} s)"
    )
    yield dg.Output(
        iterations,
        output_name="shadow_iterations",
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(iterations)),
            "valid_windows": dg.MetadataValue.int(valid),
            "fills": dg.MetadataValue.int(len(simulation.fills)),
            "maker_fills": dg.MetadataValue.int(int(simulation.fills["is_maker"].sum())),
            "taker_fills": dg.MetadataValue.int(int((~simulation.fills["is_maker"]).sum())),
            "ticks": dg.MetadataValue.int(len(normalized_ticks)),
            "profile": config.profile,
            "fill_model": notes.fill_model,
            "window_seconds": float(config.window_seconds),
            "ingest": notes.ingest,
            "commit": notes.commit,
            "params_digest": notes.params_digest,
            "parameters": dg.MetadataValue.json(params.__dict__),
            "windows": _table(iterations, TABLE_COLUMNS),
            "simulation_seconds": dg.MetadataValue.float(round(seconds, 3)),
            **orders_note,
        },
    )
    yield fills_output(simulation, params, iterations, notes, artifacts.shadow_folder(hour, symbol))
    sensitivity = fill_sensitivity(normalized_ticks, params, thresholds, config.window_seconds, iterations, plan)
    flips = verdict_flips(sensitivity)
    rows = sensitivity.to_dict(orient="records")
    say = context.log.warning if flips else context.log.info
    say(
        f"{symbol} {hour}: verdict across {rows[0]['knob']}: "
        + ", ".join(f"{row['value']:g} ({row['assumption']}) {row['verdict']}" for row in rows)
    )
    yield dg.Output(
        sensitivity,
        output_name="fill_sensitivity",
        metadata={
            "verdict_flips": dg.MetadataValue.bool(flips),
            "knob": str(sensitivity["knob"].iloc[0]),
            "table": dg.MetadataValue.md(sensitivity.to_markdown(index=False, floatfmt=".4g")),
            **{
                f"fills_at_{str(row['assumption']).replace(' ', '_')}": dg.MetadataValue.int(int(row["total_fills"]))
                for row in rows
            },
        },
    )


@dg.asset(
    group_name="shadow",
    partitions_def=tick_partitions,
    kinds={"pandas", "parquet"},
    check_specs=checks.SHADOW_REPORT_CHECKS,
)
def shadow_report(
    context: dg.AssetExecutionContext,
    shadow_iterations: PartitionValue,
    fill_sensitivity: PartitionValue,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Go/No-Go for the hour and symbol: KPIs over the valid windows against the profile's gates.

    Shares and bps are notional-weighted, risk is time-weighted; medians over windows sit beside them. Also
    written as POST_SHADOW_SNAPSHOT.json and SHADOW_REPORT.md (with the KPI plot and shadow_fills' PnL, inventory
    and fills-on-price pictures) in the artifacts folder, where
    `shadow-pipeline audit` re-checks them.
    """
    yield from run_units(
        context,
        lambda hour, symbol, given: _report_unit(
            context, given["shadow_iterations"], given["fill_sensitivity"], hour, symbol, artifacts
        ),
        {"shadow_iterations": shadow_iterations, "fill_sensitivity": fill_sensitivity},
    )


def _report_unit(
    context: dg.AssetExecutionContext,
    shadow_iterations: pd.DataFrame,
    fill_sensitivity: pd.DataFrame,
    hour: str,
    symbol: str,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    run = _notes_of(shadow_iterations)
    snapshot, judged = judge_partition(shadow_iterations, run, pd.Timestamp.now(tz="UTC").isoformat(), fill_sensitivity)
    folder = artifacts.shadow_folder(hour, symbol)
    gates = kpi_gates(run.thresholds)
    png = kpi_plot_png(shadow_iterations, gates, f"{symbol} {hour}, profile {run.profile}")
    write_atomically(folder / PLOT_FILE, png)
    snapshot_path = write_snapshot(folder, snapshot)
    keep_profile_result(artifacts, snapshot, shadow_iterations)
    plots = [(PLOT_FILE, "KPIs per window"), *(p for p in FILL_PLOTS if (folder / p.file).exists())]
    write_atomically(folder / REPORT_FILE, render_markdown(snapshot, plots).encode())
    verdict = snapshot["verdict"]
    say = context.log.info if judged.go else context.log.warning
    say(f"{symbol} {hour}: {verdict}" + (f": {'; '.join(snapshot['reasons'])}" if snapshot["reasons"] else ""))
    report = pd.DataFrame([report_row(snapshot)])
    numbers = {name: checks.for_people(name, value) for name, value in snapshot["kpis"].items()}
    tags = tag_run(context, hour, symbol, judged, run.profile)
    flips = bool(verdict_flips(fill_sensitivity))
    kpis = {name: finite(value) for name, value in snapshot["kpis"].items()}
    summary = ShadowSummary(verdict=verdict, reasons=list(snapshot["reasons"]), kpis=kpis, knob_flips=flips)
    yield dg.Output(
        report,
        metadata={
            "verdict": verdict,
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in snapshot["reasons"]) or "all gates pass"),
            **numbers,
            "gates": dg.MetadataValue.md(gates_markdown(snapshot["gates"])),
            "run_tags": dg.MetadataValue.json(tags),
            "fill_model": run.fill_model,
            "sensitivity": dg.MetadataValue.md(fill_sensitivity.to_markdown(index=False, floatfmt=".4g")),
            "verdict_flips_in_knob_range": dg.MetadataValue.bool(flips),
            "kpi_plot": dg.MetadataValue.md(markdown_image(png, f"{symbol} KPIs per window")),
            **kpi_lines(shadow_iterations, gates),
            "snapshot": dg.MetadataValue.path(str(snapshot_path)),
            "profile": run.profile,
            **summary.metadata(),
        },
    )
    yield checks.min_windows(judged.outcomes[0])
    yield checks.kpi_thresholds(judged.outcomes[1:])


LIVE_READY_FILE = "LIVE_READY_PROFILE.json"


@dg.asset(group_name="shadow", partitions_def=tick_partitions, kinds={"json"}, output_required=False)
def live_ready_profile(
    context: dg.AssetExecutionContext,
    shadow_report: PartitionValue,
    shadow_iterations: PartitionValue,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame]]:
    """The partition's parameters promoted as live-ready, as a profiles file (LIVE_READY_PROFILE.json) that
    `shadow --profiles-file` and the launchpad accept. Written only on a Go: after a No-Go it is not
    materialized (the run still succeeds; the failed gate checks say why). Under the day x group layout, one per
    unit with a Go."""
    yield from run_units(
        context,
        lambda hour, symbol, given: _promote_unit(
            context, given["shadow_report"], given["shadow_iterations"], hour, symbol, artifacts
        ),
        {"shadow_report": shadow_report, "shadow_iterations": shadow_iterations},
    )


def _promote_unit(
    context: dg.AssetExecutionContext,
    shadow_report: pd.DataFrame,
    shadow_iterations: pd.DataFrame,
    hour: str,
    symbol: str,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame]]:
    verdict = str(shadow_report["verdict"].iloc[0])
    path = artifacts.shadow_folder(hour, symbol) / LIVE_READY_FILE
    if verdict != GO:
        withdrawn = path.exists()
        path.unlink(missing_ok=True)  # an earlier Go of this partition no longer vouches for anything
        note = " (an earlier promotion withdrawn)" if withdrawn else ""
        context.log.warning(f"{symbol} {hour}: {verdict}, not promoted{note}: {shadow_report['reasons'].iloc[0]}")
        return
    run = _notes_of(shadow_iterations)
    params = run.params
    description = f"promoted from shadow {symbol} {hour} (commit {run.commit}): Go"
    write_atomically(path, json.dumps(profile_document(params, run.thresholds, description), indent=2).encode())
    context.log.info(f"{symbol} {hour}: Go, {params.profile} promoted to {path}")
    yield dg.Output(
        pd.DataFrame([{"hour": hour, "symbol": symbol, "profile": params.profile, "path": str(path)}]),
        metadata={"profile": params.profile, "profiles_file": dg.MetadataValue.path(str(path))},
    )
