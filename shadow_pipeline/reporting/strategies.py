"""``python -m shadow_pipeline.reporting.strategies``: strategies side by side on the same recorded ticks.

Why: a new strategy is judged against the one it would replace on the same market, under the same profile
(fill, latency and fee models, inventory limit, hedge), by the shadow and by the hftbacktest reality; the
table is what ``docs/strategies.md`` shows for the packaged two on the shared Binance recordings.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from shadow_pipeline import settings
from shadow_pipeline.domain.kpis.per_window import aggregate, iteration_kpis
from shadow_pipeline.domain.market.ticks import FIELDS, parse_table
from shadow_pipeline.domain.simulation.simulator import Simulation, simulate
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.domain.strategies.registry import STRATEGIES
from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_available, hftbacktest_replay
from shadow_pipeline.feed.recordings import read_binance
from shadow_pipeline.feed.replay import number_ticks

RECORDINGS = ("binance_hftbacktest/usdm/btcusdt_20240808.gz", "binance_hftbacktest/usdm/ethusdt_20240808.gz")
COLUMNS = ("total_fills", "maker_count_share", "net_bps", "pnl", "risk_ratio")
WINDOW_S = 5.0


def recorded_ticks(path: Path) -> dict[str, pd.DataFrame]:
    """Typed ticks per symbol of a Binance recording, in (ts_server, seq) order, as ``normalized_ticks`` holds
    them."""
    frame = read_binance([path])
    ticks = {}
    for symbol, rows in frame.groupby("symbol", sort=True):
        numbered = number_ticks(rows.reset_index(drop=True), {})
        typed = parse_table({c: numbered[c].astype(str).to_numpy(dtype=object) for c in FIELDS}).ticks
        ticks[str(symbol)] = typed.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)
    return ticks


def compare(
    ticks: dict[str, pd.DataFrame], profile: str, strategies: Sequence[str], profiles_file: str | None = None
) -> pd.DataFrame:
    """One row per (symbol, strategy, engine): the summary KPIs of ``COLUMNS`` over ``WINDOW_S`` windows."""
    profiles = load_profiles(profiles_file)
    rows = []
    for symbol, frame in ticks.items():
        base, thresholds = resolve(profiles, profile, symbol)
        for strategy in strategies:
            params = replace(base, strategy=strategy, strategy_params={})
            engines: dict[str, Simulation] = {"shadow": simulate(frame, params)}
            if hftbacktest_available():
                engines["hftbacktest"] = hftbacktest_replay(frame, params)
            for engine, simulation in engines.items():
                summary = aggregate(iteration_kpis(frame, simulation, params, thresholds, WINDOW_S)).iloc[0]
                rows.append({"symbol": symbol, "strategy": strategy, "engine": engine, **summary[list(COLUMNS)]})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="strategies' KPIs side by side on recorded ticks")
    parser.add_argument("--profile", default="moderate", help="the profile whose models and limits all share")
    parser.add_argument("--strategy", action="append", help="packaged name or module:attribute (repeatable)")
    parser.add_argument("--profiles-file", help="profiles JSON (default: $SHADOW_PROFILES, else the packaged)")
    args = parser.parse_args(argv)
    folder = settings.market_data_dir(Path.cwd().parent / "shared/data/market")
    ticks: dict[str, pd.DataFrame] = {}
    for recording in RECORDINGS:
        ticks.update(recorded_ticks(folder / recording))
    table = compare(ticks, args.profile, args.strategy or list(STRATEGIES), args.profiles_file)
    print(f"profile {args.profile}, {WINDOW_S:g} s windows, recordings under {folder}")
    print(table.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
