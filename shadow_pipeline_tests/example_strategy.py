"""A desk's own strategy, as ``docs/strategies.md`` walks through it: it lives in the desk's module, not in
shadow_pipeline, and a profile names it ``"strategy": "shadow_pipeline_tests.example_strategy:TRADE_FADE"``.

Trade fade: quote at the touch, but after an aggressive trade hits a side, step that side back ``fade_ticks``
for ``fade_ms``: the next aggressor in the same direction (trades cluster) then meets the queue, not us.
"""

from __future__ import annotations

import numba
import numpy as np

from shadow_pipeline.domain.strategies.interface import (
    P_ORDER_QTY,
    P_OWN,
    Q_TAKER,
    V_ASK,
    V_BID,
    V_TIME,
    V_TRADE_SIDE,
    Param,
    Strategy,
    hedge_quantity,
    within_limit,
)

FADE_TICKS, FADE_MS = P_OWN, P_OWN + 1  # the parameters, in the order TRADE_FADE declares them
HIT_UNTIL = 0  # state: per side (0 bid, 1 ask), the time (ns) until which the side stays stepped back


@numba.njit(cache=True)
def decide(params: np.ndarray, view: np.ndarray, state: np.ndarray, quotes: np.ndarray) -> None:
    now = view[V_TIME]
    if view[V_TRADE_SIDE] != 0:  # a sell aggressor hits the bids (side 0), a buy aggressor lifts the asks (1)
        side = 0 if view[V_TRADE_SIDE] < 0 else 1
        state[HIT_UNTIL + side] = now + params[FADE_MS] * 1e6
    for s in range(2):
        if not within_limit(params, view, s):
            continue
        back = params[FADE_TICKS] if now < state[HIT_UNTIL + s] else 0.0
        quotes[2 * s] = view[V_BID] - back if s == 0 else view[V_ASK] + back
        quotes[2 * s + 1] = params[P_ORDER_QTY]
    quotes[Q_TAKER] = hedge_quantity(params, view)


TRADE_FADE = Strategy(
    "trade_fade",
    decide,
    parameters=(Param("fade_ticks", 2, 0, 100, integer=True), Param("fade_ms", 500, 0, 60_000)),
    state_size=2,
)
