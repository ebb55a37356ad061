"""The queue fill model on hand-built ticks with displayed sizes (queue arithmetic in the comments).

Unless a test says otherwise: order size 1.0 (10 lot steps of 0.1), latency 10 ms, the bid at 100.0 decided at
0 ms and live at 10 ms, joining the queue shown at 100.0 by the touch in force then.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from shadow_pipeline.domain.simulation.simulator import FeeModel, LatencyModel, QueueAware, Simulation, run, simulate
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline_tests.sim_helpers import MS, T0, make_ticks, params, strategies, tick, tick_sequences


def queue(ticks: pd.DataFrame, p: StrategyParams, share: float = 0.0, cancel_ms: float | None = None) -> Simulation:
    """The strategy of ``p`` under the queue fill model (``p`` itself is a dwell profile: see ``sim_helpers``)."""
    return run(ticks, p, QueueAware(share), LatencyModel.of(p, cancel_ms=cancel_ms), FeeModel.of(p))


def sized(*rows: tuple[dict[str, Any], float]) -> pd.DataFrame:
    """Ticks with the displayed bid size given per row (trade ticks repeat the last quote's, as recorded)."""
    ticks = make_ticks([row for row, _ in rows])
    ticks["bid_qty"] = [size for _, size in rows]
    return ticks


def test_order_behind_five_lots_fills_after_five_have_traded_at_its_price() -> None:
    # order 3.0; the touch shows 5.0 at 100.0 when it goes live: queue ahead 5.0.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(20, 100.0, 100.2, "sell", 100.0, 2.0), 5.0),  # ahead 5 - 2 = 3, nothing for us
        (tick(21, 100.0, 100.2), 3.0),  # the book shows the trade: 5 - 3 = 2 = the trade, no cancel
        (tick(40, 100.0, 100.2, "sell", 100.0, 2.0), 3.0),  # ahead 3 - 2 = 1
        (tick(41, 100.0, 100.2), 1.0),
        (tick(60, 100.0, 100.2, "sell", 100.0, 3.0), 1.0),  # 1 takes the last lot ahead, 2 fill us
        (tick(61, 100.0, 100.2), 4.0),  # others join behind us
        (tick(80, 100.0, 100.2, "sell", 100.0, 1.5), 4.0),  # ahead 0: fills our last 1.0
    )
    fills = queue(ticks, params(min_lot=3.0)).fills
    assert fills["ts"].tolist() == [T0 + 60 * MS, T0 + 80 * MS]
    assert fills["qty"].tolist() == pytest.approx([2.0, 1.0])  # partial fills add up to the order's 3.0
    assert fills["position_after"].tolist() == pytest.approx([2.0, 3.0])
    assert fills["kind"].tolist() == ["trade", "trade"]
    assert fills["price"].tolist() == [100.0, 100.0]
    assert fills["quote_live_ts"].tolist() == [T0 + 10 * MS] * 2
    assert fills["queue_ahead_at_entry"].tolist() == pytest.approx([5.0, 5.0])


def test_trades_before_the_order_is_live_neither_fill_nor_advance_it() -> None:
    # decision 5 ms + entry 10 ms: live at 15 ms, behind the 2.0 the touch shows after the 12 ms trade.
    ticks = sized(
        (tick(0, 100.0, 100.2), 4.0),
        (tick(12, 100.0, 100.2, "sell", 100.0, 2.0), 4.0),  # not live yet: not ours, not our queue
        (tick(13, 100.0, 100.2), 2.0),
        (tick(20, 100.0, 100.2, "sell", 100.0, 2.0), 2.0),  # goes live at this tick: ahead 2 - 2 = 0
        (tick(30, 100.0, 100.2, "sell", 100.0, 1.0), 2.0),  # fills 1.0
    )
    fills = queue(ticks, params(decision_latency_ms=5.0)).fills
    assert fills["ts"].tolist() == [T0 + 30 * MS]
    assert fills["qty"].tolist() == pytest.approx([1.0])
    assert fills["queue_ahead_at_entry"].tolist() == pytest.approx([2.0])
    assert fills["quote_live_ts"].tolist() == [T0 + 15 * MS]


def _cancelled_ahead() -> pd.DataFrame:
    # live at 10 ms behind 2.0 (it goes live at the 15 ms tick, against the 0 ms touch); 4.0 join behind us,
    # then 3.0 leave without a trade: a decrease no trade explains.
    return sized(
        (tick(0, 100.0, 100.2), 2.0),
        (tick(15, 100.0, 100.2), 6.0),
        (tick(30, 100.0, 100.2), 3.0),
        (tick(50, 100.0, 100.2, "sell", 100.0, 1.0), 3.0),
    )


def test_size_decrease_share_lets_cancellations_advance_the_queue() -> None:
    # share 1.0: all 3.0 cancelled were ahead: ahead max(0, 2 - 3) = 0, the 50 ms sell of 1.0 fills us.
    fills = queue(_cancelled_ahead(), params(), share=1.0).fills
    assert fills["ts"].tolist() == [T0 + 50 * MS]
    assert fills["qty"].tolist() == pytest.approx([1.0])
    # share 0 (risk-averse): ahead stays min(2, 3 shown) = 2; the sell of 1.0 only advances it to 1.
    assert queue(_cancelled_ahead(), params()).fills.empty


def test_queue_ahead_never_exceeds_the_displayed_size() -> None:
    # ahead 5.0 at entry; the level shrinks to 0.5 without trades: at most 0.5 can be ahead of us, even with
    # share 0, so a sell of 1.0 takes 0.5 and fills 0.5 of our order.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(20, 100.0, 100.2), 0.5),
        (tick(40, 100.0, 100.2, "sell", 100.0, 1.0), 0.5),
    )
    fills = queue(ticks, params()).fills
    assert fills["qty"].tolist() == pytest.approx([0.5])


def test_size_decrease_and_trade_in_the_same_millisecond_count_once() -> None:
    # ahead 5.0; at 20 ms the book shows 5 -> 3 before the trade of 2 that caused it (same millisecond):
    # with share 1 the decrease is the trade, not a cancel, so ahead is 5 - 2 = 3, not 1.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(20, 100.0, 100.2), 3.0),
        (tick(20, 100.0, 100.2, "sell", 100.0, 2.0), 3.0),
        (tick(40, 100.0, 100.2, "sell", 100.0, 3.5), 3.0),  # 3 ahead, 0.5 for us
    )
    fills = queue(ticks, params(), share=1.0).fills
    assert fills["qty"].tolist() == pytest.approx([0.5])


def test_trade_through_the_price_fills_all_that_remains() -> None:
    # ahead 5.0, a trade at 100.0 of 2.0 leaves 3.0 ahead; a sell of 0.1 at 99.9 went through our level.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(20, 100.0, 100.2, "sell", 100.0, 2.0), 5.0),
        (tick(30, 100.0, 100.2, "sell", 99.9, 0.1), 5.0),
    )
    fills = queue(ticks, params()).fills
    assert fills[["qty", "price", "kind"]].to_numpy().tolist() == [[pytest.approx(1.0), 100.0, "trade"]]


def test_opposite_touch_reaching_the_price_fills_all_that_remains() -> None:
    ticks = sized((tick(0, 100.0, 100.2), 5.0), (tick(30, 99.8, 100.0), 1.0))
    fills = queue(ticks, params()).fills
    assert fills[["qty", "kind"]].to_numpy().tolist() == [[pytest.approx(1.0), "cross"]]


def test_level_emptied_after_a_trade_at_the_price_was_consumed() -> None:
    # ahead 5.0; a sell of 2.0 at 100.0, then the touch drops to 99.9: the level traded away, we with it.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(20, 100.0, 100.2, "sell", 100.0, 2.0), 5.0),
        (tick(21, 99.9, 100.2), 7.0),
    )
    fills = queue(ticks, params(min_requote_ms=1000)).fills
    assert fills[["ts", "qty", "kind"]].to_numpy().tolist() == [[T0 + 21 * MS, pytest.approx(1.0), "trade"]]


def test_level_emptied_without_trades_puts_the_order_at_the_front() -> None:
    # ahead 5.0; the touch drops to 99.9 with no trade at 100.0: everyone ahead cancelled, ahead 0. We still
    # rest at 100.0 (requotes held back 1 s), so the next sell at 100.0 fills us.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(20, 99.9, 100.2), 7.0),
        (tick(40, 99.9, 100.2, "sell", 100.0, 0.4), 7.0),
    )
    fills = queue(ticks, params(min_requote_ms=1000)).fills
    assert fills[["ts", "qty"]].to_numpy().tolist() == [[T0 + 40 * MS, pytest.approx(0.4)]]


def test_order_behind_the_touch_joins_when_its_price_becomes_the_touch() -> None:
    # offset 1: bid at 99.9 behind the 100.0 touch, queue unknown; a sell at 99.9 cannot fill it. When 99.9
    # becomes the touch showing 2.0, it joins behind that 2.0; sells of 2.0 then 1.0 fill 1.0.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(20, 100.0, 100.2, "sell", 99.9, 0.5), 5.0),  # through 100.0 yet at our price: ignored
        (tick(30, 100.0, 100.2), 5.0),
        (tick(40, 99.9, 100.2), 2.0),
        (tick(50, 99.9, 100.2, "sell", 99.9, 2.0), 2.0),
        (tick(60, 99.9, 100.2, "sell", 99.9, 1.0), 2.0),
    )
    fills = queue(ticks, params(quote_offset_ticks=1, min_requote_ms=1000)).fills
    assert fills[["ts", "price", "qty"]].to_numpy().tolist() == [[T0 + 60 * MS, 99.9, pytest.approx(1.0)]]
    assert fills["queue_ahead_at_entry"].isna().all()  # it went live behind the touch


def _requoted() -> pd.DataFrame:
    # bid 100.0 live at 10 behind 1.0, which trades away at 20 (ahead 0). At 100 the touch rises: bid 100.1 sent,
    # live at 110; the old bid's cancel lands at 100 + the cancel latency. At 130 a sell of 1.0 prints at 100.0,
    # through the new bid (it fills whole) and at the old one's price (first in its queue: fills 1.0 if resting).
    return sized(
        (tick(0, 100.0, 100.2), 1.0),
        (tick(20, 100.0, 100.2, "sell", 100.0, 1.0), 1.0),
        (tick(100, 100.1, 100.3), 1.0),
        (tick(130, 100.1, 100.3, "sell", 100.0, 1.0), 1.0),
    )


def test_cancel_latency_keeps_the_replaced_order_fillable_until_the_cancel_lands() -> None:
    slow = queue(_requoted(), params(min_requote_ms=50), cancel_ms=50).fills
    assert sorted(slow["price"].tolist()) == pytest.approx(
        [100.0, 100.1]
    )  # cancel lands at 150: the old bid fills at 130
    old = slow[slow["price"] == 100.0].iloc[0]
    assert (old.qty, old.quote_live_ts) == (pytest.approx(1.0), T0 + 10 * MS)
    fast = queue(_requoted(), params(min_requote_ms=50)).fills  # cancel lands at 110 with the new bid
    assert fast["price"].tolist() == pytest.approx([100.1])


def test_cancel_latency_beyond_what_two_resting_orders_cover_is_refused() -> None:
    with pytest.raises(ValueError, match="cancel latency 61 ms exceeds"):
        queue(_requoted(), params(min_requote_ms=50), cancel_ms=61)


def test_bad_model_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"size_decrease_share 1\.5"):
        QueueAware(1.5)
    with pytest.raises(ValueError, match="cancel_ms -1"):
        LatencyModel(2.0, 10.0, -1.0)


def test_an_order_with_no_queue_fills_like_the_shadow_without_dwell() -> None:
    # the touch falls to 99.9 before the bid at 100.0 goes live (requotes held back 1 s): it improves the touch,
    # nobody is ahead, so every sell at 100.0 fills it as the dwell-0 shadow does: 0.4, 0.3, then the last 0.3.
    ticks = sized(
        (tick(0, 100.0, 100.2), 5.0),
        (tick(5, 99.9, 100.2), 3.0),
        (tick(20, 99.9, 100.2, "sell", 100.0, 0.4), 3.0),
        (tick(30, 99.9, 100.2, "sell", 100.0, 0.3), 3.0),
        (tick(40, 99.9, 100.2, "sell", 100.0, 0.5), 3.0),
    )
    p = params(touch_dwell_ms=0, min_requote_ms=1000)
    queued = queue(ticks, p)
    shadow = simulate(ticks, p)
    assert queued.fills["qty"].tolist() == pytest.approx([0.4, 0.3, 0.3])
    assert queued.fills["queue_ahead_at_entry"].tolist() == [0.0] * 3
    pd.testing.assert_frame_equal(queued.fills.drop(columns="queue_ahead_at_entry"), shadow.fills)
    pd.testing.assert_frame_equal(queued.inventory, shadow.inventory)


@settings(max_examples=50, deadline=None)
@given(tick_sequences(), strategies)
def test_same_input_same_output_and_inventory_bound_on_random_ticks(ticks: pd.DataFrame, p: StrategyParams) -> None:
    sim = queue(ticks, p, share=0.5)
    again = queue(ticks, p, share=0.5)
    pd.testing.assert_frame_equal(sim.fills, again.fills)
    pd.testing.assert_frame_equal(sim.inventory, again.inventory)
    assert (sim.inventory["position"].abs() <= p.max_position + p.min_lot + 1e-9).all()
    # a maker fill needs an opposite-aggressor trade at/through the price, the opposite touch reaching it, or
    # (a consumed level) a quote tick whose own touch is worse than the price
    makers = sim.fills[sim.fills["is_maker"]]
    at = ticks.iloc[makers["tick"].to_numpy()]
    sign = makers["side"].to_numpy()
    price = makers["price"].to_numpy()
    aggressor = np.where(sign > 0, "sell", "buy")
    own, opposite = np.where(sign > 0, at["bid"], at["ask"]), np.where(sign > 0, at["ask"], at["bid"])
    traded = (at["last_side"].to_numpy() == aggressor) & ((at["last_px"].to_numpy() - price) * sign <= 1e-9)
    crossed = (opposite - price) * sign <= 1e-9
    emptied = ~at["is_trade"].to_numpy() & ((own - price) * sign < -1e-9)
    assert np.all(traded | crossed | emptied)
