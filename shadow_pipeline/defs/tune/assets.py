"""Stage 6: the auto-tuner. The base profile's tunable parameters searched on stored hours of one symbol,
walk-forward validated, with the seed's STEP1_BASELINE_SUMMARY.md and a tuned profiles file."""

import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import Annotated, Any

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from shadow_pipeline import user_json
from shadow_pipeline.defs.partitions import GROUPED, day_and_group, hour_and_symbol, tick_partitions
from shadow_pipeline.defs.shadow.assets import LIVE_READY_FILE, ShadowConfig, strategy_for
from shadow_pipeline.defs.tune import checks
from shadow_pipeline.defs.units import run_each, unit_key
from shadow_pipeline.domain.kpis.gates import kpi_gates
from shadow_pipeline.domain.market.windows import HOUR_NS, hour_bounds
from shadow_pipeline.domain.simulation.simulator import fill_model_of
from shadow_pipeline.domain.strategies.profiles import (
    ProfileError,
    StrategyParams,
    Thresholds,
    load_profiles,
    profile_document,
    setting_range,
    tune_settings,
)
from shadow_pipeline.domain.tuning.search_space import SearchSpace
from shadow_pipeline.domain.tuning.tuner import OBJECTIVES, Hour, Search, default_workers, influence, objective_grid
from shadow_pipeline.domain.tuning.walk_forward import WalkForward, walk_forward
from shadow_pipeline.reporting import tuning as summary
from shadow_pipeline.reporting.notes import commit_sha
from shadow_pipeline.reporting.plots import folds_png, markdown_image, objective_heatmap_png
from shadow_pipeline.reporting.snapshot import write_atomically
from shadow_pipeline.resources import ArtifactsResource, LandingResource, TickStreamResource
from shadow_pipeline.summaries import TuneSummary, finite

TUNING_HOURS = 6  # the tuning period: a partition's hour and the hours before it that the asset may read
PROGRESS_LOGGER = "shadow_pipeline.tune.progress"  # (done, total) per set, for the CLI's progress bar
_progress = logging.getLogger(PROGRESS_LOGGER)

with warnings.catch_warnings():  # both are beta in Dagster 1.13; their warning would open every command's output
    warnings.simplefilter("ignore", dg.BetaWarning)
    LOOKBACK = dg.MultiPartitionMapping(
        {
            "hour": dg.DimensionPartitionMapping(
                "hour",
                dg.TimeWindowPartitionMapping(
                    start_offset=-(TUNING_HOURS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
            ),
            "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
        }
    )


class TuneConfig(ShadowConfig):
    """Run config of a tuning run: the base profile (and its single-parameter overrides) as for a shadow run,
    plus the walk and the search. Unset search fields take the profile's ``tune`` section."""

    train_hours: int = Field(default=1, ge=1, le=TUNING_HOURS - 1, description="Hours each fold tunes on (k).")
    hours: list[str] | None = Field(
        default=None,
        description="The hours to tune and judge on (YYYY-MM-DD-HH:00, within the 6 ending at the partition's "
        "hour, which must be one of them; under day x group, within the 6 ending at the newest of them, in the "
        "partition's day); default: every stored hour of that period.",
    )
    space: str | None = Field(
        default=None,
        description='JSON object merged over the profile\'s tune.space per parameter, e.g. {"quote_offset_ticks": '
        '[0, 1], "min_requote_ms": {"min": 100, "max": 500, "step": 100}}.',
    )
    objective: str | None = Field(default=None, description=f"One of {', '.join(OBJECTIVES)}; default: the profile's.")
    max_sets: Annotated[int | None, Field(**setting_range("tune", "max_sets").constraints())] = Field(
        default=None, description="Sets per fold; default: the profile's."
    )
    seed: Annotated[int | None, Field(**setting_range("tune", "seed").constraints())] = Field(
        default=None, description="Sampler seed; default: the profile's."
    )
    workers: int | None = Field(default=None, ge=1, le=1024, description="Processes; default: every core.")
    top: int = Field(default=10, ge=1, le=1000, description="Rows of the top-N table.")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str | None) -> str | None:
        """Refused in the launchpad, as ``tune --objective`` refuses it: both take OBJECTIVES' names."""
        if value is not None and value not in OBJECTIVES:
            raise ValueError(f"unknown objective {value!r}; known: {', '.join(OBJECTIVES)}")
        return value


def search_of(config: TuneConfig, params: StrategyParams, symbol: str) -> Search:
    """The profile's ``tune`` with the run's overrides, checked against the instrument (a bad one fails the run)."""
    try:
        extra = user_json.parse(config.space, "space") if config.space else {}
    except user_json.JsonInputError as exc:
        raise dg.Failure(str(exc)) from None
    source = "the profiles file"
    try:
        profiles = load_profiles(config.profiles_file)
        source = f"tune of profile {config.profile!r} for {symbol} in {profiles.source}"
        settings = tune_settings(profiles, config.profile, symbol)
        if extra:
            source += " with the run's space"
        if not isinstance(extra, dict):
            raise ProfileError(f"space must be a JSON object, got {config.space!r}")
        spec = {**settings.space, **extra}
        if not spec:
            raise ProfileError(f"profile {config.profile!r} has no tune.space for {symbol} and the run gives none")
        return Search(
            SearchSpace.of(spec, params),
            config.objective or settings.objective,
            config.max_sets or settings.max_sets,
            settings.seed if config.seed is None else config.seed,
            settings.max_pbo,
            settings.pbo_blocks,
        )
    except (ProfileError, ValueError) as exc:
        raise dg.Failure(f"{source}: {exc}") from None


def period_of(hours: Sequence[str]) -> str:
    """The newest of ``hours`` (the partition to run), after checking that they fit one tuning period."""
    ordered = sorted(set(hours))
    span = (hour_bounds(ordered[-1])[0] - hour_bounds(ordered[0])[0]) // HOUR_NS + 1
    if span > TUNING_HOURS:
        raise ValueError(
            f"hours {ordered[0]} .. {ordered[-1]} span {span} hours; a tuning period holds {TUNING_HOURS}: "
            "tune fewer or later hours"
        )
    return ordered[-1]


def _stored_hours(loaded: Any, hour: str, wanted: list[str] | None) -> dict[str, pd.DataFrame]:
    """Hour key -> ticks of the hours to use, oldest first: ``wanted`` (each must be stored, with ticks), else
    every stored hour of the period. A period of one partition (the partitions' first hour) loads as a bare
    frame, the partition's own; a partition never materialized loads as None."""
    frames = loaded if isinstance(loaded, dict) else {hour: loaded}
    stored = {(key if key == hour else hour_and_symbol(key)[0]): frame for key, frame in frames.items()}
    chosen = sorted(set(wanted)) if wanted else sorted(k for k, frame in stored.items() if frame is not None)
    if hour not in chosen:
        raise ValueError(f"the partition's hour {hour} is not among the hours to use ({', '.join(chosen)})")
    for key in chosen:
        if key not in stored:
            raise ValueError(f"hour {key} is outside the tuning period ({TUNING_HOURS} hours up to {hour})")
        if stored[key] is None:
            raise ValueError(f"hour {key} has no stored normalized_ticks: materialize it first (ingest_job)")
        if stored[key].empty:
            raise ValueError(f"hour {key} has no ticks (its normalized_ticks partition is empty)")
    return {key: stored[key] for key in chosen}


class _Progress:
    """Per set to the CLI's bar (a Python logger), every tenth of the way to the run's log."""

    def __init__(self, context: dg.AssetExecutionContext, label: str) -> None:
        self.context, self.label, self.started, self.logged = context, label, time.perf_counter(), -1

    def __call__(self, done: int, total: int) -> None:
        _progress.debug(self.label, extra={"done": done, "total": total})
        tenth = 10 * done // total
        if tenth > self.logged:
            self.logged = tenth
            self.context.log.info(f"{self.label}: {done}/{total} sets ({time.perf_counter() - self.started:.1f} s)")


@dg.asset(
    group_name="tune",
    partitions_def=tick_partitions,
    ins={
        "normalized_ticks": dg.AssetIn(
            partition_mapping=dg.IdentityPartitionMapping() if GROUPED else LOOKBACK,
            metadata={"allow_missing_partitions": True},
            dagster_type=dg.Any,
        )
    },
    kinds={"numba", "pandas", "json"},
    check_specs=checks.TUNE_CHECKS,
)
def tuned_profile(
    context: dg.AssetExecutionContext,
    config: TuneConfig,
    normalized_ticks: Any,
    artifacts: ArtifactsResource,
    tick_stream: TickStreamResource,
    landing: LandingResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Walk-forward auto-tune of the base profile for one symbol, over the stored hours up to the partition's
    hour (at most six): each fold tunes on k hours and judges its winner on the next; the Go/No-Go uses the
    judged hours only, and needs the probability that the newest fold's winner is an overfit (PBO, by
    combinatorially symmetric cross-validation over its training windows) below the profile's max_pbo.
    Writes STEP1_BASELINE_SUMMARY.md and TUNED_PROFILES.json (the newest fold's winner, which
    `shadow --profiles-file` accepts as it is), and LIVE_READY_PROFILE.json only on a Go. Under the day x group
    layout, each instrument of the group over its stored hours of the day, at most the 6 ending at its newest (or
    the run's ``hours``, which must be in the day): the tuning period does not reach into the day before."""
    if not GROUPED:
        hour, symbol = hour_and_symbol(context.partition_key)
        yield from _tune_unit(context, config, normalized_ticks, hour, symbol, artifacts, tick_stream, landing)
        return
    loaded = normalized_ticks or {}

    def period(units: list[str], hour: str, symbol: str) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
        # read now: one instrument's period in memory at a time; a wanted hour not stored says so (None)
        frames = {unit: loaded.get(unit) for unit in units}
        yield from _tune_unit(context, config, frames, hour, symbol, artifacts, tick_stream, landing)

    day = day_and_group(context.partition_key)[0]
    outside = sorted(hour for hour in config.hours or [] if hour[:10] != day)
    if outside:
        raise dg.Failure(f"hours {', '.join(outside)} are not in the partition's day {day}: tune that day's partition")
    try:
        if config.hours:
            period_of(config.hours)  # at most TUNING_HOURS from the first to the last
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    calls = [
        (unit_key(hour, symbol), partial(period, units, hour, symbol))
        for symbol, hour, units in _periods(list(loaded), config.hours)
    ]
    yield from run_each(context, calls)


def _periods(stored: list[str], wanted: list[str] | None) -> list[tuple[str, str, list[str]]]:
    """(symbol, newest hour, the units to read) of each instrument of a day x group partition's ``stored`` units:
    the ``wanted`` hours (one not stored is read as None, and _stored_hours says so), else the stored hours of the
    tuning period ending at the newest."""
    by_symbol: dict[str, dict[str, str]] = {}
    for unit in stored:
        hour, symbol = hour_and_symbol(unit)
        by_symbol.setdefault(symbol, {})[hour] = unit
    periods = []
    for symbol, units in sorted(by_symbol.items()):
        if wanted:
            periods.append((symbol, max(wanted), [unit_key(hour, symbol) for hour in sorted(set(wanted))]))
            continue
        end = hour_bounds(max(units))[0]
        within = [u for h, u in sorted(units.items()) if 0 <= end - hour_bounds(h)[0] < TUNING_HOURS * HOUR_NS]
        periods.append((symbol, max(units), within))
    return periods


def _tune_unit(
    context: dg.AssetExecutionContext,
    config: TuneConfig,
    normalized_ticks: Any,
    hour: str,
    symbol: str,
    artifacts: ArtifactsResource,
    tick_stream: TickStreamResource,
    landing: LandingResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    base, thresholds = strategy_for(config, symbol)
    search = search_of(config, base, symbol)
    try:
        frames = _stored_hours(normalized_ticks, hour, config.hours)
    except ValueError as exc:
        raise dg.Failure(f"{symbol} {hour}: {exc}") from None
    hours = [Hour.of(key, ticks, base, config.window_seconds) for key, ticks in frames.items()]
    workers = config.workers or default_workers()
    context.log.info(
        f"{symbol}: tuning {base.profile} on {', '.join(frames)} ({config.train_hours} h per fold, "
        f"{len(search.candidates(base))} sets per fold, {workers} processes)"
    )
    started = time.perf_counter()
    try:
        walk = walk_forward(
            hours, base, thresholds, search, config.train_hours, workers, _Progress(context, f"{symbol} tune")
        )
    except ValueError as exc:
        raise dg.Failure(f"{symbol} {hour}: {exc}") from None
    seconds = time.perf_counter() - started
    evaluated = sum(len(fold.tuning.ranking) for fold in walk.folds)
    folder = artifacts.tune_folder(hour, symbol)
    objective = search.objective
    newest = walk.folds[-1]
    folds = summary.fold_table(walk, objective)
    top = summary.top_table(newest.tuning.ranking, objective, config.top)
    reproduce = _reproduce(folder, base, newest.test, symbol, config.window_seconds, tick_stream, landing)
    files = _write_files(folder, walk, base, thresholds, search, config, symbol, reproduce, folds, top)
    verdict = walk.decision
    valid_windows = int(str(walk.kpis.get("valid_windows") or 0))
    stage = TuneSummary(
        verdict=verdict.label,
        live_ready=bool(verdict.go),
        reasons=list(verdict.reasons),
        objective=objective,
        base_out_of_sample=finite(walk.base_kpis.get(objective)),
        in_sample=finite(newest.in_sample.objective),
        out_of_sample=finite(walk.kpis.get(objective)),
        pbo=finite(newest.overfitting.pbo),
        max_pbo=search.max_pbo,
        judged_hours=", ".join(walk.tested_hours),
        folds=len(walk.folds),
        out_of_sample_valid_windows=valid_windows,
        sets_evaluated=evaluated,
        sets_per_second=finite(evaluated / seconds if seconds > 0 else None),
        summary=str(folder / summary.SUMMARY_FILE),
    )
    (context.log.info if verdict.go else context.log.warning)(
        f"{symbol} {hour}: tuned {verdict.label} out of sample ({seconds:.1f} s, {evaluated} sets)"
        + (f": {'; '.join(verdict.reasons)}" if verdict.reasons else "")
    )
    yield dg.Output(
        folds,
        metadata={
            "verdict": verdict.label,
            "live_ready": dg.MetadataValue.bool(verdict.go),
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in verdict.reasons) or "all gates pass"),
            "objective": objective,
            f"out_of_sample_{objective}": _float(walk.kpis.get(objective)),
            f"in_sample_{objective}": _float(newest.in_sample.objective),
            f"base_out_of_sample_{objective}": _float(walk.base_kpis.get(objective)),
            "pbo": _float(newest.overfitting.pbo),
            "max_pbo": _float(search.max_pbo),
            "pbo_degradation_slope": _float(newest.overfitting.slope),
            "pbo_below_base": _float(newest.overfitting.below_base),
            "overfitting": newest.overfitting.describe(),
            "mean_degradation": _float(folds["degradation"].mean()),
            "out_of_sample_valid_windows": dg.MetadataValue.int(valid_windows),
            "folds": dg.MetadataValue.int(len(walk.folds)),
            "judged_hours": ", ".join(walk.tested_hours),
            "sets_evaluated": dg.MetadataValue.int(evaluated),
            "sets_per_second": _float(evaluated / seconds if seconds > 0 else float("nan")),
            "tuning_seconds": _float(seconds),
            "winning_parameters": dg.MetadataValue.md(
                summary.changes_table(base, walk.tuned, search.space.names).to_markdown(index=False)
            ),
            "top_sets": dg.MetadataValue.md(top.to_markdown(index=False, floatfmt=".4g")),
            "fold_table": dg.MetadataValue.md(folds.to_markdown(index=False, floatfmt=".4g")),
            "heatmap": dg.MetadataValue.md(markdown_image(files["heatmap"], f"{objective} heatmap")),
            "in_vs_out_of_sample": dg.MetadataValue.md(markdown_image(files["folds"], "folds")),
            "summary": dg.MetadataValue.path(str(folder / summary.SUMMARY_FILE)),
            "tuned_profiles_file": dg.MetadataValue.path(str(folder / summary.TUNED_FILE)),
            "tuned_profile": _tuned_name(base),
            "reproduce": reproduce,
            "commit": commit_sha(),
            **stage.metadata(),
        },
    )
    yield checks.out_of_sample_gates(verdict, walk.tested_hours)


def _float(value: object) -> dg.MetadataValue:
    number = float(value) if isinstance(value, int | float) else float("nan")
    return dg.MetadataValue.float(number)


def _tuned_name(base: StrategyParams) -> str:
    return base.profile if base.profile.endswith("_tuned") else f"{base.profile}_tuned"


def _reproduce(
    folder: Any,
    base: StrategyParams,
    hour: str,
    symbol: str,
    window_seconds: float,
    tick_stream: TickStreamResource,
    landing: LandingResource,
) -> str:
    """The shadow command that reruns the tuned set on its judged hour, on this run's stream and data folder."""
    data_dir = f" --data-dir {landing.data_dir}" if landing.data_dir else ""
    return (
        f"shadow-pipeline shadow --profiles-file {folder / summary.TUNED_FILE} --profile {_tuned_name(base)} "
        f"--hour {hour} --symbols {symbol} --window-seconds {window_seconds:g} --stream {tick_stream.stream}" + data_dir
    )


def _write_files(
    folder: Any,
    walk: WalkForward,
    base: StrategyParams,
    thresholds: Thresholds,
    search: Search,
    config: TuneConfig,
    symbol: str,
    reproduce: str,
    fold_table: pd.DataFrame,
    top: pd.DataFrame,
) -> dict[str, bytes]:
    """The summary, the tuned profiles file, the two figures, and the live-ready file on a Go only."""
    newest = walk.folds[-1]
    tuned = replace(walk.tuned, profile=_tuned_name(base))
    go = walk.decision.go
    description = (
        f"tuned from {base.profile} on {symbol} (commit {commit_sha()}): "
        f"{'Go, live-ready' if go else 'No-Go, NOT live-ready'} on the out-of-sample hours "
        f"{', '.join(walk.tested_hours)}"
    )
    document = json.dumps(profile_document(tuned, thresholds, description), indent=2).encode()
    write_atomically(folder / summary.TUNED_FILE, document)
    live = folder / LIVE_READY_FILE
    if go:
        write_atomically(live, document)
    else:
        live.unlink(missing_ok=True)  # an earlier Go of this period no longer vouches for anything
    effects = influence(newest.tuning.ranking, search.space.names)
    strongest = sorted(effects, key=lambda name: -effects[name])  # the two most influential parameters
    grid = objective_grid(newest.tuning.ranking, strongest[0], strongest[1] if len(strongest) > 1 else None)
    heatmap = objective_heatmap_png(grid, search.objective, f"{symbol}: best {search.objective} (fold {newest.test})")
    gate = next((g.threshold for g in kpi_gates(thresholds) if g.kpi == search.objective), None)
    folds = folds_png(fold_table, search.objective, gate, f"{symbol} walk-forward")
    write_atomically(folder / summary.HEATMAP_FILE, heatmap)
    write_atomically(folder / summary.FOLDS_FILE, folds)
    context = {
        "symbol": symbol,
        "profile": base.profile,
        "window_seconds": config.window_seconds,
        "fill_model": fill_model_of(base).label,
        "tuned_file": str(folder / summary.TUNED_FILE),
        "tuned_profile": tuned.profile,
        "reproduce": reproduce,
        "live_ready": str(live),
        "folds_file": summary.FOLDS_FILE,
        "heatmap_file": summary.HEATMAP_FILE,
    }
    text = summary.render_summary(walk, base, search, context, top)
    write_atomically(folder / summary.SUMMARY_FILE, text.encode())
    return {"heatmap": heatmap, "folds": folds}
