"""The intents a bot running a built-in strategy would publish: the kernel's sends (``Simulation.sends``) written
out as the order stream's records.

Why: it is the example bot of ``make loop`` and the reference of the ``external`` strategy: shadowing these
intents must give the strategy's own fills bit for bit, so any difference in the order path shows.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from shadow_pipeline.domain.simulation.simulator import S_PX, S_QTY, S_REPLACES, S_SIDE, S_TS, S_WANT, SEND_TAKER
from shadow_pipeline.domain.strategies.external.intents import CANCEL, PLACE, REPLACE


def decimal_text(steps: int, step: float) -> str:
    """``steps * step`` as a plain decimal that parses back to exactly ``steps`` steps."""
    return format(Decimal(int(steps)) * Decimal(repr(step)), "f")


def intents_from_sends(sends: np.ndarray, tick_size: float, lot_step: float, prefix: str = "o") -> list[dict[str, str]]:
    """One intent per send, client ids ``<prefix>-<n>``: a quote on a side whose last order is live replaces it,
    else it is placed; a side that wants no quote cancels its live order; a taker send is a market order."""
    intents: list[dict[str, str]] = []
    last = ["", ""]  # the last order id of each side
    for n, send in enumerate(sends):
        ts, side = str(int(send[S_TS])), int(send[S_SIDE])
        order_id = f"{prefix}-{n + 1}"
        if side == SEND_TAKER:
            lots = int(send[S_QTY])
            intents.append(
                {
                    "action": PLACE,
                    "order_id": order_id,
                    "ts_decision": ts,
                    "side": "buy" if lots > 0 else "sell",
                    "type": "market",
                    "post_only": "0",
                    "qty": decimal_text(abs(lots), lot_step),
                }
            )
            continue
        live = bool(send[S_REPLACES])
        if not send[S_WANT]:
            intents.append({"action": CANCEL, "order_id": last[side], "ts_decision": ts})
            continue
        price, qty = decimal_text(int(send[S_PX]), tick_size), decimal_text(int(send[S_QTY]), lot_step)
        if live:
            intents.append(
                {
                    "action": REPLACE,
                    "order_id": last[side],
                    "new_order_id": order_id,
                    "ts_decision": ts,
                    "price": price,
                    "qty": qty,
                }
            )
        else:
            side_name = "buy" if side == 0 else "sell"
            intents.append(
                {
                    "action": PLACE,
                    "order_id": order_id,
                    "ts_decision": ts,
                    "side": side_name,
                    "price": price,
                    "qty": qty,
                    "post_only": "1",
                }
            )
        last[side] = order_id
    return intents
