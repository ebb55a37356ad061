"""Pictures of an hour's fills (a ``domain.kpis.fills`` table) on its market: where the PnL came from, how far the
inventory went against its limit, and where on the price the quotes filled.

Why beside the KPI plot: a net_bps that fails its gate says little on its own; the parts (capture earned, lost to
adverse selection, paid in fees) and the inventory path say whether to widen quotes, shorten the markout or cut
the size. The figures are built apart from their PNGs so that tests can read what a figure holds.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from shadow_pipeline.domain.kpis.fills import MAKER
from shadow_pipeline.reporting.plots import _png

SPARK_DPI = 60
INLINE_MARKDOWN_CHARS = 1000  # Dagster 1.13's UI shows a Markdown value inline below this length (docs/fills.md)
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


def _finish(figure: plt.Figure, axis: plt.Axes, ylabel: str, title: str) -> plt.Figure:
    """Labels, a legend of whatever was drawn with a label, dates slanted, margins tight."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, loc="best")
    axis.set_ylabel(ylabel, fontsize=8)
    axis.tick_params(labelsize=7)
    axis.set_title(title, fontsize=9)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def pnl_parts(fills: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per fill, in quote currency, of the fills whose markout is known: the spread capture earned at the fill, the
    adverse selection lost by the markout horizon (negative when lost), the fee paid (negative), and net, their
    sum (the net_bps KPI's numerator times notional)."""
    known = fills["markout_bps"].notna().to_numpy()
    notional = (fills["price"] * fills["qty"]).to_numpy(dtype=np.float64) * known / 1e4
    capture = fills["spread_capture_bps"].to_numpy(dtype=np.float64) * notional
    markout = np.nan_to_num(fills["markout_bps"].to_numpy(dtype=np.float64)) * notional
    fees = fills["fee"].to_numpy(dtype=np.float64) * known
    return {
        "spread capture": capture,
        "adverse selection (markout)": markout - capture,
        "fees": -fees,
        "net": markout - fees,
    }


_COLOURS = ("tab:green", "tab:red", "tab:purple", "black")


def pnl_figure(fills: pd.DataFrame, title: str) -> plt.Figure:
    """Cumulative PnL over the hour, each part of :func:`pnl_parts` a line."""
    figure, axis = plt.subplots(figsize=(8, 3.2))
    if len(fills):
        when = _times(fills["ts"])
        for (label, values), colour in zip(pnl_parts(fills).items(), _COLOURS, strict=True):
            axis.step(when, np.cumsum(values), where="post", color=colour, label=label, linewidth=1.2)
    else:
        _no_fills(axis)
    axis.axhline(0.0, color="0.6", linewidth=0.8)
    return _finish(figure, axis, "cumulative PnL (quote)", title)


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
    return _finish(figure, axis, "position (base)", title)


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
    return _finish(figure, axis, "price (quote)", title)


def sparkline_png(values: np.ndarray, limits: tuple[float, ...] = ()) -> bytes:
    """A 1-bit line of ``values`` (``limits`` dashed), a few hundred bytes: small enough that its Markdown stays
    under the length the Dagster UI renders inline (:data:`INLINE_MARKDOWN_CHARS`), so it shows without a click."""
    figure, axis = plt.subplots(figsize=(3.6, 0.7), dpi=SPARK_DPI)
    axis.plot(np.arange(len(values)), values, color="black", linewidth=1)
    for limit in limits:
        axis.axhline(limit, color="black", linestyle="--", linewidth=0.6)
    axis.axis("off")
    figure.subplots_adjust(0, 0, 1, 1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=SPARK_DPI)
    plt.close(figure)
    ink = Image.open(buffer).convert("L").point(lambda v: 0 if v < 160 else 255).convert("1")
    small = io.BytesIO()
    ink.save(small, format="PNG", optimize=True)
    return small.getvalue()


def fill_plot_pngs(fills: pd.DataFrame, market: pd.DataFrame, limit: float, title: str) -> dict[PlotFile, bytes]:
    """The three pictures as PNGs, keyed by their files (:data:`FILL_PLOTS`)."""
    return {
        PNL_PLOT: _png(pnl_figure(fills, f"{title}: cumulative PnL by part")),
        INVENTORY_PLOT: _png(inventory_figure(fills, market, limit, f"{title}: inventory")),
        FILLS_PLOT: _png(fills_on_price_figure(fills, market, f"{title}: fills on the mid")),
    }
