"""A bot's reported fills turned into a Simulation, and the KPIs that come out (arithmetic in the comments)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.validation.actual_fills import simulation_from_fills
from shadow_pipeline_tests.sim_helpers import MS, T0, gates, make_ticks, params, tick

GATES = gates(min_windows=1)
# mids 100.1, 100.2, 100.1, 100.1 at 0, 1, 2, 3 s: one 5 s window
TICKS = make_ticks(
    [tick(0, 100.0, 100.2), tick(1000, 100.1, 100.3), tick(2000, 100.0, 100.2), tick(3000, 100.0, 100.2)]
)


def _fills(**changes: Any) -> pd.DataFrame:
    """A maker buy of 2.0 at 100.0 (0.5 s, 1 bp rebate) and a taker sell of 1.0 at 100.0 (1.5 s, 5 bp fee)."""
    frame = pd.DataFrame(
        {
            "ts": np.array([T0 + 500 * MS, T0 + 1500 * MS], dtype=np.int64),
            "side": ["buy", "sell"],
            "price": [100.0, 100.0],
            "qty": [2.0, 1.0],
            "is_maker": [True, False],
            "fee": [-0.02, 0.05],
        }
    )
    return frame.assign(**changes)


def test_fills_table_by_hand() -> None:
    sim = simulation_from_fills(_fills(), TICKS, params())
    fills = sim.fills
    assert fills["kind"].tolist() == ["trade", "hedge"]
    assert fills["side"].tolist() == [1, -1]
    assert fills["tick"].tolist() == [0, 1]
    assert fills["fee_rate"].tolist() == pytest.approx([-0.0001, 0.0005])  # -0.02 / 200, 0.05 / 100
    assert fills["mid_before"].tolist() == pytest.approx([100.1, 100.2])  # the ticks at 0 s and 1 s
    assert fills["mid_markout"].tolist() == pytest.approx([100.2, 100.1])  # the ticks at 1 s and 2 s (1 s later)
    assert fills["position_after"].tolist() == pytest.approx([2.0, 1.0])
    assert fills["quote_live_ts"].tolist() == fills["ts"].tolist()
    assert sim.inventory["position"].tolist() == pytest.approx([0.0, 2.0, 1.0, 1.0])


def test_kpis_by_hand() -> None:
    # maker share = 200 / (200 + 100) = 2/3.
    # maker: markout +1*(100.2 - 100)/100*1e4 = 20 bps, fee -1 bp -> 21 bps; taker: -1*(100.1 - 100)/100*1e4
    # = -10 bps, fee 5 bps -> -15 bps; net = (200*21 + 100*-15) / 300 = 9 bps.
    # pnl: cash -200 + 0.02 + 100 - 0.05 = -100.03, position 1.0 at mid 100.1 -> 100.1 - 100.03 = 0.07.
    # risk: |position| / 2.0 is 0, 1, 0.5 for 1 s each (the last tick has no duration) -> 0.5.
    sim = simulation_from_fills(_fills(), TICKS, params())
    kpis = iteration_kpis(TICKS, sim, params(), GATES, 5.0)
    row = kpis.iloc[0]
    assert len(kpis) == 1
    assert (row.maker_count, row.taker_count) == (1, 1)
    assert row.maker_taker_ratio == pytest.approx(2 / 3)
    assert row.maker_count_share == pytest.approx(0.5)
    assert row.net_bps == pytest.approx(9.0)
    assert row.pnl == pytest.approx(0.07)
    assert row.risk_ratio == pytest.approx(0.5)


def test_unsorted_fills_are_taken_in_time_order() -> None:
    sim = simulation_from_fills(_fills().iloc[::-1], TICKS, params())
    assert sim.fills["position_after"].tolist() == pytest.approx([2.0, 1.0])


@pytest.mark.parametrize(
    ("fills", "message"),
    [
        (_fills().drop(columns=["fee", "is_maker"]), "missing columns is_maker, fee"),
        (_fills(side=["buy", "long"]), "side must be 'buy' or 'sell', got 'long'"),
        (_fills(qty=[2.0, 0.0]), "qty must be positive"),
        (_fills(price=[100.0, np.nan]), "price must be numeric without NaN"),
        (_fills(fee=["a", "b"]), "fee must be numeric"),
        (_fills(is_maker=[1, 0]), "is_maker must be bool"),
        (_fills(ts=[1.5, 2.5]), "ts must be int64 nanoseconds"),
        (_fills(ts=np.array([T0, T0 + MS], dtype=np.int64)), "has no tick before it"),
    ],
)
def test_bad_fills_are_refused(fills: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulation_from_fills(fills, TICKS, params())


def test_no_ticks_is_refused() -> None:
    with pytest.raises(ValueError, match="ticks: empty"):
        simulation_from_fills(_fills(), TICKS.iloc[:0], params())
