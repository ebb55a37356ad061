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
    P_ORDER_QTY,
    P_OWN,
    Q_TAKER,
    V_ASK,
    V_BID,
    V_POSITION,
    Strategy,
    hedge_quantity,
    within_limit,
)


@numba.njit(cache=True)
def decide(params: np.ndarray, view: np.ndarray, state: np.ndarray, quotes: np.ndarray) -> None:
    offset = params[P_OWN]
    for s in range(2):
        if within_limit(params, view, s):
            quotes[2 * s] = view[V_BID] - offset if s == 0 else view[V_ASK] + offset
            quotes[2 * s + 1] = params[P_ORDER_QTY]
    quotes[Q_TAKER] = hedge_quantity(params, view)


# The touch and the position are all it reads (``within_limit`` and ``hedge_quantity`` read the position): the
# shadow's kernel calls it only on the ticks where one of them changed (a few % of them).
TOUCH_OFFSET = Strategy("touch_offset", decide, fields=("quote_offset_ticks",), reads=(V_BID, V_ASK, V_POSITION))
