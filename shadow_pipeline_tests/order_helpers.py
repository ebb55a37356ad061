"""Hand-built orders and fills of a bot and its shadow, on ten seconds of ticks, for the reconciliation tests."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from shadow_pipeline_tests.sim_helpers import MS, T0, make_ticks, params, tick

PARAMS = params()  # markout horizon 1 s
# One tick a second for 10 s; mid 100.1 + 0.1 k at k s. A fill at t ms is marked at the mid of second
# floor(t / 1000) + 1; fills after 9 s have no markout (past the last tick).
TICKS = make_ticks([tick(1000 * k, 100.0 + 0.1 * k, 100.2 + 0.1 * k) for k in range(11)])
Fill = tuple[str, float, float, float, float]  # order id, ms, price, qty, fee


def orders_table(sides: dict[str, int], shadow: Sequence[Fill], p_fill: dict[str, float] | None = None) -> pd.DataFrame:
    """The order engine's table for orders ``sides`` (id: +1/-1), its outcome summed from the shadow's fills."""
    rows = []
    for order_id, side in sides.items():
        own = [f for f in shadow if f[0] == order_id]
        qty = sum(f[3] for f in own)
        rows.append(
            {
                "order_id": order_id,
                "side": side,
                "price": 100.0,
                "qty": 1.0,
                "market": False,
                "decision_ts": T0 + 10 * MS,
                "live_ts": T0 + 20 * MS,
                "end_ts": -1,
                "status": "filled" if qty >= 1.0 else "partial" if qty > 0 else "unfilled",
                "filled_qty": qty,
                "first_fill_ts": min((T0 + int(f[1] * MS) for f in own), default=-1),
                "fill_vwap": sum(f[2] * f[3] for f in own) / qty if qty else float("nan"),
                "fee": sum(f[4] for f in own),
                "p_fill": (p_fill or {}).get(order_id, 1.0 if qty else 0.0),
            }
        )
    return pd.DataFrame(rows)


def shadow_fill_table(sides: dict[str, int], fills: Sequence[Fill]) -> pd.DataFrame:
    frame = pd.DataFrame(fills, columns=["order_id", "ms", "price", "qty", "fee"])
    return pd.DataFrame(
        {
            "ts": (T0 + frame["ms"] * MS).astype("int64"),
            "side": frame["order_id"].map(sides).astype("int8"),
            "price": frame["price"].astype("float64"),
            "qty": frame["qty"].astype("float64"),
            "fee": frame["fee"].astype("float64"),
            "order_id": frame["order_id"].astype(object),
        }
    )


def real_fill_table(sides: dict[str, int], fills: Sequence[Fill]) -> pd.DataFrame:
    """As ``read_fills`` returns them; an id not in ``sides`` is a buy."""
    frame = shadow_fill_table({**{f[0]: 1 for f in fills}, **sides}, fills)
    return pd.DataFrame(
        {
            "ts": frame["ts"],
            "side": frame["side"].map({1: "buy", -1: "sell"}).astype(object),
            "price": frame["price"],
            "qty": frame["qty"],
            "is_maker": True,
            "fee": frame["fee"],
            "order_id": frame["order_id"],
        }
    )
