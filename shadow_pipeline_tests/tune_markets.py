"""Hand-built markets whose best strategy parameters are known by construction, for the tuner's tests."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from shadow_pipeline.domain.strategies.profiles import FILL_QUEUE, Thresholds
from shadow_pipeline.domain.tuning.tuner import Hour
from shadow_pipeline_tests.sim_helpers import BASE, make_ticks, tick

HOUR_NS = 3_600_000_000_000
WINDOW_S = 5.0
# The shadow's default fill model on the simulator tests' instrument (tick 0.1, order 1.0 behind 1.0 displayed).
QUEUE_BASE = replace(BASE, fill_model=FILL_QUEUE, max_inventory=5, markout_horizon_s=1.0)
# Gates that only the market's KPIs decide: two ticks make a window, five windows a verdict.
GATES = Thresholds(
    min_maker_share=0.83,
    min_net_bps=2.5,
    max_p95_latency_ms=350,
    max_risk_ratio=0.40,
    min_windows=5,
    min_ticks_per_window=2,
)


def overshooting_market(cycles: int = 60) -> pd.DataFrame:
    """Flow sweeps the touch and the price overshoots by a tick before it half reverts: a quote at the touch is
    filled at the worst price and marked out a tick lower (-5 bps), a quote one tick behind is filled at the
    overshoot and marked out a tick higher (+5 bps), two ticks behind is never reached. Only offset 1 earns."""
    rows = []
    for c in range(cycles):
        t = c * 4000
        rows += [
            tick(t, 100.0, 100.1),
            tick(t + 500, 100.0, 100.1, "sell", 100.0, 5.0),
            tick(t + 510, 99.8, 99.9),
            tick(t + 600, 99.9, 100.0),
            tick(t + 2000, 99.9, 100.0, "buy", 100.0, 5.0),
            tick(t + 2010, 100.1, 100.2),
            tick(t + 2100, 100.0, 100.1),
        ]
    return make_ticks(rows)


def range_bound_market(cycles: int = 120) -> pd.DataFrame:
    """The touch never moves and sells and buys alternate at it: a quote at the touch earns the half spread on
    both sides, a quote behind it is never filled. Only offset 0 earns."""
    rows = []
    for c in range(cycles):
        t = c * 2000
        side, px = ("sell", 100.0) if c % 2 == 0 else ("buy", 100.1)
        rows += [tick(t + ms, 100.0, 100.1) for ms in range(0, 2000, 250)]
        rows.insert(len(rows) - 4, tick(t + 900, 100.0, 100.1, side, px, 5.0))
    return make_ticks(rows)


def one_sided_market(cycles: int = 200) -> pd.DataFrame:
    """Only sellers, at a touch that never moves: every bid fill adds a lot and only the hedge at the limit takes
    inventory off, so the time-weighted inventory use grows with the limit (about (N - 1) / 2N)."""
    rows = []
    for c in range(cycles):
        t = c * 1000
        rows += [tick(t + ms, 100.0, 100.1) for ms in range(0, 1000, 100)]
        rows.insert(len(rows) - 5, tick(t + 450, 100.0, 100.1, "sell", 100.0, 5.0))
    return make_ticks(rows)


def as_hour(ticks: pd.DataFrame, number: int) -> Hour:
    """``ticks`` moved ``number`` hours later, as the hour ``h<number>`` (labels sort like partition keys)."""
    shifted = ticks.copy()
    for column in ("ts_server", "ts_local", "ts_broker"):
        shifted[column] = shifted[column] + number * HOUR_NS
    return Hour.of(f"h{number:02d}", shifted, QUEUE_BASE, WINDOW_S)
