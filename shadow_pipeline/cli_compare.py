"""`shadow-pipeline compare`: the profiles kept for an instrument over a day or an hour, ranked (docs/rollups.md).

It reads the results every shadow run keeps under its profile in the artifacts folder, so it needs neither Redis
nor Dagster's storage; the Dagster asset ``profile_comparison`` writes the same table for a day.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from shadow_pipeline import settings
from shadow_pipeline.cli_errors import fail as _fail
from shadow_pipeline.domain.kpis.gates import GO
from shadow_pipeline.domain.kpis.rollup import day_hours
from shadow_pipeline.domain.market.instruments import InstrumentError, InstrumentId
from shadow_pipeline.reporting.rollup import RollupError, compare_period, comparison_document, comparison_markdown
from shadow_pipeline.resources import ArtifactsResource


def _period(day: str | None, hour: str | None) -> tuple[str, list[str]]:
    """(the period's name, its hours) from exactly one of --day and --hour."""
    if (day is None) == (hour is None):
        raise ValueError("give exactly one of --day YYYY-MM-DD and --hour YYYY-MM-DD-HH:00")
    if day is not None:
        return day, day_hours(day)
    if hour is None or not settings.is_hour_key(hour):
        raise ValueError(f"--hour {str(hour)[:80]!r} is not an hour: use YYYY-MM-DD-HH:00 (UTC)")
    return hour, [hour]


@click.command("compare")
@click.option("--symbol", required=True, help="Instrument: BTCUSDT, or BTCUSDT.bybit-linear for another venue.")
@click.option("--day", default=None, help="A UTC day, YYYY-MM-DD: each profile over the hours of the day it ran.")
@click.option("--hour", default=None, help="One hour, YYYY-MM-DD-HH:00 (UTC).")
@click.option(
    "--artifacts-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where shadow runs wrote their reports. Default: $SHADOW_ARTIFACTS_DIR, else ./artifacts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print PROFILE_COMPARISON.json's document, not the table.")
def compare_command(symbol: str, day: str | None, hour: str | None, artifacts_dir: Path | None, as_json: bool) -> None:
    """Rank the profiles shadowed on an instrument over a day or an hour: Go first, then net_bps, then fewer
    failed gates. Exit 0 when the best profile is a Go, 1 when none is, 2 on an error."""
    try:
        period, hours = _period(day, hour)
        key = InstrumentId.parse(symbol).key
        base = artifacts_dir or settings.artifacts_dir()
        if not base.is_dir():
            raise RollupError(f"artifacts folder {base} does not exist: give --artifacts-dir or run shadow first")
        artifacts = ArtifactsResource(base_path=str(base))
        folders = {h: artifacts.shadow_folder(h, key) for h in hours}
        table, _ = compare_period(folders, period, pd.Timestamp.now(tz="UTC").isoformat())
    except (ValueError, InstrumentError) as exc:
        _fail(f"{symbol} {exc}" if isinstance(exc, RollupError) else str(exc))
    if as_json:
        click.echo(json.dumps(comparison_document(table, key, period), indent=2))
    else:
        click.echo(comparison_markdown(table, key, period, None), nl=False)
    raise SystemExit(0 if table["verdict"].iloc[0] == GO else 1)
