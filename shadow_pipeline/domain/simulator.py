"""Deterministic touch + dwell fill simulation of a two-sided quoting strategy on one symbol's ticks.

Why this model: with only top-of-book and trades, the defensible cheap proxy for queue position is *dwell*:
a quote may fill only after standing at its price for ``touch_dwell_ms``. The rules, per tick in exchange time
(``ts_server``) order, are (``docs/shadow-simulation.md`` has the full text):

1. Orders go live ``decision_latency_ms + order_entry_latency_ms`` after the tick that decided them; a new order
   replaces the side's resting one (cancel/replace), and an order that would cross the touch in force at that
   moment is rejected (post-only). A pending hedge executes as a taker at this tick's opposite touch, for the
   quantity decided when it was sent.
2. A live quote that has stood ``touch_dwell_ms`` fills at its own price (maker): a bid when the ask touch is at
   or below it (all that remains) or when a sell-aggressor trade prints at or below it (min(remaining, trade
   size); the remainder rests with its eligibility). Asks mirror this. A fully filled side is requoted as a
   new order, so latency and dwell apply again.
3. When |position| reaches ``max_inventory`` lots and no hedge is pending, a hedge back to
   ``hedge_target * max_inventory`` is sent (mode ``cross``).
4. The strategy wants a bid at ``bid - offset`` ticks and an ask at ``ask + offset`` ticks, except on a side
   whose full order could push |position| beyond ``max_inventory``. When that differs from the side's order
   (pending, else live) and ``min_requote_ms`` has passed since the side's last send, it sends a new order.

Prices are integer ticks and quantities integer lot steps inside the kernel, so comparisons and inventory
arithmetic are exact. Queue position, touch size, depth beyond the touch and our own market impact are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.profiles import StrategyParams

_MS = 1_000_000
_NEVER = np.int64(-(2**62))
KIND_TRADE, KIND_CROSS, KIND_HEDGE = 0, 1, 2
FILL_KINDS = ("trade", "cross", "hedge")
# At most a bid fill, an ask fill and a hedge per tick.
_FILLS_PER_TICK = 3


@dataclass(frozen=True)
class Simulation:
    """``fills``: one row per fill; ``inventory``: the position after each tick (same order as the ticks)."""

    fills: pd.DataFrame
    inventory: pd.DataFrame


@numba.njit(cache=True)
def _kernel(
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    aggressor: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    offset: int,
    order_qty: int,
    dwell_ns: int,
    min_requote_ns: int,
    latency_ns: int,
    max_pos: int,
    hedge_on: bool,
    hedge_target: int,
    position: np.ndarray,
    f_tick: np.ndarray,
    f_side: np.ndarray,
    f_px: np.ndarray,
    f_qty: np.ndarray,
    f_kind: np.ndarray,
    f_live: np.ndarray,
    f_pos: np.ndarray,
) -> int:
    """Index 0 of each state pair is the bid, 1 the ask; returns the number of fills written."""
    live_on = np.zeros(2, np.bool_)
    live_px = np.zeros(2, np.int64)
    live_rem = np.zeros(2, np.int64)
    live_ts = np.zeros(2, np.int64)
    pend_on = np.zeros(2, np.bool_)
    pend_has = np.zeros(2, np.bool_)
    pend_px = np.zeros(2, np.int64)
    pend_ts = np.zeros(2, np.int64)
    last_sent = np.full(2, _NEVER, np.int64)
    hedge_pending = False
    hedge_due = np.int64(0)
    hedge_qty = np.int64(0)
    hedge_side = 0
    pos = np.int64(0)
    k = 0
    for i in range(len(ts)):
        t = ts[i]
        # 1. activations (against the touch in force before this tick) and a due hedge
        for s in range(2):
            if pend_on[s] and pend_ts[s] <= t:
                pend_on[s] = False
                crosses = i > 0 and ((s == 0 and pend_px[s] >= ask[i - 1]) or (s == 1 and pend_px[s] <= bid[i - 1]))
                live_on[s] = pend_has[s] and not crosses
                live_px[s] = pend_px[s]
                live_rem[s] = order_qty
                live_ts[s] = pend_ts[s]
        if hedge_pending and hedge_due <= t:
            hedge_pending = False
            pos += hedge_side * hedge_qty
            f_tick[k] = i
            f_side[k] = hedge_side
            f_px[k] = ask[i] if hedge_side > 0 else bid[i]
            f_qty[k] = hedge_qty
            f_kind[k] = KIND_HEDGE
            f_live[k] = hedge_due
            f_pos[k] = pos
            k += 1
        # 2. maker fills of eligible quotes
        for s in range(2):
            if not live_on[s] or t - live_ts[s] < dwell_ns:
                continue
            sign = 1 - 2 * s  # the bid buys (+1), the ask sells (-1)
            fill = np.int64(0)
            kind = KIND_CROSS
            if (s == 0 and ask[i] <= live_px[s]) or (s == 1 and bid[i] >= live_px[s]):
                fill = live_rem[s]
            elif aggressor[i] == -sign and (trade_px[i] - live_px[s]) * sign <= 0:
                fill = min(live_rem[s], trade_qty[i])
                kind = KIND_TRADE
            if fill <= 0:
                continue
            pos += sign * fill
            live_rem[s] -= fill
            live_on[s] = live_rem[s] > 0
            f_tick[k] = i
            f_side[k] = sign
            f_px[k] = live_px[s]
            f_qty[k] = fill
            f_kind[k] = kind
            f_live[k] = live_ts[s]
            f_pos[k] = pos
            k += 1
        # 3. hedge back towards the target once the limit is reached (quotes never go past it, step 4)
        if hedge_on and not hedge_pending and abs(pos) >= max_pos and abs(pos) > hedge_target:
            hedge_pending = True
            hedge_due = t + latency_ns
            hedge_side = -1 if pos > 0 else 1
            hedge_qty = abs(pos) - hedge_target
        # 4. quoting decisions
        for s in range(2):
            sign = 1 - 2 * s
            want = abs(pos + sign * order_qty) <= max_pos or sign * pos < 0
            want_px = bid[i] - offset if s == 0 else ask[i] + offset
            has = pend_has[s] if pend_on[s] else live_on[s]
            px = pend_px[s] if pend_on[s] else live_px[s]
            if (want != has or (want and want_px != px)) and t - last_sent[s] >= min_requote_ns:
                pend_on[s] = True
                pend_has[s] = want
                pend_px[s] = want_px
                pend_ts[s] = t + latency_ns
                last_sent[s] = t
        position[i] = pos
    return k


def _columns(ticks: pd.DataFrame, params: StrategyParams) -> tuple[np.ndarray, ...]:
    """Kernel inputs: exchange times, touch and trade prices in ticks, trade sizes in lot steps, aggressor sign."""
    ts = ticks["ts_server"].to_numpy(dtype=np.int64)
    bid = np.rint(ticks["bid"].to_numpy(dtype=np.float64) / params.tick_size).astype(np.int64)
    ask = np.rint(ticks["ask"].to_numpy(dtype=np.float64) / params.tick_size).astype(np.int64)
    is_trade = ticks["is_trade"].to_numpy(dtype=bool)
    buys = ticks["last_side"].to_numpy(dtype=object) == "buy"
    aggressor = np.where(is_trade, np.where(buys, 1, -1), 0).astype(np.int8)
    px = ticks["last_px"].to_numpy(dtype=np.float64)
    trade_px = np.where(is_trade, np.rint(np.nan_to_num(px) / params.tick_size), 0).astype(np.int64)
    qty = ticks["last_qty"].to_numpy(dtype=np.float64)
    trade_qty = np.where(is_trade, np.rint(np.nan_to_num(qty) / params.lot_step), 0).astype(np.int64)
    return ts, bid, ask, aggressor, trade_px, trade_qty


def _steps(value: float, step: float) -> int:
    return round(value / step)


def simulate(ticks: pd.DataFrame, params: StrategyParams) -> Simulation:
    """Run the strategy over one symbol's ticks (sorted by ``ts_server``); same input, same output."""
    ts, bid, ask, aggressor, trade_px, trade_qty = _columns(ticks, params)
    n = len(ts)
    order_qty = _steps(params.min_lot, params.lot_step)
    max_pos = params.max_inventory * order_qty
    position = np.empty(n, np.int64)
    cap = _FILLS_PER_TICK * n
    out = (np.empty(cap, np.int64), np.empty(cap, np.int8), np.empty(cap, np.int64), np.empty(cap, np.int64))
    kind, live, pos_after = np.empty(cap, np.int8), np.empty(cap, np.int64), np.empty(cap, np.int64)
    count = _kernel(
        ts,
        bid,
        ask,
        aggressor,
        trade_px,
        trade_qty,
        params.quote_offset_ticks,
        order_qty,
        round(params.touch_dwell_ms * _MS),
        round(params.min_requote_ms * _MS),
        round((params.decision_latency_ms + params.order_entry_latency_ms) * _MS),
        max_pos,
        params.hedge_mode == "cross",
        int(params.hedge_target * max_pos),
        position,
        *out,
        kind,
        live,
        pos_after,
    )
    mid = (ticks["bid"].to_numpy(dtype=np.float64) + ticks["ask"].to_numpy(dtype=np.float64)) / 2
    inventory = pd.DataFrame({"ts": ts, "position": position * params.lot_step, "mid": mid})
    tick, side, px, qty = (a[:count] for a in out)
    return Simulation(
        _fills(ts, mid, tick, side, px, qty, kind[:count], live[:count], pos_after[:count], params), inventory
    )


def _fills(
    ts: np.ndarray,
    mid: np.ndarray,
    tick: np.ndarray,
    side: np.ndarray,
    px: np.ndarray,
    qty: np.ndarray,
    kind: np.ndarray,
    live: np.ndarray,
    pos_after: np.ndarray,
    params: StrategyParams,
) -> pd.DataFrame:
    """The fills table: maker fills see the mid before their triggering tick, hedges the touch they cross."""
    is_maker = kind != KIND_HEDGE
    price = px * params.tick_size
    base = qty * params.lot_step
    fee_rate = np.where(is_maker, params.maker_fee_rate, params.taker_fee_rate)
    fill_ts = ts[tick]
    horizon = fill_ts + round(params.markout_horizon_s * 1e9)
    later = np.maximum(np.searchsorted(ts, horizon, side="right") - 1, 0)
    known = horizon <= (ts[-1] if len(ts) else _NEVER)
    return pd.DataFrame(
        {
            "ts": fill_ts,
            "tick": tick,
            "side": side,
            "price": price,
            "qty": base,
            "is_maker": is_maker,
            "kind": pd.Categorical.from_codes(kind, categories=pd.Index(FILL_KINDS)),
            "fee": price * base * fee_rate,
            "fee_rate": fee_rate,
            "mid_before": mid[np.where(is_maker, np.maximum(tick - 1, 0), tick)],
            "mid_markout": np.where(known, mid[later], np.nan),
            "position_after": pos_after * params.lot_step,
            "quote_live_ts": live,
        }
    )
