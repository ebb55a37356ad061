"""A small per-order replay for the tests: each order the strategy sent, run alone through ``_queue_fill``.

The per-order engine (``domain/simulation/order_engine.py``) is written separately; until it lands, the fill
probability tests and the self-calibration fit need orders with a fixed life (the bot's real sends) and a
prediction per order. This replays ``Simulation.sends`` under a given entry latency: an order goes live
``decision + entry`` after its send (post-only against the touch in force), and rests until its side's next send
lands its cancel (the same latency) or it is filled. Orders are independent: no position, no hedges.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.models import QueueAware
from shadow_pipeline.domain.simulation.simulator import (
    _FAR,
    _ORDER_FIELDS,
    PX,
    QSTATE_FIELDS,
    REM,
    S_PX,
    S_QTY,
    S_SIDE,
    S_TS,
    S_WANT,
    SEND_TAKER,
    MarketColumns,
    _join,
    _queue_fill,
    fill_probability,
)
from shadow_pipeline.domain.strategies.profiles import QUEUE_PROBS, StrategyParams

_MS = 1_000_000


def orders_of(sends: np.ndarray) -> pd.DataFrame:
    """The maker orders of a run's sends (``S_*`` rows): one row each, with the time of the side's next send
    (which cancels it; never, for the last)."""
    quotes = sends[sends[:, S_SIDE] != SEND_TAKER]
    rows = []
    for side in (0, 1):
        mine = quotes[quotes[:, S_SIDE] == side]
        nxt = np.r_[mine[1:, S_TS], _FAR]
        keep = mine[:, S_WANT] == 1
        rows.append(
            pd.DataFrame(
                {
                    "sent_ts": mine[keep, S_TS],
                    "side": side,
                    "px": mine[keep, S_PX],
                    "qty": mine[keep, S_QTY],
                    "next_send_ts": nxt[keep],
                }
            )
        )
    orders = pd.concat(rows, ignore_index=True).sort_values(["sent_ts", "side"], kind="stable")
    orders = orders.reset_index(drop=True)
    orders.insert(0, "order_id", np.arange(len(orders)))
    return orders


@numba.njit(cache=True)
def _replay(
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_qty: np.ndarray,
    ask_qty: np.ndarray,
    aggressor: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    sides: np.ndarray,
    pxs: np.ndarray,
    qtys: np.ndarray,
    live_ts: np.ndarray,
    cancel_ts: np.ndarray,
    share: float,
    prob: int,
    exponent: float,
    unit: float,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(sides)
    filled = np.zeros(n, np.int64)
    p_fill = np.zeros(n, np.float64)
    order = np.zeros((1, _ORDER_FIELDS), np.int64)
    qstate = np.zeros((1, QSTATE_FIELDS), np.float64)
    for o in range(n):
        i = np.searchsorted(ts, live_ts[o])
        if i == 0 or i >= len(ts):
            continue
        s = sides[o]
        sign = 1 - 2 * s
        if (s == 0 and pxs[o] >= ask[i - 1]) or (s == 1 and pxs[o] <= bid[i - 1]):
            continue  # post-only: rejected
        order[0, :] = 0
        order[0, PX] = pxs[o]
        order[0, REM] = qtys[o]
        _join(order, qstate, 0, sign, bid[i - 1] if s == 0 else ask[i - 1], (bid_qty if s == 0 else ask_qty)[i - 1])
        while i < len(ts) and ts[i] < cancel_ts[o] and order[0, REM] > 0:
            fill, _ = _queue_fill(
                order,
                qstate,
                0,
                ts[i],
                sign,
                bid[i] if s == 0 else ask[i],
                (bid_qty if s == 0 else ask_qty)[i],
                ask[i] if s == 0 else bid[i],
                aggressor[i],
                trade_px[i],
                trade_qty[i],
                share,
                prob,
                exponent,
                unit,
            )
            order[0, REM] -= fill
            filled[o] += fill
            i += 1
        p_fill[o] = fill_probability(qstate, 0)
    return filled, p_fill


def replay_orders(
    market: MarketColumns,
    orders: pd.DataFrame,
    params: StrategyParams,
    queue: QueueAware,
    entry_latency_ms: float,
) -> pd.DataFrame:
    """``orders`` (``orders_of``) with the lots each filled (``filled_lots``, ``filled``) and ``p_fill``, under
    ``queue`` and an order entry (and cancel) latency of ``entry_latency_ms`` after ``decision_latency_ms``."""
    delay = round((params.decision_latency_ms + entry_latency_ms) * _MS)
    sent = orders["sent_ts"].to_numpy(np.int64)
    nxt = orders["next_send_ts"].to_numpy(np.int64)
    filled, p_fill = _replay(
        market.ts,
        market.bid,
        market.ask,
        market.bid_qty,
        market.ask_qty,
        market.aggressor,
        market.trade_px,
        market.trade_qty,
        orders["side"].to_numpy(np.int64),
        orders["px"].to_numpy(np.int64),
        orders["qty"].to_numpy(np.int64),
        sent + delay,
        np.where(nxt == _FAR, _FAR, nxt + delay),
        queue.size_decrease_share,
        QUEUE_PROBS.index(queue.queue_prob),
        queue.prob_exponent,
        params.lot_step,
    )
    return orders.assign(filled_lots=filled, filled=filled > 0, p_fill=p_fill)
