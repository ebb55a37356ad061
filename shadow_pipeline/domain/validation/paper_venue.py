"""The paper venue: a bot's orders matched by hftbacktest 2.4.4 against market data, fills reported by client id.

Why: the shadow predicts, per order, whether and when it fills; to reconcile those predictions end to end in demos
and tests there must be "real" fills of the same orders, and without a live venue they come from here. The
matching is hftbacktest's (``NoPartialFillExchange``, its queue model, its event loop), which shares none of the
shadow's code; unlike ``hftbacktest_replay`` no strategy runs here: the orders are the bot's (an
:class:`OrderPlan`), so nothing the shadow computes decides what this venue fills.

Timing (``docs/paper-venue.md``): an order reaches the venue at ``decision_ts + latency.entry_ns``, a cancel at
``cancel_ts + latency.cancel_ns``. hftbacktest has one order latency for every request, so its latency is zero
here and this module drives the clock itself: it elapses hftbacktest to each arrival and submits there. Arrivals
sit on the upper half of a scaled nanosecond of ``_clock`` (rows use the lower half), so a request arriving at
``A`` is processed after every market event before ``A`` and before every event at or after it: an order
activates before the first tick at or after its arrival, the shadow's rule. A cancel that arrives no later than
its order means the order is never placed (the shadow's order engine has it never live either).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.strategies.external.plan import BUY, NEVER, SELL, OrderPlan
from shadow_pipeline.domain.simulation.models import FeeModel, LatencyModel
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.domain.validation.hftbacktest_engine import _clock, _hbt, _queue_model, to_events

FILL_COLUMNS = ("ts", "side", "price", "qty", "is_maker", "fee", "order_id")
# hftbacktest.order constants (2.4.4), inlined so the compiled loop needs no import of hftbacktest.
_NONE, _NEW, _FILLED, _GTC, _GTX, _LIMIT, _MARKET = 0, 1, 3, 0, 1, 0, 1
_OK, _END_OF_DATA = 0, 1
_NO_TICK = 2**62  # an empty side's best tick is hftbacktest's sentinel, beyond any price
_CANCEL, _SUBMIT = 0, 1  # request kinds; at one instant cancels go first, as the shadow lands cancels first
# Columns of the loop's fill records: plan row, hftbacktest time, price in ticks, lots, maker (1/0).
_ROW, _CLOCK, _PX, _LOTS, _MAKER = range(5)
_CLEAR_EVERY = 1024  # instants between clearing the finished orders hftbacktest would keep all run long


@numba.njit  # not cache=True: hftbacktest's bindings are ctypes pointers, which numba cannot cache
def _match(
    hbt: Any,
    arrive: np.ndarray,
    kind: np.ndarray,
    row: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    tif: np.ndarray,
    order_type: np.ndarray,
    tick: float,
    lot: float,
    end: int,
) -> tuple[np.ndarray, int]:
    """Replays the requests (sorted by ``arrive``, hftbacktest time) into hftbacktest with zero latency, each at
    its own arrival, then runs to ``end`` (the last event); returns the fill records (``_ROW`` .. ``_MAKER``)
    and hftbacktest's error code (0: none). hftbacktest's order id of plan row ``r`` is ``r + 1``."""
    records = np.empty((len(side), 5), np.int64)  # no partial fills: at most one fill per order
    k = 0
    waiting = np.empty(len(side), np.int64)  # plan rows submitted and not yet filled, rejected or cancelled
    n_waiting = 0
    code = hbt.elapse(0)  # starts hftbacktest's clock at its first event
    if code != _OK and code != _END_OF_DATA:
        return records[:0], code
    now = hbt.current_timestamp
    instants = 0
    for a in range(len(arrive) + 1):
        target = end if a == len(arrive) else arrive[a]
        if target > now:
            code = hbt.elapse(target - now)
            if code != _OK and code != _END_OF_DATA:
                return records[:k], code
            now = target
            # what the market did to the waiting orders up to this instant, read before any request of it
            orders = hbt.orders(0)
            kept = 0
            for q in range(n_waiting):
                r = waiting[q]
                o = orders.get(r + 1)
                if o is None:
                    continue
                if o.status == _FILLED:
                    records[k, _ROW] = r
                    records[k, _CLOCK] = o.exch_timestamp
                    records[k, _PX] = o.exec_price_tick
                    records[k, _LOTS] = round(o.exec_qty / lot)
                    records[k, _MAKER] = o.arr[0].maker
                    k += 1
                elif o.status == _NEW or o.status == _NONE:
                    waiting[kept] = r
                    kept += 1
            n_waiting = kept
            instants += 1
            if instants % _CLEAR_EVERY == 0:  # every request so far is answered: only finished orders go
                hbt.clear_inactive_orders(0)
        if a == len(arrive):
            break
        r = row[a]
        code = _OK
        if kind[a] == _CANCEL:
            o = hbt.orders(0).get(r + 1)
            if o is not None and o.status == _NEW and o.req == _NONE:  # still resting (not filled, not rejected)
                code = hbt.cancel(0, r + 1, False)
        else:
            px = price[r]
            if order_type[r] == _MARKET:  # hftbacktest fills it at the opposite touch whatever the price given
                depth = hbt.depth(0)
                touch = depth.best_ask_tick if side[r] == 0 else depth.best_bid_tick
                if not 0 < touch < _NO_TICK:
                    continue  # that side of the book is empty: nothing to take (hftbacktest would fill at its sentinel)
                px = touch * tick
            if side[r] == 0:
                code = hbt.submit_buy_order(0, r + 1, px, qty[r], tif[r], order_type[r], False)
            else:
                code = hbt.submit_sell_order(0, r + 1, px, qty[r], tif[r], order_type[r], False)
            waiting[n_waiting] = r
            n_waiting += 1
        if code != _OK:
            return records[:k], code
    return records[:k], 0


def _arrival(ns: np.ndarray, ts0: int, scale: int, first: int, end: int) -> np.ndarray:
    """hftbacktest time of requests reaching the venue at ``ns``: ``scale / 2`` before the scaled ``ns``, so
    after every row before ``ns`` and before every row at or after it (``_clock`` ranks stay below ``scale /
    2``); clipped to ``[first, end]`` (hftbacktest's clock starts at its first event; ``end``: too late)."""
    end_ns = ts0 + end // scale + 1
    scaled = (np.clip(ns, ts0, end_ns) - ts0) * scale - scale // 2
    return np.clip(scaled, first, end)


def match_orders(
    plan: OrderPlan,
    ticks: pd.DataFrame,
    params: StrategyParams,
    latency: LatencyModel,
    fees: FeeModel,
    queue_model: str = "risk_averse",
    events: np.ndarray | None = None,
    power: float = 3.0,
) -> pd.DataFrame:
    """The venue's fills of ``plan`` on one symbol's ticks (sorted by ``ts_server``), one row per fill in time
    order: ``ts`` (exchange time, ns), ``side`` (buy/sell), ``price``, ``qty`` (base), ``is_maker``, ``fee``
    (quote, negative a rebate), ``order_id`` (the plan's client id).

    post_only orders are GTX (expired if they would cross on arrival), other limit orders GTC (a crossing one
    takes the opposite touch), market orders MARKET (the opposite touch, whatever its size). No partial fills
    (``NoPartialFillExchange``; 2.4.4's ``PartialFillExchange`` is broken, see ``hftbacktest_replay``), so a fill
    is the whole order. ``queue_model`` as in ``hftbacktest_replay`` (``power`` for ``power``). ``events``: the
    hftbacktest events to match against, on the scaled clock of ``_clock(ticks["ts_server"])`` (a full-depth
    conversion); None: ``to_events(ticks, params)``, the top of book. Requests arriving after the last event
    are never processed (no tick follows them); those arriving at or before the first go in right after the
    first event's instant, since hftbacktest's clock starts there.
    """
    hbt = _hbt()
    _queue_model(hbt.BacktestAsset(), queue_model, power)  # reject an unknown model before converting
    if not np.isin(plan.side, (BUY, SELL)).all():
        raise ValueError(f"order sides are {BUY} (buy) or {SELL} (sell)")
    if np.any(plan.market & plan.post_only):
        raise ValueError("a market order cannot be post-only")
    if np.any(~plan.market & (plan.px <= 0)) or np.any(plan.qty <= 0):
        raise ValueError("limit orders need a price above 0 ticks, and every order a qty above 0 lots")
    ts = ticks["ts_server"].to_numpy(dtype=np.int64)
    if len(plan) == 0 or len(ts) == 0:
        return _fills_frame(np.empty((0, 5), np.int64), plan, params, fees, 0, 1)
    ts0 = int(ts[0])
    _, scale = _clock(ts)
    if events is None:
        events = to_events(ticks, params)  # kept referenced until the backtest is closed: hftbacktest reads it in place
    first, end = int(events["exch_ts"].min()), int(events["exch_ts"].max())
    live_at = _arrival(plan.decision_ts + latency.entry_ns, ts0, scale, first, end)
    cancelled = plan.cancel_ts < NEVER
    cancel_at = np.where(
        cancelled, _arrival(np.where(cancelled, plan.cancel_ts, ts0) + latency.cancel_ns, ts0, scale, first, end), end
    )
    placed = (live_at < end) & (live_at < cancel_at)  # a cancel that lands first leaves nothing to place
    rows = np.flatnonzero(placed)
    cancels = np.flatnonzero(placed & (cancel_at < end))
    arrive = np.r_[cancel_at[cancels], live_at[rows]]
    kind = np.r_[np.full(len(cancels), _CANCEL), np.full(len(rows), _SUBMIT)]
    row = np.r_[cancels, rows]
    order = np.lexsort((kind, arrive))  # by arrival, cancels first, then plan order (lexsort is stable)
    limits = plan.px[~plan.market] * params.tick_size
    prices = np.r_[events["px"][events["px"] > 0], limits]
    asset = (
        hbt.BacktestAsset()
        .data(events)
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .no_partial_fill_exchange()
        .trading_value_fee_model(fees.maker_rate, fees.taker_rate)
        .tick_size(params.tick_size)
        .lot_size(params.lot_step)
        .roi_lb(float(prices.min()) - params.tick_size)
        .roi_ub(float(prices.max()) + params.tick_size)
    )
    backtest = hbt.ROIVectorMarketDepthBacktest([_queue_model(asset, queue_model, power)])
    try:
        records, code = _match(
            backtest,
            arrive[order].astype(np.int64),
            kind[order].astype(np.int64),
            row[order].astype(np.int64),
            plan.side.astype(np.int64),
            plan.px * params.tick_size,
            plan.qty * params.lot_step,
            np.where(plan.post_only, _GTX, _GTC).astype(np.int64),
            np.where(plan.market, _MARKET, _LIMIT).astype(np.int64),
            params.tick_size,
            params.lot_step,
            end,
        )
    finally:
        backtest.close()
    del events
    if code != 0:
        raise RuntimeError(f"hftbacktest stopped with error code {code}")
    return _fills_frame(records, plan, params, fees, ts0, scale)


def _fills_frame(
    records: np.ndarray, plan: OrderPlan, params: StrategyParams, fees: FeeModel, ts0: int, scale: int
) -> pd.DataFrame:
    """Records as the fills table; hftbacktest time back to ns by rounding to the nearest scaled ns (rows sit
    on its lower half, arrivals on the half above the previous ns: a taker fill is stamped with its arrival)."""
    row = records[:, _ROW]
    is_maker = records[:, _MAKER].astype(bool)
    price = records[:, _PX] * params.tick_size
    qty = records[:, _LOTS] * params.lot_step
    fills = pd.DataFrame(
        {
            "ts": ts0 + (records[:, _CLOCK] + scale // 2) // scale,
            "side": np.where(plan.side[row] == SELL, "sell", "buy").astype(object),
            "price": price,
            "qty": qty,
            "is_maker": is_maker,
            "fee": price * qty * fees.rates(is_maker),
            "order_id": plan.order_id[row],
        },
        columns=list(FILL_COLUMNS),
    )
    return fills.sort_values("ts", kind="stable").reset_index(drop=True)
