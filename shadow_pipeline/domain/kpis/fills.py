"""Every simulated fill as a row a person can query, and the per-fill edges the KPIs are sums of.

Why one module for both: the fills table's ``markout_bps`` and ``spread_capture_bps`` must be the very numbers the
window KPIs (``net_bps``, ``adverse_selection_bps``) weight and add, so a reader who sums the table gets the
report's figures; both come from :func:`fill_edges`.

Sign conventions: ``side`` is ``buy`` or ``sell``; ``fee`` is in the quote currency, positive when paid and
negative for a rebate (the profile's fee rate times price times quantity); an edge in bps is positive when it
earns (a buy below the mid, or the mid rising after a buy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.simulator import FILL_KINDS, KIND_HEDGE
from shadow_pipeline.domain.strategies.profiles import StrategyParams

COLUMNS = (
    "ts",
    "time",
    "side",
    "price",
    "qty",
    "liquidity",
    "kind",
    "fee",
    "spread_capture_bps",
    "markout_bps",
    "position_after",
    "order_id",
)
MAKER, TAKER = "maker", "taker"
_NS = 1_000_000_000


@dataclass(frozen=True)
class FillEdges:
    """Per fill: signed side (+1 buy), notional, whether the markout mid is known yet, and the edges in bps
    (``markout_bps`` is 0 where the horizon runs past the last tick; ``known`` says where)."""

    side: np.ndarray
    notional: np.ndarray
    known: np.ndarray
    markout_bps: np.ndarray
    capture_bps: np.ndarray
    fee_bps: np.ndarray


def fill_edges(fills: pd.DataFrame) -> FillEdges:
    """The edges of a simulation's fills table: capture against the mid before the fill, markout against the mid
    ``markout_horizon_s`` after it."""
    side = fills["side"].to_numpy(dtype=np.float64)
    price = fills["price"].to_numpy(dtype=np.float64)
    mid_h = fills["mid_markout"].to_numpy(dtype=np.float64)
    m0 = fills["mid_before"].to_numpy(dtype=np.float64)
    known = ~np.isnan(mid_h)
    return FillEdges(
        side=side,
        notional=price * fills["qty"].to_numpy(dtype=np.float64),
        known=known,
        markout_bps=np.where(known, side * (np.nan_to_num(mid_h) - price) / price * 1e4, 0.0),
        capture_bps=side * (m0 - price) / m0 * 1e4,
        fee_bps=fills["fee_rate"].to_numpy(dtype=np.float64) * 1e4,
    )


def iso_times(ts: np.ndarray) -> np.ndarray:
    """Exchange nanoseconds as ISO 8601 UTC text with all nine digits (``2024-08-09T00:00:01.000000123Z``)."""
    ns = np.asarray(ts, dtype=np.int64)
    seconds = pd.to_datetime(ns - ns % _NS, utc=True).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = pd.Series(ns % _NS, dtype=np.int64).astype(str).str.zfill(9)
    return (pd.Series(seconds, dtype=object) + "." + fraction + "Z").to_numpy(dtype=object)


def _order_ids(fills: pd.DataFrame) -> np.ndarray:
    """An external bot's client order ids; for a built-in strategy, which has none, the simulated order's side and
    the exchange time it went live (a hedge: the time it was due), unique per order within the partition."""
    if "order_id" in fills:
        return fills["order_id"].astype(str).to_numpy(dtype=object)
    hedge = fills["kind"].astype(str).to_numpy() == FILL_KINDS[KIND_HEDGE]
    side = fills["side"].to_numpy()
    prefix = np.where(hedge, "hedge", np.where(side > 0, "bid", "ask"))
    live = fills["quote_live_ts"].astype(str).to_numpy(dtype=object)
    return (pd.Series(prefix, dtype=object) + "-" + live).to_numpy(dtype=object)


def fills_table(fills: pd.DataFrame, params: StrategyParams) -> pd.DataFrame:
    """One row per fill of a simulation (``Simulation.fills``) in :data:`COLUMNS`; ``attrs`` say which profile and
    symbol it is of and the markout horizon. ``markout_bps`` is NaN where the horizon runs past the hour's last
    tick (the KPIs leave those fills out of their markout weight)."""
    edges = fill_edges(fills)
    ts = fills["ts"].to_numpy(dtype=np.int64)
    table = pd.DataFrame(
        {
            "ts": ts,
            "time": iso_times(ts),
            "side": np.where(edges.side > 0, "buy", "sell").astype(object),
            "price": fills["price"].to_numpy(dtype=np.float64),
            "qty": fills["qty"].to_numpy(dtype=np.float64),
            "liquidity": np.where(fills["is_maker"].to_numpy(dtype=bool), MAKER, TAKER).astype(object),
            "kind": fills["kind"].astype(str).to_numpy(dtype=object),
            "fee": fills["fee"].to_numpy(dtype=np.float64),
            "spread_capture_bps": edges.capture_bps,
            "markout_bps": np.where(edges.known, edges.markout_bps, np.nan),
            "position_after": fills["position_after"].to_numpy(dtype=np.float64),
            "order_id": _order_ids(fills),
        },
        columns=list(COLUMNS),
    )
    table.attrs = {
        "profile": params.profile,
        "symbol": params.symbol,
        "markout_horizon_s": float(params.markout_horizon_s),
    }
    return table
