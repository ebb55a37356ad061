"""Shadow iterations built by the real domain code from the synthetic market, for export and alert tests."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.shadow.assets import ShadowConfig, live_ready_profile, shadow_iterations, shadow_report
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.kpis.run_notes import RunNotes, run_notes, with_notes
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.domain.market.ticks import FIELDS, parse_table
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.feed.replay import number_ticks
from shadow_pipeline.reporting.snapshot import judge_partition, report_row

SHADOW_ASSETS = [landing_zone, raw_ticks, normalized_ticks, shadow_iterations, shadow_report, live_ready_profile]
LOOSE_THRESHOLDS = {
    "min_maker_share": 0.0,
    "min_net_bps": -10_000.0,  # the loosest gates the profiles schema takes
    "max_p95_latency_ms": 3_600_000.0,
    "max_risk_ratio": 100.0,
    "min_windows": 1,
    "min_ticks_per_window": 1,
}


def synthetic_iterations(
    symbol: str = "BTCUSDT", seconds: float = 120, window_s: float = 10, gap_s: tuple[float, float] | None = None
) -> pd.DataFrame:
    """What shadow_iterations stores for ``seconds`` of the synthetic market (moderate profile); ``gap_s``: seconds
    after the start without ticks (windows there are invalid whatever the market does)."""
    frame = number_ticks(pd.concat(list(generate([symbol], seconds, seed=5)), ignore_index=True), {})
    ticks = parse_table({c: frame[c].astype(str).to_numpy(dtype=object) for c in FIELDS}).ticks
    ticks = ticks.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)
    if gap_s is not None:
        since = (ticks["ts_server"] - ticks["ts_server"].iloc[0]) / 1e9
        ticks = ticks[(since < gap_s[0]) | (since >= gap_s[1])].reset_index(drop=True)
    params, thresholds = resolve(load_profiles(), "moderate", symbol)
    iterations = iteration_kpis(ticks, simulate(ticks, params), params, thresholds, window_s)
    hour = str(hour_keys(ticks["ts_server"].to_numpy()[:1])[0])
    notes = RunNotes(hour, symbol, "moderate", window_s, "test", "synthetic", params, thresholds, "", "", 0.0)
    return with_notes(iterations, notes)


def synthetic_report(iterations: pd.DataFrame) -> dict[str, Any]:
    """The shadow_report row of ``iterations`` (what export reads for the hashes)."""
    snapshot, _ = judge_partition(iterations, run_notes(iterations), "2024-08-09T00:00:00+00:00")
    return report_row(snapshot)


def partition_of(iterations: pd.DataFrame) -> str:
    return run_notes(iterations).partition


def shadow_run_config(**fields: Any) -> dg.RunConfig:
    """Typed run config of shadow_iterations, as the CLI builds it."""
    return dg.RunConfig(ops={"shadow_iterations": ShadowConfig(**fields)})


def loose_profiles(folder: Path) -> str:
    """The packaged profiles with ``moderate``'s gates at their loosest: a Go on any hour with a valid window."""
    data = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text())
    data["profiles"]["moderate"]["thresholds"] = LOOSE_THRESHOLDS
    data.pop("$schema", None)
    path = folder / "loose_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)
