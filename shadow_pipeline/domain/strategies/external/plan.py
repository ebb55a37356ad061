"""The orders a bot sent, as the engines take them: one row per order, in the order the bot placed them.

Why a plan and not the intents themselves: the engines need, per order, when it was decided and when (if ever) the
bot decided to cancel it, on one grid (integer ticks and lot steps), which is what a checked intent stream comes
down to; a replace is a cancel of the old order and a new order, as venues implement it (Binance's
cancelReplace, Bybit's amend that loses queue priority when the price changes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NEVER = np.int64(2**62)  # ``cancel_ts`` of an order the bot never cancelled
BUY, SELL = 0, 1  # ``side``: the kernel's side index (0 bid, 1 ask)
PLAN_COLUMNS = ("order_id", "side", "px", "qty", "post_only", "market", "decision_ts", "cancel_ts")


@dataclass(frozen=True)
class OrderPlan:
    """Column arrays, one row per order, sorted by ``decision_ts`` (stable in stream order).

    ``order_id``: the bot's client order id; ``side``: :data:`BUY` or :data:`SELL`; ``px``: limit price in ticks
    (0 for a market order); ``qty``: lot steps; ``post_only``: rejected instead of taking liquidity;
    ``market``: a taker order that executes at the opposite touch; ``decision_ts``: when the bot decided to send
    it (exchange-time ns); ``cancel_ts``: when it decided to cancel it (a cancel or a replace), :data:`NEVER` if
    it did not. Latency is the engines' to add.
    """

    order_id: np.ndarray
    side: np.ndarray
    px: np.ndarray
    qty: np.ndarray
    post_only: np.ndarray
    market: np.ndarray
    decision_ts: np.ndarray
    cancel_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.order_id)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> OrderPlan:
        """From a frame with :data:`PLAN_COLUMNS` (sorted here by decision time, stably)."""
        frame = frame.sort_values("decision_ts", kind="stable")
        return cls(
            order_id=frame["order_id"].to_numpy(dtype=object),
            side=frame["side"].to_numpy(dtype=np.int8),
            px=frame["px"].to_numpy(dtype=np.int64),
            qty=frame["qty"].to_numpy(dtype=np.int64),
            post_only=frame["post_only"].to_numpy(dtype=np.bool_),
            market=frame["market"].to_numpy(dtype=np.bool_),
            decision_ts=frame["decision_ts"].to_numpy(dtype=np.int64),
            cancel_ts=frame["cancel_ts"].to_numpy(dtype=np.int64),
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: getattr(self, name) for name in PLAN_COLUMNS})

    def decided_within(self, start_ns: int, end_ns: int) -> OrderPlan:
        """The orders decided in ``[start_ns, end_ns)`` (an hour partition's share of a longer stream)."""
        keep = (self.decision_ts >= start_ns) & (self.decision_ts < end_ns)
        return OrderPlan(**{name: getattr(self, name)[keep] for name in PLAN_COLUMNS})
