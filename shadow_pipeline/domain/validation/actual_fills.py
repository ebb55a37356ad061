"""Fills a real dry-run or testnet bot reported, in the simulator's ``Simulation`` shape.

The validator compares the shadow, an independent engine and the bot on the same KPIs; putting the bot's fills
into the same table means ``iteration_kpis`` computes all three the same way, so a difference is the fills', not
the arithmetic's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.simulator import FILL_KINDS, KIND_HEDGE, KIND_TRADE, Simulation, markout_mids
from shadow_pipeline.domain.strategies.profiles import StrategyParams

FILL_COLUMNS = ("ts", "side", "price", "qty", "is_maker", "fee")
_SIDES = {"buy": 1, "sell": -1}


def validate_fills(fills: pd.DataFrame, ticks: pd.DataFrame) -> None:
    """Raise ValueError naming the first problem: a bot's report is outside input, so it is checked, not trusted."""
    missing = [c for c in FILL_COLUMNS if c not in fills.columns]
    if missing:
        raise ValueError(f"fills: missing columns {', '.join(missing)} (need {', '.join(FILL_COLUMNS)})")
    if ticks.empty:
        raise ValueError("ticks: empty; the fills need the market around them")
    if not pd.api.types.is_integer_dtype(fills["ts"]):
        raise ValueError(f"fills: ts must be int64 nanoseconds, got {fills['ts'].dtype}")
    if not pd.api.types.is_bool_dtype(fills["is_maker"]):
        raise ValueError(f"fills: is_maker must be bool, got {fills['is_maker'].dtype}")
    bad_side = ~fills["side"].isin(list(_SIDES))
    if bad_side.any():
        raise ValueError(f"fills: side must be 'buy' or 'sell', got {fills['side'][bad_side].iloc[0]!r}")
    for name in ("price", "qty", "fee"):
        if not pd.api.types.is_numeric_dtype(fills[name]) or fills[name].isna().any():
            raise ValueError(f"fills: {name} must be numeric without NaN")
    for name in ("price", "qty"):
        if (fills[name] <= 0).any():
            raise ValueError(f"fills: {name} must be positive")
    first = int(ticks["ts_server"].iloc[0])
    if len(fills) and int(fills["ts"].min()) <= first:
        raise ValueError(f"fills: a fill at ts {int(fills['ts'].min())} has no tick before it (first tick {first})")


def simulation_from_fills(fills: pd.DataFrame, ticks: pd.DataFrame, params: StrategyParams) -> Simulation:
    """The bot's fills (``FILL_COLUMNS``: exchange time ns, "buy"/"sell", price, base qty, maker flag, fee in
    quote currency with rebates negative) against one symbol's ticks (sorted by ``ts_server``, starting before
    the first fill).

    Maker fills are ``kind`` trade and taker fills hedge (the strategy only takes liquidity to hedge); the
    touch before a fill gives ``mid_before`` and the markout mid follows the simulator's rule. ``quote_live_ts``
    is the fill time: the report does not say when the order went live.
    """
    validate_fills(fills, ticks)
    fills = fills.sort_values("ts", kind="stable")
    ts = ticks["ts_server"].to_numpy(dtype=np.int64)
    mid = (ticks["bid"].to_numpy(dtype=np.float64) + ticks["ask"].to_numpy(dtype=np.float64)) / 2
    fill_ts = fills["ts"].to_numpy(dtype=np.int64)
    side = fills["side"].map(_SIDES).to_numpy(dtype=np.int8)
    price = fills["price"].to_numpy(dtype=np.float64)
    qty = fills["qty"].to_numpy(dtype=np.float64)
    is_maker = fills["is_maker"].to_numpy(dtype=bool)
    fee = fills["fee"].to_numpy(dtype=np.float64)
    position_after = np.cumsum(side * qty)
    before = np.searchsorted(ts, fill_ts, side="left") - 1  # the last tick strictly before the fill
    table = pd.DataFrame(
        {
            "ts": fill_ts,
            "tick": np.searchsorted(ts, fill_ts, side="right") - 1,
            "side": side,
            "price": price,
            "qty": qty,
            "is_maker": is_maker,
            "kind": pd.Categorical.from_codes(
                np.where(is_maker, KIND_TRADE, KIND_HEDGE).astype(np.int8), categories=pd.Index(FILL_KINDS)
            ),
            "fee": fee,
            "fee_rate": fee / (price * qty),
            "mid_before": mid[before],
            "mid_markout": markout_mids(ts, mid, fill_ts, params.markout_horizon_s),
            "position_after": position_after,
            "quote_live_ts": fill_ts,
        }
    )
    done = np.searchsorted(fill_ts, ts, side="right")  # fills at or before each tick
    position = np.where(done > 0, position_after[np.maximum(done - 1, 0)], 0.0)
    return Simulation(table, pd.DataFrame({"ts": ts, "position": position, "mid": mid}))
