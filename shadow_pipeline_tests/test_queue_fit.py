"""The fit of the queue model's unknowns to a bot's fills recovers the share and latency the fills came from.

The "bot" here is the queue model run with parameters the fit is not told; its fills are the reality. The fit
sees only the per-window KPIs of those fills, and must single out the generating pair from the grid."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.domain.validation.queue_fit import fit_queue
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.kpis_golden import CASES, case_ticks

CASE = {case.name: case for case in CASES}


@pytest.mark.parametrize(
    ("case", "share", "latency_factor"),
    [("synthetic_btcusdt_seed1_5s", 0.25, 4.0), ("binance_btcusdt_5s", 0.75, 2.0), ("binance_ethusdt_5s", 0.0, 0.5)],
)
def test_the_fit_recovers_the_share_and_latency_of_the_fills(case: str, share: float, latency_factor: float) -> None:
    chosen = CASE[case]
    if chosen.recording is not None:
        market_file(chosen.recording)
    ticks = case_ticks(chosen)
    params, thresholds = resolve(load_profiles(), "moderate", chosen.symbol)
    truth = replace(
        params, size_decrease_share=share, order_entry_latency_ms=params.order_entry_latency_ms * latency_factor
    )
    bot = iteration_kpis(ticks, simulate(ticks, truth), truth, thresholds, 5.0)
    fit = fit_queue(ticks, params, thresholds, 5.0, bot)
    assert (fit.best.size_decrease_share, fit.best.order_entry_latency_ms) == (share, truth.order_entry_latency_ms)
    top, runner_up = fit.table.iloc[0], fit.table.iloc[1]
    assert top["fills_wpe"] == 0 and runner_up["fills_wpe"] > 0  # singled out, not a tie broken by order
    assert len(fit.table) == 20 and f"size_decrease_share {share:g}" in fit.summary
