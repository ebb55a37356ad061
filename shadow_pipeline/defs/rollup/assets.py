"""Stage 7: a day of shadowed hours rolled up per instrument, and the profiles kept for it compared."""

import warnings
from collections.abc import Iterator
from functools import partial
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from shadow_pipeline.defs.partitions import (
    GROUPED,
    day_and_group,
    day_and_symbol,
    group_members,
    hour_and_symbol,
    rollup_partitions,
)
from shadow_pipeline.defs.rollup import checks
from shadow_pipeline.defs.units import run_each
from shadow_pipeline.domain.kpis.gates import GO
from shadow_pipeline.domain.kpis.rollup import RANK_RULE, day_hours, profile_key
from shadow_pipeline.domain.kpis.run_notes import RunNotesMissing, run_notes
from shadow_pipeline.reporting.plots import markdown_image
from shadow_pipeline.reporting.rollup import (
    RollupError,
    compare_period,
    read_kept,
    roll_up,
    write_comparison,
    write_rollup,
)
from shadow_pipeline.reporting.snapshot import report_row
from shadow_pipeline.resources import ArtifactsResource

with warnings.catch_warnings():  # beta in Dagster 1.13; its warning would open every command's output
    warnings.simplefilter("ignore", dg.BetaWarning)
    DAY_OF_HOURS = dg.MultiPartitionMapping(
        {
            "hour": dg.DimensionPartitionMapping("day", dg.TimeWindowPartitionMapping()),
            "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
        }
    )
DAY_MAPPING = dg.IdentityPartitionMapping() if GROUPED else DAY_OF_HOURS


class RollupConfig(dg.Config):
    """Run config of a rollup: a day holds one profile's hours at a time."""

    profile: str | None = Field(
        default=None,
        description="The profile to roll up (its hours: the results kept under its name, else the stored "
        "shadow_iterations of that profile); default: the profile of the day's newest stored hour.",
    )


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _stored(loaded: Any) -> dict[str, pd.DataFrame]:
    """Hour -> the stored windows of the day's hours. A day of one hourly partition (the first hour's day, cut
    short) loads as a bare frame; a partition never materialized is skipped, or loads as None."""
    frames = loaded.values() if isinstance(loaded, dict) else [loaded]
    try:
        return {run_notes(frame).hour: frame for frame in frames if frame is not None}
    except RunNotesMissing as exc:
        raise dg.Failure(str(exc)) from None


def _hours_of(
    profile: str, stored: dict[str, pd.DataFrame], artifacts: ArtifactsResource, day: str, symbol: str
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """The day's hours shadowed with ``profile`` and the hourly reports kept for them. An hour's kept result comes
    first (its windows and report are of one run); else its stored partition when that is the profile's (an hour
    shadowed before results were kept; its verdict is then judged from the windows)."""
    windows: dict[str, pd.DataFrame] = {}
    reports: dict[str, dict[str, Any]] = {}
    for hour in day_hours(day):
        kept = read_kept(artifacts.profile_folder(hour, symbol, profile))
        frame = stored.get(hour)
        if kept is not None:
            windows[hour], reports[hour] = kept
        elif frame is not None and run_notes(frame).profile == profile:
            windows[hour] = frame
    return windows, reports


@dg.asset(
    group_name="rollup",
    partitions_def=rollup_partitions,
    ins={
        "shadow_iterations": dg.AssetIn(
            partition_mapping=DAY_MAPPING, metadata={"allow_missing_partitions": True}, dagster_type=dg.Any
        )
    },
    kinds={"pandas", "json"},
    check_specs=checks.ROLLUP_CHECKS,
)
def shadow_rollup(
    context: dg.AssetExecutionContext, config: RollupConfig, shadow_iterations: Any, artifacts: ArtifactsResource
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Go/No-Go of one profile over a UTC day of one instrument: the windows of the day's shadowed hours pooled
    and judged as an hour's are (so each KPI rolls up as within an hour), beside every hour's own verdict.
    Missing hours are left out, not counted against it. Also written as ROLLUP_SNAPSHOT.json and ROLLUP_REPORT.md
    under artifacts/rollup/<day>/<symbol>/. Under the day x group layout, each instrument of the group."""
    if not GROUPED:
        day, symbol = day_and_symbol(context.partition_key)
        yield from _rollup_unit(context, config, _stored(shadow_iterations), day, symbol, artifacts)
        return
    day, group = day_and_group(context.partition_key)
    loaded = shadow_iterations or {}

    def instrument(symbol: str) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
        units = [unit for unit in loaded if hour_and_symbol(unit)[1] == symbol]  # read now, one instrument's day
        yield from _rollup_unit(context, config, _stored({u: loaded[u] for u in units}), day, symbol, artifacts)

    stored = {hour_and_symbol(unit)[1] for unit in loaded}  # also an instrument delisted since
    kept = set(group_members(group)) if config.profile else set()  # may have results kept under the profile
    symbols = sorted(stored | kept)
    yield from run_each(context, [(f"{day}|{symbol}", partial(instrument, symbol)) for symbol in symbols])


def _rollup_unit(
    context: dg.AssetExecutionContext,
    config: RollupConfig,
    stored: dict[str, pd.DataFrame],
    day: str,
    symbol: str,
    artifacts: ArtifactsResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    newest = run_notes(stored[max(stored)]).profile if stored else None
    profile = config.profile or newest
    if profile is None:
        raise dg.Failure(f"{symbol} {day}: no shadowed hour stored for the day: run shadow_job on its hours first")
    try:
        windows, reports = _hours_of(profile_key(profile), stored, artifacts, day, symbol)
        if not windows:
            raise RollupError(f"no hour of the day shadowed with profile {profile!r} (stored: {newest or 'none'})")
        snapshot, judged = roll_up(day, windows, reports, pd.Timestamp.now(tz="UTC").isoformat())
    except (RollupError, ValueError) as exc:
        raise dg.Failure(f"{symbol} {day}: {exc}") from None
    path = write_rollup(artifacts.rollup_folder(day, symbol), snapshot)
    no_go = snapshot["no_go_hours"]
    say = context.log.info if judged.go else context.log.warning
    say(f"{symbol} {day} ({profile}, {len(windows)} hours): {snapshot['verdict']} {'; '.join(snapshot['reasons'])}")
    yield dg.Output(
        pd.DataFrame([report_row(snapshot)]),
        metadata={
            "verdict": snapshot["verdict"],
            "profile": profile,
            "hours": ", ".join(snapshot["hours"]),
            "shadowed_hours": len(windows),
            "no_go_hours": dg.MetadataValue.md(
                "\n".join(f"- {r['hour']}: {'; '.join(r['reasons'])}" for r in no_go) or "none"
            ),
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in snapshot["reasons"]) or "all gates pass"),
            "net_bps": dg.MetadataValue.float(_number(snapshot["kpis"]["net_bps"])),
            "valid_windows": dg.MetadataValue.int(int(snapshot["kpis"]["valid_windows"])),
            "snapshot": dg.MetadataValue.path(str(path)),
        },
    )
    yield checks.kpi_thresholds(judged)
    yield checks.no_go_hours(snapshot)


@dg.asset(
    group_name="rollup",
    partitions_def=rollup_partitions,
    deps=[dg.AssetDep("shadow_report", partition_mapping=DAY_MAPPING)],
    kinds={"pandas", "json"},
)
def profile_comparison(
    context: dg.AssetExecutionContext, artifacts: ArtifactsResource
) -> Iterator[dg.Output[pd.DataFrame]]:
    """Every profile shadowed on the day's hours of one instrument, ranked best first: Go before No-Go, then net_bps,
    then fewer failed gates. Each profile is rolled up over the hours it ran from the results kept under its name,
    so a later profile on an hour does not hide an earlier one. PROFILE_COMPARISON.md/.json and profiles.png
    under artifacts/rollup/<day>/<symbol>/. Under the day x group layout, each instrument of the group."""
    if not GROUPED:
        day, symbol = day_and_symbol(context.partition_key)
        yield _comparison_unit(context, day, symbol, artifacts)
        return
    day, group = day_and_group(context.partition_key)
    calls = [
        (f"{day}|{symbol}", partial(lambda s: [_comparison_unit(context, day, s, artifacts)], symbol))
        for symbol in group_members(group)
    ]
    yield from run_each(context, calls)


def _comparison_unit(
    context: dg.AssetExecutionContext, day: str, symbol: str, artifacts: ArtifactsResource
) -> dg.Output[pd.DataFrame]:
    folders = {hour: artifacts.shadow_folder(hour, symbol) for hour in day_hours(day)}
    try:
        table, snapshots = compare_period(folders, day, pd.Timestamp.now(tz="UTC").isoformat())
    except RollupError as exc:
        raise dg.Failure(f"{symbol} {exc}") from None
    png = write_comparison(artifacts.rollup_folder(day, symbol), table, snapshots, symbol, day)
    best = table.iloc[0]
    context.log.info(f"{symbol} {day}: {', '.join(table['profile'])} (best {best['profile']}, {best['verdict']})")
    return dg.Output(
        table,
        metadata={
            "ranking": ", ".join(table["profile"]),
            "best": str(best["profile"]),
            "best_is_go": dg.MetadataValue.bool(bool(best["verdict"] == GO)),
            "rule": RANK_RULE,
            "table": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4g")),
            "plot": dg.MetadataValue.md(markdown_image(png, f"{symbol} {day} profiles")),
            "dagster/row_count": dg.MetadataValue.int(len(table)),
        },
    )
