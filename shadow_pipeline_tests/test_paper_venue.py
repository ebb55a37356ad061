"""The paper venue (hftbacktest matching a bot's orders): hand-made sequences with known outcomes, then the built-in
strategy's orders on the packaged synthetic market against hftbacktest running the strategy itself.

Hand-built sequences use ``sim_helpers.BASE``'s instrument (tick 0.1, lot step 0.1), displayed sizes 1.0, entry and
cancel latency 10 ms (an order decided at ``ms`` reaches the venue at ``ms + 10``), maker fee -1 bp, taker 5 bp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("hftbacktest", reason="hftbacktest (the hbt extra) is not installed: pip install -e '.[hbt]'")

from hftbacktest import TRADE_EVENT

from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.domain.market.ticks import FIELDS, parse_table
from shadow_pipeline.domain.strategies.external.plan import BUY, NEVER, PLAN_COLUMNS, SELL, OrderPlan
from shadow_pipeline.domain.simulation.models import FeeModel, LatencyModel, fee_model_of, latency_model_of
from shadow_pipeline.domain.simulation.simulator import (
    S_PX,
    S_QTY,
    S_REPLACES,
    S_SIDE,
    S_TS,
    S_WANT,
    SEND_TAKER,
    simulate,
)
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_replay, to_events
from shadow_pipeline.domain.validation.paper_venue import FILL_COLUMNS, match_orders
from shadow_pipeline.feed.replay import number_ticks
from shadow_pipeline_tests.sim_helpers import BASE, MS, T0, make_ticks, tick

LATENCY = LatencyModel(decision_ms=0.0, order_entry_ms=10.0, cancel_ms=10.0)
FEES = FeeModel(maker_rate=-0.0001, taker_rate=0.0005)


def order(
    order_id: str,
    side: int,
    px: float,
    ms: float,
    cancel_ms: float | None = None,
    qty: float = 1.0,
    post_only: bool | None = None,
    market: bool = False,
) -> dict[str, Any]:
    """One plan row in prices and base quantities (``px`` ignored for a market order); limit orders are
    post-only unless said otherwise."""
    return {
        "order_id": order_id,
        "side": side,
        "px": 0 if market else round(px / BASE.tick_size),
        "qty": round(qty / BASE.lot_step),
        "post_only": not market if post_only is None else post_only,
        "market": market,
        "decision_ts": T0 + round(ms * MS),
        "cancel_ts": NEVER if cancel_ms is None else T0 + round(cancel_ms * MS),
    }


def venue(rows: list[dict[str, Any]], ticks: pd.DataFrame, **kwargs: Any) -> list[tuple[Any, ...]]:
    """(ms after T0, side, price, qty, is_maker, order_id) of each fill."""
    fills = match_orders(OrderPlan.of(pd.DataFrame(rows)), ticks, BASE, LATENCY, FEES, **kwargs)
    assert list(fills.columns) == list(FILL_COLUMNS)
    return [
        ((ts - T0) / MS, side, round(px, 6), round(qty, 6), bool(maker), oid)
        for ts, side, px, qty, maker, oid in fills[["ts", "side", "price", "qty", "is_maker", "order_id"]].to_numpy()
    ]


QUEUE = make_ticks(
    [
        tick(0, 100.0, 100.1),
        tick(20, 100.0, 100.1),  # 1: a bid at 100.0 arriving at 10 ms is behind the 1.0 displayed there
        tick(30, 100.0, 100.1, "sell", 100.0, 0.5),  # 2: queue ahead 1.0 -> 0.5
        tick(40, 100.0, 100.1, "sell", 100.0, 0.5),  # 3: 0.5 -> 0 (the order is at the front, not filled yet)
        tick(50, 100.0, 100.1, "sell", 100.0, 0.2),  # 4: a sell at the price with nothing ahead fills the order
        tick(60, 100.0, 100.1),
    ]
)


def test_a_bid_behind_the_queue_fills_only_after_the_trades_ahead() -> None:
    assert venue([order("bid-1", BUY, 100.0, 0)], QUEUE) == [(50.0, "buy", 100.0, 1.0, True, "bid-1")]
    # one trade short of the queue ahead: no fill
    assert venue([order("bid-1", BUY, 100.0, 0)], QUEUE.iloc[:4]) == []


def test_a_post_only_bid_that_would_cross_is_rejected_and_a_plain_limit_takes() -> None:
    ticks = make_ticks([tick(0, 100.0, 100.1), tick(20, 100.0, 100.1), tick(30, 99.9, 100.0, "sell", 100.0, 5.0)])
    assert venue([order("gtx", BUY, 100.1, 0)], ticks) == []
    # the same bid without post_only takes the ask on arrival (10 ms), a taker fill at the touch, not its limit
    assert venue([order("gtc", BUY, 100.2, 0, post_only=False)], ticks) == [(10.0, "buy", 100.1, 1.0, False, "gtc")]


def test_an_order_activates_before_the_first_tick_at_or_after_its_arrival() -> None:
    ticks = make_ticks(
        [
            tick(0, 99.9, 100.1),
            tick(30, 100.0, 100.1),  # the bid moves up to 100.0: an ask at 100.0 resting then is filled (maker)
            tick(40, 100.0, 100.1),
        ]
    )
    # arrives at 30 ms: before the tick stamped 30 ms, against a bid of 99.9, so it rests and the new bid fills it
    assert venue([order("on-time", SELL, 100.0, 20)], ticks) == [(30.0, "sell", 100.0, 1.0, True, "on-time")]
    # arrives at 31 ms: after that tick, so it would cross the 100.0 bid and the post-only order is rejected
    assert venue([order("late", SELL, 100.0, 21)], ticks) == []


def test_a_cancelled_order_never_fills_after_its_cancel_lands() -> None:
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1),
            tick(35, 100.0, 100.1, "sell", 99.9, 1.0),  # a sell through the bid: any bid at 100.0 fills
            tick(50, 100.0, 100.1, "sell", 99.9, 1.0),
        ]
    )
    # the cancel decided at 24 ms lands at 34 ms, before the trade through: no fill
    assert venue([order("cxl", BUY, 100.0, 0, cancel_ms=24)], ticks) == []
    # decided at 25 ms it lands at 35 ms, before the tick stamped 35 ms too
    assert venue([order("cxl", BUY, 100.0, 0, cancel_ms=25)], ticks) == []
    # decided at 26 ms it lands after the trade: the order had filled at 35 ms, and the cancel changes nothing
    assert venue([order("cxl", BUY, 100.0, 0, cancel_ms=26)], ticks) == [(35.0, "buy", 100.0, 1.0, True, "cxl")]
    # a cancel that lands no later than its order (cancel latency 0 here): the order is never placed
    quick = LatencyModel(decision_ms=0.0, order_entry_ms=10.0, cancel_ms=0.0)
    plan = OrderPlan.of(pd.DataFrame([order("gone", BUY, 100.0, 0, cancel_ms=10)]))
    assert match_orders(plan, ticks, BASE, quick, FEES).empty


def test_a_market_order_fills_at_the_opposite_touch_on_arrival() -> None:
    ticks = make_ticks([tick(0, 100.0, 100.1), tick(12, 99.8, 100.3), tick(30, 100.0, 100.1)])
    rows = [order("mkt-buy", BUY, 0, 5, qty=0.3, market=True), order("mkt-sell", SELL, 0, 5, qty=0.2, market=True)]
    # both arrive at 15 ms: after the tick at 12 ms, whose touch they take whatever its size
    assert venue(rows, ticks) == [
        (15.0, "buy", 100.3, 0.3, False, "mkt-buy"),
        (15.0, "sell", 99.8, 0.2, False, "mkt-sell"),
    ]
    fills = match_orders(OrderPlan.of(pd.DataFrame(rows)), ticks, BASE, LATENCY, FEES)
    assert fills["fee"].to_list() == pytest.approx([100.3 * 0.3 * 0.0005, 99.8 * 0.2 * 0.0005])


def test_ids_are_carried_through_and_maker_rebates_are_negative() -> None:
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.3),
            tick(20, 100.0, 100.3),
            tick(30, 100.0, 100.3, "buy", 100.3, 3.0),  # a buy through 100.2: the ask at 100.2 fills
            tick(40, 100.0, 100.3, "sell", 99.9, 3.0),  # a sell through 100.0: both bids at or above it fill
        ]
    )
    rows = [
        order("client:bid-a", BUY, 100.0, 0),
        order("client:ask-b", SELL, 100.2, 1),
        order("client:bid-c", BUY, 100.1, 2, qty=0.5),
        order("client:ask-d", SELL, 100.4, 3),  # never reached
    ]
    # hftbacktest visits the orders a trade fills in its own (hash) order: compare as sets
    assert sorted(venue(rows, ticks)) == [
        (30.0, "sell", 100.2, 1.0, True, "client:ask-b"),
        (40.0, "buy", 100.0, 1.0, True, "client:bid-a"),
        (40.0, "buy", 100.1, 0.5, True, "client:bid-c"),
    ]
    frame = match_orders(OrderPlan.of(pd.DataFrame(rows)), ticks, BASE, LATENCY, FEES)
    assert (frame["fee"] < 0).all()
    assert frame["fee"].to_list() == pytest.approx(list(-0.0001 * frame["price"] * frame["qty"]))


def test_the_events_given_are_the_market_matched() -> None:
    """``events`` replaces the top-of-book conversion: without the trades the queue order never fills."""
    events = to_events(QUEUE, BASE)
    quotes_only = events[(events["ev"] & TRADE_EVENT) != TRADE_EVENT]
    rows = [order("bid-1", BUY, 100.0, 0)]
    assert venue(rows, QUEUE, events=events) == [(50.0, "buy", 100.0, 1.0, True, "bid-1")]
    assert venue(rows, QUEUE, events=quotes_only) == []


def test_bad_plans_and_models_are_refused() -> None:
    with pytest.raises(ValueError, match="queue_model"):
        venue([order("a", BUY, 100.0, 0)], QUEUE, queue_model="fifo")
    with pytest.raises(ValueError, match="post-only"):
        venue([order("a", BUY, 0, 0, market=True, post_only=True)], QUEUE)
    with pytest.raises(ValueError, match="price above 0"):
        venue([order("a", BUY, 0, 0)], QUEUE)
    with pytest.raises(ValueError, match="sides"):
        venue([order("a", 2, 100.0, 0)], QUEUE)


# The built-in strategy's orders on the packaged synthetic market


def plan_of_sends(sends: np.ndarray) -> OrderPlan:
    """The kernel's sends as a bot's orders: a quote is a new post-only order, a replace or a cancel (S_WANT 0)
    cancels the side's previous order at the send, a taker send is a market order of its signed lots."""
    rows: list[dict[str, Any]] = []
    last = [-1, -1]  # row of each side's last order
    for n, send in enumerate(sends):
        ts, side = int(send[S_TS]), int(send[S_SIDE])
        if side == SEND_TAKER:
            lots = int(send[S_QTY])
            rows.append(
                {
                    "order_id": f"taker-{n}",
                    "side": BUY if lots > 0 else SELL,
                    "px": 0,
                    "qty": abs(lots),
                    "post_only": False,
                    "market": True,
                    "decision_ts": ts,
                    "cancel_ts": NEVER,
                }
            )
            continue
        if send[S_REPLACES] or not send[S_WANT]:
            rows[last[side]]["cancel_ts"] = ts
        if send[S_WANT]:
            last[side] = len(rows)
            rows.append(
                {
                    "order_id": f"quote-{n}",
                    "side": side,
                    "px": int(send[S_PX]),
                    "qty": int(send[S_QTY]),
                    "post_only": True,
                    "market": False,
                    "decision_ts": ts,
                    "cancel_ts": NEVER,
                }
            )
    return OrderPlan.of(pd.DataFrame(rows, columns=list(PLAN_COLUMNS)))


def synthetic_ticks(seconds: int, seed: int) -> pd.DataFrame:
    source = pd.concat(list(generate(["BTCUSDT"], seconds, seed=seed)), ignore_index=True)
    numbered = number_ticks(source[source["symbol"] == "BTCUSDT"].reset_index(drop=True), {})
    ticks = parse_table({c: numbered[c].astype(str).to_numpy(dtype=object) for c in FIELDS}).ticks
    return ticks.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)


def test_the_strategys_orders_fill_at_the_venue_as_hftbacktest_fills_the_strategy() -> None:
    """Same engine, same events: the venue matching the shadow's orders and hftbacktest running the strategy
    differ only where their fills fed back into different decisions, so their fill counts are close."""
    ticks = synthetic_ticks(300, seed=1)
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    shadow = simulate(ticks, params)
    assert shadow.sends is not None
    plan = plan_of_sends(shadow.sends)
    fills = match_orders(plan, ticks, params, latency_model_of(params), fee_model_of(params))
    replay = hftbacktest_replay(ticks, params).fills
    print(
        f"\n{len(ticks)} ticks, {len(plan)} orders ({int(plan.market.sum())} market): fills venue {len(fills)}, "
        f"hftbacktest_replay {len(replay)}, shadow {len(shadow.fills)} ({shadow.fills['qty'].sum():g} base); "
        f"base venue {fills['qty'].sum():g}, replay {replay['qty'].sum():g}"
    )
    assert len(replay) > 50
    assert abs(len(fills) - len(replay)) <= 0.1 * len(replay)
    # every fill is of an order of the plan, at most once, on the order's side and at its limit when it made
    by_id = plan.frame().set_index("order_id")
    assert fills["order_id"].is_unique
    ordered = by_id.loc[fills["order_id"]]
    assert (fills["side"].to_numpy() == np.where(ordered["side"] == SELL, "sell", "buy")).all()
    maker = fills["is_maker"].to_numpy()
    assert np.allclose(fills["price"][maker], ordered["px"][maker] * params.tick_size)
    assert np.allclose(fills["qty"], ordered["qty"] * params.lot_step)
    # no order fills before it reached the venue, nor after its cancel landed
    latency = latency_model_of(params)
    assert (fills["ts"].to_numpy() >= ordered["decision_ts"].to_numpy() + latency.entry_ns).all()
    cancelled = ordered["cancel_ts"].to_numpy() < NEVER
    landed = ordered["cancel_ts"].to_numpy()[cancelled] + latency.cancel_ns
    assert (fills["ts"].to_numpy()[cancelled] < landed).all()
