"""``touch_offset``: the shadow's original quoter, now the first strategy behind the interface.

A bid ``quote_offset_ticks`` below the best bid and an ask as far above the best ask, one order size each, except
on a side whose full order could take |position| past the inventory limit; at the limit, a taker order back to
the hedge target. Kept decision for decision as it was inline in both engines: the golden fills
(``shadow_pipeline_tests/fills_golden.py``) hold it to that.
"""

from __future__ import annotations

import numba
import numpy as np

from shadow_pipeline.domain.strategies.interface import (
    P_HEDGE_ON,
    P_HEDGE_TARGET,
    P_MAX_POS,
    P_ORDER_QTY,
    P_OWN,
    Q_TAKER,
    V_ASK,
    V_BID,
    V_POSITION,
    Strategy,
)


@numba.njit(cache=True)
def decide(params: np.ndarray, view: np.ndarray, state: np.ndarray, quotes: np.ndarray) -> None:
    order_qty, max_pos, offset = params[P_ORDER_QTY], params[P_MAX_POS], params[P_OWN]
    pos = view[V_POSITION]
    for s in range(2):
        sign = 1 - 2 * s
        if abs(pos + sign * order_qty) <= max_pos or sign * pos < 0:
            quotes[2 * s] = view[V_BID] - offset if s == 0 else view[V_ASK] + offset
            quotes[2 * s + 1] = order_qty
    target = params[P_HEDGE_TARGET]
    if params[P_HEDGE_ON] and abs(pos) >= max_pos and abs(pos) > target:
        quotes[Q_TAKER] = -(abs(pos) - target) if pos > 0 else abs(pos) - target


TOUCH_OFFSET = Strategy("touch_offset", decide, fields=("quote_offset_ticks",))
