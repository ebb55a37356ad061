"""``inventory_skew``: an Avellaneda-Stoikov quoter around the micro-price, the family desks start from.

Why a second strategy: ``touch_offset`` joins the touch whatever its inventory and whatever the book says, so
it keeps quoting the side that is about to be run over. This one quotes around a reservation price that leans
against its inventory and towards the short-horizon signal of the book:

- fair value: the mid moved towards the micro-price (Stoikov 2018), ``mid + signal_weight * (micro - mid)``,
  with ``micro = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)``;
- reservation price (Avellaneda-Stoikov 2008): ``r = fair - q * gamma * sigma^2 * horizon_s``, q the position in
  orders (so gamma is per order), sigma^2 the variance rate of the mid (ticks^2 per second, an exponentially
  weighted estimate with half-life ``volatility_halflife_s``);
- half-spread: ``gamma * sigma^2 * horizon_s / 2 + ln(1 + gamma / kappa) / gamma`` ticks, at least
  ``min_half_spread_ticks``; kappa is the order-arrival decay per tick of distance.

The bid is the reservation price less the half-spread rounded down to the tick grid, the ask the sum rounded
up, each kept off the opposite touch (a post-only order there would be rejected). The inventory limit and the
hedge are the shared rules of ``interface.py``, as in ``touch_offset``. Everything is in ticks and lots, so the
parameters carry over between instruments of different tick sizes only as far as their ticks compare.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from shadow_pipeline.domain.strategies.interface import (
    P_ORDER_QTY,
    P_OWN,
    Q_ASK_PX,
    Q_ASK_QTY,
    Q_BID_PX,
    Q_BID_QTY,
    Q_TAKER,
    V_ASK,
    V_ASK_QTY,
    V_BID,
    V_BID_QTY,
    V_POSITION,
    V_TIME,
    Param,
    Strategy,
    hedge_quantity,
    within_limit,
)

GAMMA, KAPPA, HORIZON, HALFLIFE, SIGNAL, MIN_HALF = range(P_OWN, P_OWN + 6)
# state: variance rate (ticks^2/s), mid and time (s) of the last update, whether there was one
VARIANCE, LAST_MID, LAST_T, STARTED = range(4)


@numba.njit(cache=True)
def decide(params: np.ndarray, view: np.ndarray, state: np.ndarray, quotes: np.ndarray) -> None:
    bid, ask = float(view[V_BID]), float(view[V_ASK])
    mid = (bid + ask) / 2
    t = view[V_TIME] * 1e-9
    if state[STARTED] == 0:
        state[LAST_MID], state[LAST_T], state[STARTED] = mid, t, 1
    elif t > state[LAST_T]:
        dt = t - state[LAST_T]
        weight = 1 - math.exp(-dt * math.log(2) / params[HALFLIFE])
        state[VARIANCE] += weight * ((mid - state[LAST_MID]) ** 2 / dt - state[VARIANCE])
        state[LAST_MID], state[LAST_T] = mid, t
    sizes = view[V_BID_QTY] + view[V_ASK_QTY]
    micro = (bid * view[V_ASK_QTY] + ask * view[V_BID_QTY]) / sizes if sizes > 0 else mid
    fair = mid + params[SIGNAL] * (micro - mid)
    gamma, risk = params[GAMMA], params[GAMMA] * state[VARIANCE] * params[HORIZON]
    orders = view[V_POSITION] / params[P_ORDER_QTY]
    reservation = fair - orders * risk
    half = max(risk / 2 + math.log(1 + gamma / params[KAPPA]) / gamma, params[MIN_HALF])
    if within_limit(params, view, 0):
        quotes[Q_BID_PX] = min(math.floor(reservation - half), ask - 1)
        quotes[Q_BID_QTY] = params[P_ORDER_QTY]
    if within_limit(params, view, 1):
        quotes[Q_ASK_PX] = max(math.ceil(reservation + half), bid + 1)
        quotes[Q_ASK_QTY] = params[P_ORDER_QTY]
    quotes[Q_TAKER] = hedge_quantity(params, view)


INVENTORY_SKEW = Strategy(
    "inventory_skew",
    decide,
    parameters=(
        Param("risk_aversion", 1e-4, 1e-9, 100.0),
        Param("arrival_decay", 2.0, 1e-3, 1000.0),
        Param("horizon_s", 1.0, 0.0, 3600.0),
        Param("volatility_halflife_s", 30.0, 0.1, 86400.0),
        Param("signal_weight", 1.0, 0.0, 10.0),
        Param("min_half_spread_ticks", 0.5, 0.0, 1000.0),
    ),
    state_size=4,
)
