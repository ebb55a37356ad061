"""hftbacktest 2.4.4 as a second reality engine: hand-worked queue sequences where it and our queue-aware engine
must give the same fills (and the documented differences, each engine on its own), the two engines' KPIs on the
shared Binance recordings, and the message without the ``hbt`` extra.

Hand-built sequences use ``sim_helpers.BASE``: tick 0.1, lot step 0.1, order size 1.0, quotes at the touch,
entry latency 10 ms (an order sent at a tick is live from the first tick 10 ms later), no min requote,
max inventory 2 orders, hedge back to 1.0 (taker, 10 ms later). Displayed sizes are 3.0 unless said otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("hftbacktest", reason="hftbacktest (the hbt extra) is not installed: pip install -e '.[hbt]'")

from shadow_pipeline.domain.kpis.per_window import aggregate, iteration_kpis
from shadow_pipeline.domain.simulation.simulator import FeeModel, LatencyModel, QueueAware, Simulation, run
from shadow_pipeline.domain.strategies.profiles import StrategyParams, load_profiles, resolve
from shadow_pipeline.domain.validation.hftbacktest_engine import (
    QUEUE_MODELS,
    hftbacktest_available,
    hftbacktest_replay,
    to_events,
)
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.kpis_golden import CASES, generated_ticks
from shadow_pipeline_tests.sim_helpers import BASE, make_ticks, params, tick

COLUMNS = ["tick", "side", "price", "qty", "is_maker", "kind"]


def _ticks(rows: list[dict[str, Any]], size: float = 3.0) -> pd.DataFrame:
    ticks = make_ticks(rows)
    ticks["bid_qty"] = ticks["ask_qty"] = size
    return ticks


def ours(ticks: pd.DataFrame, p: StrategyParams = BASE) -> Simulation:
    return run(ticks, p, QueueAware(0.0), LatencyModel.of(p), FeeModel.of(p))


def fills(simulation: Simulation) -> list[tuple[Any, ...]]:
    frame = simulation.fills[COLUMNS].astype({"kind": str})
    return [(int(t), int(s), round(px, 6), round(q, 6), bool(m), k) for t, s, px, q, m, k in frame.to_numpy()]


def both(ticks: pd.DataFrame, p: StrategyParams = BASE) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return fills(ours(ticks, p)), fills(hftbacktest_replay(ticks, p))


def test_queue_ahead_is_taken_by_trades_at_the_price_before_we_fill() -> None:
    ticks = _ticks(
        [
            tick(0, 100.0, 100.1),  # 0: quote bid 100.0 and ask 100.1, live at 10 ms
            tick(20, 100.0, 100.1),  # 1: the bid joins behind the 3.0 displayed at 100.0
            tick(30, 100.0, 100.1, "sell", 100.0, 1.0),  # 2: queue ahead 3.0 -> 2.0
            tick(40, 100.0, 100.1, "sell", 100.0, 1.0),  # 3: 2.0 -> 1.0
            tick(50, 100.0, 100.1, "sell", 100.0, 2.0),  # 4: takes the last 1.0 ahead, then fills our 1.0
        ]
    )
    expected = [(4, 1, 100.0, 1.0, True, "trade")]
    assert both(ticks) == (expected, expected)


def test_a_trade_through_the_price_fills_whatever_the_queue() -> None:
    ticks = _ticks(
        [
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1),  # 1: behind 3.0
            tick(30, 100.0, 100.1, "sell", 99.9, 0.5),  # 2: a sell below our bid: everyone at 100.0 is filled
        ]
    )
    expected = [(2, 1, 100.0, 1.0, True, "trade")]
    assert both(ticks) == (expected, expected)


def test_touch_moving_away_leaves_us_at_the_front_until_the_cancel_lands() -> None:
    ticks = _ticks(
        [
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1),  # 1: behind 3.0
            tick(30, 99.9, 100.1),  # 2: 100.0 empties without trades: all ahead of us left; requote to 99.9 sent
            tick(35, 99.9, 100.1, "sell", 100.0, 1.0),  # 3: before the cancel lands (40 ms) a sell at 100.0 fills us
        ]
    )
    expected = [(3, 1, 100.0, 1.0, True, "trade")]
    assert both(ticks) == (expected, expected)


def test_a_post_only_order_that_would_cross_on_arrival_is_rejected() -> None:
    ticks = _ticks(
        [
            tick(0, 100.0, 100.1),  # 0: ask 100.1 sent
            tick(5, 100.1, 100.2),  # 1: the bid moves to 100.1: the ask arriving at 10 ms would cross, rejected
            tick(15, 100.1, 100.2, "buy", 100.2, 5.0),  # 2: a buy through 100.1 fills nothing of ours
        ]
    )
    assert both(ticks) == ([], [])


def test_inventory_limit_stops_the_side_and_the_hedge_takes_back_to_target() -> None:
    ticks = _ticks(
        [
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1, "sell", 99.9, 1.0),  # 1: bid filled: +1.0; a new bid live at 30 ms
            tick(40, 100.0, 100.1, "sell", 99.9, 1.0),  # 2: bid filled: +2.0 = the limit: hedge 1.0 sent, no bid
            tick(45, 100.0, 100.1, "sell", 99.9, 1.0),  # 3: no bid resting: nothing
            tick(60, 100.0, 100.1),  # 4: the hedge (due 50 ms) has sold 1.0 at the bid
        ]
    )
    expected = [
        (1, 1, 100.0, 1.0, True, "trade"),
        (2, 1, 100.0, 1.0, True, "trade"),
        (4, -1, 100.0, 1.0, False, "hedge"),
    ]
    assert both(ticks) == (expected, expected)
    assert hftbacktest_replay(ticks, BASE).inventory["position"].round(6).tolist() == [0.0, 1.0, 2.0, 2.0, 1.0]


def test_documented_difference_hedge_price() -> None:
    """Ours executes a hedge at the opposite touch of the first tick at or after it lands; hftbacktest at the
    touch in force when it reaches the exchange (the tick before)."""
    ticks = _ticks(
        [
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1, "sell", 99.9, 1.0),
            tick(40, 100.0, 100.1, "sell", 99.9, 1.0),  # hedge sent, lands at 50 ms
            tick(60, 99.9, 100.0),  # the bid has moved by the first tick after the hedge landed
        ]
    )
    hedge_ours, hedge_hbt = (sim[-1] for sim in both(ticks))
    assert hedge_ours == (3, -1, 99.9, 1.0, False, "hedge")
    assert hedge_hbt == (3, -1, 100.0, 1.0, False, "hedge")


def test_documented_difference_partial_fills() -> None:
    """A trade that exhausts the queue ahead with less than our size: ours fills the part (partial fills),
    hftbacktest's NoPartialFillExchange all of it."""
    ticks = _ticks(
        [
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1),
            tick(30, 100.0, 100.1, "sell", 100.0, 3.5),  # takes the 3.0 ahead, leaves 0.5 for us
        ]
    )
    mine, theirs = both(ticks)
    assert mine == [(2, 1, 100.0, 0.5, True, "trade")]
    assert theirs == [(2, 1, 100.0, 1.0, True, "trade")]


def test_events_are_one_wake_per_row_in_row_order() -> None:
    """Rows in one millisecond keep their order on hftbacktest's clock; an unchanged quote still wakes the
    strategy (local-only event), and a touch moving down zeroes the prices it left."""
    ticks = _ticks([tick(0, 100.0, 100.1), tick(0, 100.0, 100.1), tick(0, 99.8, 100.1), tick(1, 99.8, 100.1)])
    events = to_events(ticks, params())
    stamps = sorted(set(events["local_ts"].tolist()))
    assert len(stamps) == 4 and stamps[1] - stamps[0] == 1  # same millisecond: one scaled step apart
    zeroed = events[(events["local_ts"] == stamps[2]) & (events["qty"] == 0)]
    assert sorted(zeroed["px"].round(6).tolist()) == [99.9, 100.0]


def test_every_queue_model_runs() -> None:
    ticks = _ticks([tick(0, 100.0, 100.1), tick(20, 100.0, 100.1), tick(30, 100.0, 100.1, "sell", 99.9, 1.0)])
    for model in QUEUE_MODELS:
        assert len(hftbacktest_replay(ticks, BASE, model).fills) == 1
    with pytest.raises(ValueError, match="queue_model"):
        hftbacktest_replay(ticks, BASE, "fifo")


# (b) the two engines on the shared Binance recordings, moderate profile, 5 s windows


@pytest.fixture(scope="module", params=[CASES[0], CASES[2]], ids=lambda case: case.symbol)
def binance(request: pytest.FixtureRequest) -> tuple[pd.Series, pd.Series]:
    case = request.param
    assert case.recording is not None
    market_file(case.recording)
    ticks = generated_ticks(case)
    p, thresholds = resolve(load_profiles(), "moderate", case.symbol)
    reports = [
        aggregate(iteration_kpis(ticks, sim, p, thresholds, 5.0)).iloc[0]
        for sim in (ours(ticks, p), hftbacktest_replay(ticks, p, "risk_averse"))
    ]
    return reports[0], reports[1]


def test_binance_fills_agree(binance: tuple[pd.Series, pd.Series]) -> None:
    mine, theirs = binance
    assert 0.8 <= mine["total_fills"] / theirs["total_fills"] <= 1.25, (mine["total_fills"], theirs["total_fills"])


def test_binance_maker_share_agrees(binance: tuple[pd.Series, pd.Series]) -> None:
    mine, theirs = binance
    assert abs(mine["maker_taker_ratio"] - theirs["maker_taker_ratio"]) <= 0.03
    assert abs(mine["maker_count_share"] - theirs["maker_count_share"]) <= 0.03


def test_binance_net_bps_agrees(binance: tuple[pd.Series, pd.Series]) -> None:
    mine, theirs = binance
    assert abs(mine["net_bps"] - theirs["net_bps"]) <= 0.5, (mine["net_bps"], theirs["net_bps"])


# (c) without the extra


def test_without_hftbacktest_the_engine_says_how_to_install_it() -> None:
    script = """
import sys
sys.modules["hftbacktest"] = None  # import hftbacktest now raises ImportError
from shadow_pipeline.domain.validation.hftbacktest_engine import (
    HftbacktestMissing,
    hftbacktest_available,
    hftbacktest_replay,
)
from shadow_pipeline_tests.sim_helpers import BASE, make_ticks, tick
assert not hftbacktest_available()
try:
    hftbacktest_replay(make_ticks([tick(0, 100.0, 100.1)]), BASE)
except HftbacktestMissing as exc:
    print(exc)
else:
    raise SystemExit("no HftbacktestMissing")
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env={"PYTHONPATH": str(root)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "hftbacktest is not installed: pip install -e '.[hbt]' (make test installs it)" in done.stdout
    assert hftbacktest_available()
