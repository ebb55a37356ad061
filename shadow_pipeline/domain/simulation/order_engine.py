"""The shadow of a bot's own orders: exactly the orders of an :class:`OrderPlan`, filled by the profile's models.

Why a second engine beside the strategy kernel (``simulator.py``): a bot outside this project decides on its own
clock, may rest any number of orders per side and cancels when it likes, so the kernel's mechanics (one order in
flight per side, ``min_requote_ms``, the strategy called per tick) are not ours to apply; only the exchange side
is. The exchange side is the kernel's, rule for rule (``docs/shadow-simulation.md``): an order goes live at the
first tick at or after ``decision_ts + entry latency``, a post-only order that would cross the touch in force
before that tick is rejected, a market order executes at that tick's opposite touch, resting orders fill by the
same fill model code (:func:`simulator._queue_fill`, or touch + dwell), a cancel lands ``cancel latency`` after
the bot decided it (under touch + dwell, with the entry latency, as a replaced quote does there). So the built-in
strategy's sends written out as a plan (``strategies/external/from_sends.py``) give the kernel's fills bit
for bit (a test holds it to that), and any bot's plan gets the same treatment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.models import FeeModel, FillModel, LatencyModel
from shadow_pipeline.domain.simulation.simulator import (
    CANCEL,
    ENTRY_AHEAD,
    F_AHEAD,
    FILL_FIELDS,
    KIND_HEDGE,
    LIVE,
    ON,
    PX,
    Q_PFILL,
    QSTATE_FIELDS,
    REM,
    SIZE,
    MarketColumns,
    Simulation,
    _join,
    fill_probability,
    fill_table,
    grow_records,
    maker_fill,
    record_fill,
)
from shadow_pipeline.domain.strategies.external.plan import NEVER, OrderPlan
from shadow_pipeline.domain.strategies.profiles import StrategyParams

_ORDER_FIELDS = 14  # the kernel's resting-order row layout (``simulator.ON`` .. ``simulator.SIZE``)
# per-order outcome columns the engine fills in (O_*): when it went live (-1 never), when it stopped resting
# (-1 still resting at the end), rejected (post-only cross), lots filled, first and last fill tick (-1 none)
R_LIVE, R_END, R_REJECTED, R_FILLED, R_FIRST, R_LAST, R_AHEAD = range(7)
_OUTCOME_FIELDS = 7
ORDER_STATUSES = ("filled", "partial", "unfilled", "rejected")


@dataclass(frozen=True)
class OrderSimulation:
    """The shadow of a plan: the fills (``Simulation``: the kernel's fills table plus ``order_id``) and one row
    per order with its outcome (the reconciliation's shadow side)."""

    simulation: Simulation
    orders: pd.DataFrame


@numba.njit(cache=True)
def _room(records: np.ndarray, owner: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Records and their owners with room for record ``k``."""
    if k < records.shape[0]:
        return records, owner
    bigger = np.empty(2 * len(owner), np.int64)
    bigger[: len(owner)] = owner
    return grow_records(records), bigger


@numba.njit(cache=True)
def _order_kernel(
    side: np.ndarray,
    px: np.ndarray,
    qty: np.ndarray,
    post_only: np.ndarray,
    market: np.ndarray,
    live_at: np.ndarray,
    cancel_at: np.ndarray,
    by_live: np.ndarray,
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_qty: np.ndarray,
    ask_qty: np.ndarray,
    aggressor: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    queue: bool,
    dwell_ns: int,
    share: float,
    prob: int,
    exponent: float,
    unit: float,
    position: np.ndarray,
    outcome: np.ndarray,
    p_fill: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill records (``F_*``) and the plan row of each; ``by_live``: plan rows in activation order (by
    ``live_at``, stable). Per tick, as the kernel's step 1 and 2: cancels that land, activations against the
    touch before the tick, market orders at the tick's opposite touch, then maker fills per side, the newest
    resting order first."""
    n = len(side)
    order = np.zeros((n, _ORDER_FIELDS), np.int64)
    qstate = np.zeros((n, QSTATE_FIELDS), np.float64)
    resting = np.empty(n, np.int64)  # plan rows resting or waiting for their cancel, in activation order
    n_resting = 0
    records = np.empty((max(1024, len(ts) // 16), FILL_FIELDS), np.int64)
    owner = np.empty(records.shape[0], np.int64)
    k = 0
    nxt = 0
    pos = np.int64(0)
    for i in range(len(ts)):
        t = ts[i]
        before = max(i - 1, 0)
        # 1. cancels that land, then activations, then market orders
        kept = 0
        for q in range(n_resting):
            r = resting[q]
            if order[r, ON] and order[r, CANCEL] <= t:
                order[r, ON] = 0
                outcome[r, R_END] = order[r, CANCEL]
            if order[r, ON]:
                resting[kept] = r
                kept += 1
        n_resting = kept
        while nxt < n and live_at[by_live[nxt]] <= t:
            r = by_live[nxt]
            nxt += 1
            s = side[r]
            sign = 1 - 2 * s
            opposite = ask[i] if s == 0 else bid[i]
            crosses = not market[r] and i > 0 and ((s == 0 and px[r] >= ask[i - 1]) or (s == 1 and px[r] <= bid[i - 1]))
            if cancel_at[r] <= t or (crosses and post_only[r]):  # cancelled before it landed, or post-only reject
                outcome[r, R_REJECTED] = crosses and post_only[r] and cancel_at[r] > t
                outcome[r, R_END] = min(t, cancel_at[r])
                continue
            # a market order, or a limit order allowed to take that reaches the opposite touch, takes it
            if market[r] or (crosses and (opposite - px[r]) * sign <= 0):
                records, owner = _room(records, owner, k)
                pos += sign * qty[r]
                record_fill(records, k, i, sign, opposite, qty[r], KIND_HEDGE, live_at[r], pos, -1)
                owner[k] = r
                k += 1
                outcome[r, R_LIVE] = live_at[r]
                outcome[r, R_END] = t
                outcome[r, R_FILLED] = qty[r]
                outcome[r, R_FIRST] = i
                outcome[r, R_LAST] = i
                qstate[r, Q_PFILL] = 1.0  # taking liquidity fills whatever the queue
                continue
            order[r, ON] = 1
            order[r, PX] = px[r]
            order[r, REM] = qty[r]
            order[r, SIZE] = qty[r]
            order[r, LIVE] = live_at[r]
            order[r, CANCEL] = cancel_at[r]
            outcome[r, R_LIVE] = live_at[r]
            outcome[r, R_END] = -1
            if queue:
                _join(
                    order,
                    qstate,
                    r,
                    sign,
                    bid[before] if s == 0 else ask[before],
                    (bid_qty if s == 0 else ask_qty)[before],
                )
                outcome[r, R_AHEAD] = order[r, ENTRY_AHEAD]
            resting[n_resting] = r
            n_resting += 1
        # 2. maker fills, per side the newest order first (the kernel's slot order)
        for s in range(2):
            sign = 1 - 2 * s
            for q in range(n_resting - 1, -1, -1):
                r = resting[q]
                if side[r] != s or not order[r, ON]:
                    continue
                fill, kind = maker_fill(
                    order,
                    qstate,
                    r,
                    t,
                    s,
                    bid[i],
                    ask[i],
                    bid_qty[i],
                    ask_qty[i],
                    aggressor[i],
                    trade_px[i],
                    trade_qty[i],
                    queue,
                    dwell_ns,
                    share,
                    prob,
                    exponent,
                    unit,
                )
                if fill <= 0:
                    continue
                records, owner = _room(records, owner, k)
                pos += sign * fill
                order[r, REM] -= fill
                order[r, ON] = order[r, REM] > 0
                ahead = order[r, ENTRY_AHEAD] if queue else -1
                record_fill(records, k, i, sign, order[r, PX], fill, kind, order[r, LIVE], pos, ahead)
                owner[k] = r
                k += 1
                outcome[r, R_FILLED] += fill
                if outcome[r, R_FIRST] < 0:
                    outcome[r, R_FIRST] = i
                outcome[r, R_LAST] = i
                if not order[r, ON]:
                    outcome[r, R_END] = t
        position[i] = pos
    if queue:
        for r in range(n):
            p_fill[r] = fill_probability(qstate, r)
    return records[:k], owner[:k]


def simulate_orders(
    ticks: pd.DataFrame,
    plan: OrderPlan,
    params: StrategyParams,
    fill: FillModel,
    latency: LatencyModel,
    fees: FeeModel,
    market: MarketColumns | None = None,
) -> OrderSimulation:
    """The plan's orders on one symbol's ticks (sorted by ``ts_server``) under the given models; ``params`` gives
    the instrument's grid and the markout horizon (the strategy settings in it are not read: the plan is the
    strategy)."""
    if market is None:
        market = MarketColumns.of(ticks, params.tick_size, params.lot_step)
    market.check(params, ticks)
    kernel = fill.kernel(params, latency)
    # under touch + dwell a replaced quote rests until its replacement lands: cancels take the entry latency
    cancel_ns = latency.cancel_ns if kernel.queue else latency.entry_ns
    live_at = plan.decision_ts + latency.entry_ns
    cancel_at = np.where(plan.cancel_ts >= NEVER, NEVER, plan.cancel_ts + cancel_ns)
    by_live = np.argsort(live_at, kind="stable")
    position = np.empty(len(market.ts), np.int64)
    outcome = np.full((len(plan), _OUTCOME_FIELDS), -1, np.int64)
    outcome[:, R_REJECTED] = 0
    outcome[:, R_FILLED] = 0
    p_fill = np.zeros(len(plan), np.float64)
    records, owner = _order_kernel(
        plan.side.astype(np.int64),
        plan.px,
        plan.qty,
        plan.post_only,
        plan.market,
        live_at,
        cancel_at.astype(np.int64),
        by_live.astype(np.int64),
        market.ts,
        market.bid,
        market.ask,
        market.bid_qty,
        market.ask_qty,
        market.aggressor,
        market.trade_px,
        market.trade_qty,
        kernel.queue,
        kernel.dwell_ns,
        kernel.share,
        kernel.prob,
        kernel.exponent,
        kernel.unit,
        position,
        outcome,
        p_fill,
    )
    fills = fill_table(market.ts, market.mid, records, params, fees)
    if kernel.queue:
        ahead = records[:, F_AHEAD]
        fills["queue_ahead_at_entry"] = np.where(ahead >= 0, ahead * params.lot_step, np.nan)
    fills["order_id"] = plan.order_id[owner] if len(owner) else np.array([], dtype=object)
    inventory = pd.DataFrame({"ts": market.ts, "position": position * params.lot_step, "mid": market.mid})
    # the queue models' predicted fill probability (``simulator.fill_probability``); touch + dwell has none: its
    # orders' outcomes are certain given the rule, so it predicts whether each filled
    predicted = p_fill if kernel.queue else (outcome[:, R_FILLED] > 0).astype(np.float64)
    orders = _orders_table(plan, outcome, fills, market, params, predicted)
    return OrderSimulation(Simulation(fills, inventory), orders)


def _orders_table(
    plan: OrderPlan,
    outcome: np.ndarray,
    fills: pd.DataFrame,
    market: MarketColumns,
    params: StrategyParams,
    p_fill: np.ndarray,
) -> pd.DataFrame:
    """One row per order: what it was and what the shadow says became of it."""
    filled = outcome[:, R_FILLED]
    status = np.select(
        [outcome[:, R_REJECTED] == 1, filled >= plan.qty, filled > 0], ["rejected", "filled", "partial"], "unfilled"
    )
    ids = pd.Index(plan.order_id)
    by_order = fills.groupby("order_id", sort=False)
    value = (fills["price"] * fills["qty"]).groupby(fills["order_id"], sort=False).sum()
    fee = by_order["fee"].sum()
    filled_base = filled * params.lot_step
    first = outcome[:, R_FIRST]
    return pd.DataFrame(
        {
            "order_id": plan.order_id,
            "side": np.where(plan.side == 0, 1, -1).astype(np.int8),
            "price": np.where(plan.market, np.nan, plan.px * params.tick_size),
            "qty": plan.qty * params.lot_step,
            "market": plan.market,
            "post_only": plan.post_only,
            "decision_ts": plan.decision_ts,
            "live_ts": outcome[:, R_LIVE],
            "end_ts": outcome[:, R_END],
            "status": pd.Categorical(status, categories=pd.Index(ORDER_STATUSES)),
            "filled_qty": filled_base,
            "first_fill_ts": np.where(first >= 0, market.ts[np.maximum(first, 0)] if len(market.ts) else -1, -1),
            "fill_vwap": value.reindex(ids).to_numpy(dtype=float) / np.where(filled > 0, filled_base, np.nan),
            "fee": fee.reindex(ids).fillna(0.0).to_numpy(dtype=float),
            "queue_ahead_at_entry": np.where(outcome[:, R_AHEAD] >= 0, outcome[:, R_AHEAD] * params.lot_step, np.nan),
            "p_fill": np.where(plan.market, 1.0, p_fill),
        }
    )
