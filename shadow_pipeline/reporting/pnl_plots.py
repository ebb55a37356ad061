"""Pictures of an hour's fills (a ``domain.kpis.fills`` table) on its market: where the PnL came from, how far the
inventory went against its limit, and where on the price the quotes filled.

Why beside the KPI plot: a net_bps that fails its gate says little on its own; the parts (capture earned, lost to
adverse selection, paid in fees) and the inventory path say whether to widen quotes, shorten the markout or cut
the size. The figures are built apart from their PNGs so that tests can read what a figure holds.
"""

from __future__ import annotations

from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.fills import MAKER
from shadow_pipeline.reporting.plots import _png

MAX_POINTS = 4000  # mid samples drawn: enough for a smooth hour, few enough to render in well under a second


class PlotFile(NamedTuple):
    file: str
    alt: str


PNL_PLOT = PlotFile("pnl.png", "cumulative PnL and its parts")
INVENTORY_PLOT = PlotFile("inventory.png", "inventory against its limit")
FILLS_PLOT = PlotFile("fills_on_price.png", "fills on the price")
FILL_PLOTS = (PNL_PLOT, INVENTORY_PLOT, FILLS_PLOT)


def _times(ts: pd.Series | np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(ts, dtype=np.int64), utc=True)


def _thin(market: pd.DataFrame) -> pd.DataFrame:
    """Every k-th tick of ``market`` (``ts``, ``mid``), the last one kept, at most about MAX_POINTS rows."""
    step = max(1, len(market) // MAX_POINTS)
    keep = np.unique(np.append(np.arange(0, len(market), step), len(market) - 1)) if len(market) else []
    return market.iloc[keep]


def _no_fills(axis: plt.Axes) -> None:
    axis.text(0.5, 0.5, "no fills in the hour", ha="center", va="center", transform=axis.transAxes)


def pnl_figure(fills: pd.DataFrame, title: str) -> plt.Figure:
    """Cumulative quote-currency PnL of the fills whose markout is known, in its parts: spread capture earned at
    the fill, lost to adverse selection by the markout horizon, fees paid; net is their sum (the net_bps KPI's
    numerator)."""
    figure, axis = plt.subplots(figsize=(8, 3.2))
    known = fills["markout_bps"].notna().to_numpy()
    notional = (fills["price"] * fills["qty"]).to_numpy(dtype=np.float64) * known / 1e4
    capture = fills["spread_capture_bps"].to_numpy(dtype=np.float64) * notional
    markout = np.nan_to_num(fills["markout_bps"].to_numpy(dtype=np.float64)) * notional
    fees = fills["fee"].to_numpy(dtype=np.float64) * known
    parts = {
        "spread capture": (capture, "tab:green"),
        "adverse selection (markout)": (markout - capture, "tab:red"),
        "fees": (-fees, "tab:purple"),
        "net": (markout - fees, "black"),
    }
    if len(fills):
        when = _times(fills["ts"])
        for label, (values, colour) in parts.items():
            axis.step(when, np.cumsum(values), where="post", color=colour, label=label, linewidth=1.2)
        axis.legend(fontsize=7, loc="best")
    else:
        _no_fills(axis)
    axis.axhline(0.0, color="0.6", linewidth=0.8)
    axis.set_ylabel("cumulative PnL (quote)", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.set_title(title, fontsize=9)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def inventory_figure(fills: pd.DataFrame, market: pd.DataFrame, limit: float, title: str) -> plt.Figure:
    """The position after every fill (flat before the first) against +-``limit`` (max_inventory lots x min_lot)."""
    figure, axis = plt.subplots(figsize=(8, 3.2))
    start = int(market["ts"].iloc[0]) if len(market) else int(fills["ts"].iloc[0]) if len(fills) else 0
    end = int(market["ts"].iloc[-1]) if len(market) else start
    ts = np.concatenate(([start], fills["ts"].to_numpy(dtype=np.int64), [end]))
    position = fills["position_after"].to_numpy(dtype=np.float64)
    path = np.concatenate(([0.0], position, position[-1:] if len(position) else [0.0]))
    axis.step(_times(ts), path, where="post", color="tab:blue", label="position")
    for sign in (1, -1):
        axis.axhline(sign * limit, color="tab:red", linestyle="--", linewidth=1, label="limit" if sign > 0 else None)
    axis.axhline(0.0, color="0.6", linewidth=0.8)
    axis.set_ylabel("position (base)", fontsize=8)
    axis.legend(fontsize=7, loc="best")
    axis.tick_params(labelsize=7)
    axis.set_title(title, fontsize=9)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def fills_on_price_figure(fills: pd.DataFrame, market: pd.DataFrame, title: str) -> plt.Figure:
    """The mid, and every fill at its price: buys up-triangles, sells down; makers filled, takers hollow."""
    figure, axis = plt.subplots(figsize=(8, 3.6))
    shown = _thin(market)
    axis.plot(_times(shown["ts"]), shown["mid"], color="0.5", linewidth=0.8, label="mid")
    maker = (fills["liquidity"] == MAKER).to_numpy()
    buy = (fills["side"] == "buy").to_numpy()
    when = _times(fills["ts"])
    price = fills["price"].to_numpy(dtype=np.float64)
    for is_buy, marker, colour, side in ((True, "^", "tab:green", "buy"), (False, "v", "tab:red", "sell")):
        for is_maker, liquidity in ((True, "maker"), (False, "taker")):
            chosen = (buy == is_buy) & (maker == is_maker)
            if not chosen.any():
                continue
            face = colour if is_maker else "none"
            axis.scatter(
                when[chosen], price[chosen], marker=marker, s=18, facecolors=face, edgecolors=colour,
                label=f"{side} {liquidity}",
            )  # fmt: skip
    if not len(fills):
        _no_fills(axis)
    axis.set_ylabel("price (quote)", fontsize=8)
    axis.legend(fontsize=7, loc="best")
    axis.tick_params(labelsize=7)
    axis.set_title(title, fontsize=9)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def fill_plot_pngs(fills: pd.DataFrame, market: pd.DataFrame, limit: float, title: str) -> dict[PlotFile, bytes]:
    """The three pictures as PNGs, keyed by their files (:data:`FILL_PLOTS`)."""
    return {
        PNL_PLOT: _png(pnl_figure(fills, f"{title}: cumulative PnL by part")),
        INVENTORY_PLOT: _png(inventory_figure(fills, market, limit, f"{title}: inventory")),
        FILLS_PLOT: _png(fills_on_price_figure(fills, market, f"{title}: fills on the mid")),
    }
