"""The synthetic market fills a queue-aware quote like the recorded market does (the refit's acceptance).

On the ``moderate`` profile with the queue-aware engine at ``size_decrease_share`` 0 and 5 s windows, the synthetic
market's fills per hour, maker share and net_bps are within 2x, 5 pp and 1 bp of the Binance USD-M recordings of
2024-08-08 (345 s each, scaled to an hour), per symbol and seed; its touch statistics (``microstructure.measure``)
are within the tolerances below. Skips when the recordings are absent.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.per_window import aggregate, iteration_kpis
from shadow_pipeline.domain.market.microstructure import both_sides, measure
from shadow_pipeline.domain.market.synthetic import generate, market_for
from shadow_pipeline.domain.market.ticks import FIELDS, parse_table
from shadow_pipeline.domain.simulation.simulator import FeeModel, LatencyModel, QueueAware, run
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.feed.recordings import read_binance
from shadow_pipeline.feed.replay import number_ticks
from shadow_pipeline_tests.conftest import market_file

SYNTHETIC_SECONDS = 1200
SEEDS = (1, 2)
# statistic: (kind, tolerance); "ratio": within that factor either way, "abs": within that absolute difference
TOLERANCES = {
    "touch_lots_q50": ("ratio", 2.0),
    "lifetime_ms_median": ("ratio", 2.0),
    "spread_one_tick_share": ("abs", 0.05),
    "trades_per_s": ("ratio", 1.3),
    "quotes_per_s": ("ratio", 1.3),
    "buy_share": ("abs", 0.05),
    "move_ticks_median": ("ratio", 1.6),
    "mid_5s_std_ticks": ("ratio", 2.5),
    "trade_lots_median": ("ratio", 2.0),
}


def _typed(source: pd.DataFrame, symbol: str) -> pd.DataFrame:
    numbered = number_ticks(source[source["symbol"] == symbol].reset_index(drop=True), {})
    ticks = parse_table({c: numbered[c].astype(str).to_numpy(dtype=object) for c in FIELDS}).ticks
    return ticks.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)


@cache
def _recorded(symbol: str) -> pd.DataFrame:
    return _typed(read_binance([market_file(f"binance_hftbacktest/usdm/{symbol.lower()}_20240808.gz")]), symbol)


@cache
def _synthetic(symbol: str, seed: int) -> pd.DataFrame:
    return _typed(pd.concat(list(generate([symbol], SYNTHETIC_SECONDS, seed=seed)), ignore_index=True), symbol)


def _fill_kpis(ticks: pd.DataFrame, symbol: str) -> dict[str, float]:
    params, thresholds = resolve(load_profiles(), "moderate", symbol)
    simulation = run(ticks, params, QueueAware(0.0), LatencyModel.of(params), FeeModel.of(params))
    summary = aggregate(iteration_kpis(ticks, simulation, params, thresholds, 5.0)).iloc[0]
    span_h = (ticks["ts_server"].iloc[-1] - ticks["ts_server"].iloc[0]) / 3.6e12
    return {
        "fills_per_h": float(summary["total_fills"]) / span_h,
        "maker_share": float(summary["maker_count_share"]),
        "net_bps": float(summary["net_bps"]),
    }


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_queue_fills_like_the_recording(symbol: str, seed: int) -> None:
    real = _fill_kpis(_recorded(symbol), symbol)
    synthetic = _fill_kpis(_synthetic(symbol, seed), symbol)
    assert 0.5 < synthetic["fills_per_h"] / real["fills_per_h"] < 2.0, (real, synthetic)
    assert abs(synthetic["maker_share"] - real["maker_share"]) < 0.05, (real, synthetic)
    assert abs(synthetic["net_bps"] - real["net_bps"]) < 1.0, (real, synthetic)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_touch_statistics_like_the_recording(symbol: str) -> None:
    market = market_for(symbol)
    real = both_sides(measure(_recorded(symbol), market.tick_size, market.lot_size))
    synthetic = both_sides(measure(_synthetic(symbol, SEEDS[0]), market.tick_size, market.lot_size))
    for name, (kind, tolerance) in TOLERANCES.items():
        if kind == "ratio":
            assert 1 / tolerance < synthetic[name] / real[name] < tolerance, (name, real[name], synthetic[name])
        else:
            assert abs(synthetic[name] - real[name]) < tolerance, (name, real[name], synthetic[name])
