"""The touch + dwell simulator on hand-built ticks (arithmetic in the comments) and on random ticks (properties)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from shadow_pipeline.domain.simulation.simulator import FeeModel, LatencyModel, TouchDwell, run, simulate
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline_tests.sim_helpers import MS, T0, make_ticks, params, strategies, tick, tick_sequences


def test_bid_past_dwell_fills_at_quote_price_with_rebate() -> None:
    # t=0 decides bid 100.0 / ask 100.2; live at 0 + 10 ms latency; eligible from 10 + 100 ms dwell = 110 ms.
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),
            tick(50, 100.0, 100.2),
            tick(120, 100.0, 100.2, "sell", 100.0, 1.0),  # a sell prints at our bid after the dwell
            tick(1200, 100.1, 100.3),
        ]
    )
    fills = simulate(ticks, params()).fills
    assert len(fills) == 1
    fill = fills.iloc[0]
    assert (fill.ts, fill.side, fill.price, fill.qty, fill.kind) == (T0 + 120 * MS, 1, 100.0, 1.0, "trade")
    assert fill.is_maker
    assert fill.quote_live_ts == T0 + 10 * MS
    assert fill.fee_rate == -0.0001
    assert fill.fee == pytest.approx(100.0 * 1.0 * -0.0001)  # -0.01: a rebate received
    assert fill.mid_before == pytest.approx(100.1)  # (100.0 + 100.2) / 2 at the tick before
    # markout mid: the last tick at or before 120 ms + 1 s = 1120 ms is the 120 ms tick -> 100.1
    assert fill.mid_markout == pytest.approx(100.1)
    assert fill.position_after == 1.0


def test_trade_before_dwell_does_not_fill() -> None:
    # live at 10 ms, eligible at 110 ms: a sell at 100 ms through the bid is too early.
    ticks = make_ticks([tick(0, 100.0, 100.2), tick(100, 100.0, 100.2, "sell", 99.9, 5.0)])
    assert simulate(ticks, params()).fills.empty


def test_buy_aggressor_does_not_fill_the_bid() -> None:
    ticks = make_ticks([tick(0, 100.0, 100.2), tick(150, 100.0, 100.2, "buy", 100.0, 5.0)])
    assert simulate(ticks, params()).fills.empty


def test_partial_fills_add_up_and_keep_eligibility() -> None:
    # order 1.0 at 100.0 (live 10 ms): sells of 0.4 and 0.3 fill partly; the third (0.5) fills the last 0.3.
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),
            tick(120, 100.0, 100.2, "sell", 100.0, 0.4),
            tick(130, 100.0, 100.2, "sell", 99.9, 0.3),  # through the price: fills at our 100.0
            tick(140, 100.0, 100.2, "sell", 100.0, 0.5),
            tick(145, 100.0, 100.2, "sell", 100.0, 0.5),  # the side was requoted at 140: live at 150, no fill
        ]
    )
    fills = simulate(ticks, params()).fills
    assert fills["qty"].tolist() == pytest.approx([0.4, 0.3, 0.3])  # 0.4 + 0.3 + 0.3 = 1.0
    assert fills["price"].tolist() == [100.0, 100.0, 100.0]
    assert fills["quote_live_ts"].tolist() == [T0 + 10 * MS] * 3
    assert fills["position_after"].tolist() == pytest.approx([0.4, 0.7, 1.0])


def test_crossing_touch_fills_all_that_remains() -> None:
    # after the dwell the ask touch drops to 99.9 <= our bid 100.0: the whole order (1.0) fills at 100.0.
    ticks = make_ticks([tick(0, 100.0, 100.2), tick(200, 99.8, 99.9)])
    fills = simulate(ticks, params()).fills
    assert len(fills) == 1
    fill = fills.iloc[0]
    assert (fill.kind, fill.side, fill.price, fill.qty, fill.is_maker) == ("cross", 1, 100.0, 1.0, True)
    assert fill.mid_before == pytest.approx(100.1)  # the touch before the crossing tick
    assert math.isnan(fill.mid_markout)  # 200 ms + 1 s is beyond the last tick


def test_requote_goes_live_after_latency_and_the_old_quote_rests_meanwhile() -> None:
    # t=200: touch up to 100.1 -> new bid 100.1 sent, live at 210. At 205 the old bid (100.0) still rests.
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),
            tick(200, 100.1, 100.3),
            tick(205, 100.1, 100.3, "sell", 100.0, 1.0),  # fills the old bid at 100.0
        ]
    )
    fills = simulate(ticks, params()).fills
    assert fills["price"].tolist() == [100.0]
    assert fills["quote_live_ts"].tolist() == [T0 + 10 * MS]


def test_post_only_order_that_would_cross_is_rejected() -> None:
    # offset 0: the bid decided at 0 (100.0) goes live at 10, but the ask fell to 100.0 at 5: rejected, no fill
    # later even though a sell prints at 100.0 after the dwell; the requote decided at 5 (99.9) is the live bid.
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),
            tick(5, 99.9, 100.0),
            tick(12, 99.9, 100.0),
            tick(200, 99.9, 100.0, "sell", 100.0, 1.0),
        ]
    )
    assert simulate(ticks, params()).fills.empty


def test_inventory_at_the_limit_is_hedged_as_taker_at_the_opposite_touch() -> None:
    # max_inventory 1 lot (1.0), dwell 0, latency 10 ms (+ 0 ms decision), hedge target 0.5 * 1.0.
    p = params(max_inventory=1, touch_dwell_ms=0)
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),  # bid 100.0 and ask 100.2 sent, live at 10
            tick(20, 100.0, 100.2),
            tick(105, 100.0, 100.2, "sell", 100.0, 1.0),  # bid fills: position 1.0 = the limit -> hedge due 115
            tick(130, 100.0, 100.1),  # hedge sells 1.0 - 0.5 = 0.5 at this tick's bid 100.0
        ]
    )
    sim = simulate(ticks, p)
    fills = sim.fills
    assert fills["kind"].tolist() == ["trade", "hedge"]
    hedge = fills.iloc[1]
    assert (hedge.side, hedge.price, hedge.is_maker) == (-1, 100.0, False)
    assert hedge.qty == pytest.approx(0.5)
    assert hedge.fee == pytest.approx(100.0 * 0.5 * 0.0005)  # 0.025 taker fee
    assert hedge.fee_rate == pytest.approx(0.0005)
    assert hedge.quote_live_ts == T0 + 115 * MS
    assert hedge.mid_before == pytest.approx(100.05)  # the touch it crossed
    assert sim.inventory["position"].tolist() == pytest.approx([0, 0, 1, 0.5])


def test_decision_latency_delays_the_order_too() -> None:
    # order live at decision 5 ms + entry 10 ms = 15 ms: a trade through the bid at 12 ms finds nothing resting
    ticks = make_ticks([tick(0, 100.0, 100.2), tick(12, 100.0, 100.2, "sell", 100.0, 1.0), tick(16, 100.0, 100.2)])
    assert simulate(ticks, params(touch_dwell_ms=0, decision_latency_ms=5.0)).fills.empty
    filled = simulate(ticks, params(touch_dwell_ms=0, decision_latency_ms=0.0)).fills
    assert len(filled) == 1 and filled.iloc[0].quote_live_ts == T0 + 10 * MS


def test_no_quote_on_a_side_that_would_breach_the_limit() -> None:
    # max 1 lot: after the bid fills (position 1.0) no new bid is sent, so a later sell cannot add to it.
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),
            tick(150, 100.0, 100.2, "sell", 100.0, 1.0),
            tick(400, 100.0, 100.2, "sell", 100.0, 1.0),
        ]
    )
    sim = simulate(ticks, params(max_inventory=1, hedge_mode="none"))
    assert len(sim.fills) == 1
    assert sim.inventory["position"].max() == 1.0


# --- properties on random, valid tick sequences ---------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(tick_sequences(), strategies)
def test_fill_rules_hold_on_random_ticks(ticks: pd.DataFrame, p: StrategyParams) -> None:
    sim = simulate(ticks, p)
    fills = sim.fills
    makers = fills[fills["is_maker"]]
    at = ticks.iloc[makers["tick"].to_numpy()]
    buy = makers["side"].to_numpy() > 0
    # a maker fill needs a trade at/through the quote by the opposite aggressor, or a touch crossing it
    through = np.where(
        buy,
        at["last_px"].to_numpy() <= makers["price"].to_numpy() + 1e-9,
        at["last_px"].to_numpy() >= makers["price"].to_numpy() - 1e-9,
    )
    aggressor = np.where(buy, at["last_side"].to_numpy() == "sell", at["last_side"].to_numpy() == "buy")
    crossed = np.where(
        buy,
        at["ask"].to_numpy() <= makers["price"].to_numpy() + 1e-9,
        at["bid"].to_numpy() >= makers["price"].to_numpy() - 1e-9,
    )
    assert np.all((at["is_trade"].to_numpy() & aggressor & through) | crossed)
    # never before the dwell
    assert np.all(makers["ts"].to_numpy() - makers["quote_live_ts"].to_numpy() >= p.touch_dwell_ms * MS)
    # inventory stays within one order of the limit
    assert np.all(np.abs(sim.inventory["position"].to_numpy()) <= p.max_position + p.min_lot + 1e-9)
    # same input, same output
    again = simulate(ticks, p)
    pd.testing.assert_frame_equal(fills, again.fills)
    pd.testing.assert_frame_equal(sim.inventory, again.inventory)


def test_an_order_in_flight_is_not_recalled_by_the_next_decision() -> None:
    # latency 50 ms, requote at any time: the touch flips while the first bid is in flight. That bid still goes
    # live at 50 ms (the later decisions wait for it) and a sell at 55 ms fills it.
    p = params(touch_dwell_ms=0, order_entry_latency_ms=50, min_requote_ms=0)
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),  # bid 100.0 sent, live at 50
            tick(10, 100.1, 100.2),  # wants 100.1, but the side has an order in flight: waits
            tick(20, 100.0, 100.2),
            tick(55, 100.0, 100.2, "sell", 100.0, 1.0),
        ]
    )
    fills = simulate(ticks, p).fills
    assert len(fills) == 1
    assert (fills.iloc[0].price, fills.iloc[0].quote_live_ts) == (100.0, T0 + 50 * MS)


@settings(max_examples=30, deadline=None)
@given(tick_sequences(), strategies)
def test_the_kernel_takes_its_models_not_the_profiles_counterparts(ticks: pd.DataFrame, p: StrategyParams) -> None:
    # The profile's dwell, latencies and fees are only where simulate() takes its models from: a profile with other
    # values for them runs the same under the same models, and the fee model alone sets the fees.
    other = replace(p, touch_dwell_ms=7.0, decision_latency_ms=3.0, order_entry_latency_ms=99.0, maker_fee_rate=0.5)
    shadow = simulate(ticks, p)
    same = run(ticks, other, TouchDwell.of(p), LatencyModel.of(p), FeeModel.of(p))
    pd.testing.assert_frame_equal(same.fills, shadow.fills)
    pd.testing.assert_frame_equal(same.inventory, shadow.inventory)
    free = run(ticks, p, TouchDwell.of(p), LatencyModel.of(p), FeeModel(0.0, 0.0)).fills
    fees = ["fee", "fee_rate"]
    pd.testing.assert_frame_equal(free.drop(columns=fees), shadow.fills.drop(columns=fees))
    assert (free["fee"] == 0).all() and (free["fee_rate"] == 0).all()
