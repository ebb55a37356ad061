"""Top-of-book statistics that a queue-aware fill depends on, measured on a normalized tick frame.

Input: one symbol's ticks in exchange-time order with the columns of ``normalized_ticks`` (``ts_server`` ns,
``bid``, ``ask``, ``bid_qty``, ``ask_qty``, ``last_px``, ``last_qty``, ``last_side`` "buy"/"sell"/"",
``is_trade``); prices are converted to ticks and sizes to lots (the instrument's lot step). Trade ticks carry
the touch of the last quote, so the touch statistics read the quote ticks only.

Per side (``bid_*``, ``ask_*``; the bid is hit by sellers, the ask lifted by buyers):

- a *level* is a run of quote ticks over which the side's price stays the same; its *lifetime* runs from its
  first quote tick to the first quote tick at another price (the first and last level of the frame are cut by
  its edges and left out);
- a level *ends* one of three ways: ``traded`` (the price moved the aggressor's way, and an aggressor trade
  printed at the level's price within ``window_ms`` before the move, or up to 1 ms after, because trades and
  book updates stamped in the same millisecond arrive in either order), ``cancelled`` (the aggressor's way
  without such a trade: cancelled away) or ``improved`` (a better price arrived);
- *size changes* at a standing level: per millisecond the last displayed size, and between consecutive
  milliseconds the change plus the trades printed at the price (which explain a decrease), an add when
  positive, a cancel when negative; rates are per second of standing time, sizes relative to the size before;
- the *trade/touch ratio* is an aggressor trade's size over the size displayed at its price by the last quote.

And for both sides: quote and trade rates, buy share, spread in ticks, touch moves (any change of the bid
price) per second and their size in ticks, and the standard deviation of the mid's change over 5 s in ticks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_NS = 1_000_000_000
_MS = 1_000_000
SIDES = ("bid", "ask")


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    if len(values) == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.quantile(values, qs)]


def _side(
    ts: np.ndarray,
    px: np.ndarray,
    qty: np.ndarray,
    trade_ts: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    trade_shown: np.ndarray,
    away: int,
    window_ns: int,
) -> dict[str, float]:
    """Statistics of one side. ``ts``/``px``/``qty``: its quote ticks; ``trade_*``: the trades that hit it, with
    the size the last quote showed at their price (NaN: another price); ``away`` is the sign of a move in the
    aggressor's direction (-1 for the bid)."""
    out: dict[str, float] = {}
    for q, value in zip((0.1, 0.25, 0.5, 0.75, 0.9), _quantiles(qty, (0.1, 0.25, 0.5, 0.75, 0.9)), strict=True):
        out[f"touch_lots_q{round(q * 100):02d}"] = value
    new = np.flatnonzero(np.diff(px) != 0) + 1  # first quote of each level after the first
    starts = np.concatenate(([0], new))
    level = np.cumsum(np.concatenate(([False], np.diff(px) != 0)))
    # Complete levels: those with a known start and end (not the frame's first or last).
    if len(new) >= 2:
        life_ms = (ts[new[1:]] - ts[new[:-1]]) / _MS
        out["lifetime_ms_median"], out["lifetime_ms_p90"] = _quantiles(life_ms, (0.5, 0.9))
        out["new_level_lots_median"] = float(np.median(qty[new]))
    else:
        out["lifetime_ms_median"] = out["lifetime_ms_p90"] = out["new_level_lots_median"] = float("nan")

    # How levels end: the move at each level change, and whether a trade at the old price came just before it.
    ends_ts = ts[new]
    old_px = px[new - 1]
    step = (px[new] - old_px) * away  # > 0: the aggressor's way
    traded = np.zeros(len(new), dtype=bool)
    if len(trade_ts) and len(new):
        trades = pd.DataFrame({"ts": trade_ts, "px": trade_px}).sort_values("ts", kind="stable")
        ends = pd.DataFrame({"ts": ends_ts + _MS, "px": old_px, "end": ends_ts, "i": np.arange(len(new))})
        ends = ends.sort_values("ts", kind="stable")
        trades["trade_ts"] = trades["ts"]
        hit = pd.merge_asof(ends, trades, on="ts", by="px", direction="backward")
        found = hit["trade_ts"].to_numpy(dtype=np.float64) >= hit["end"].to_numpy(dtype=np.float64) - window_ns
        traded[hit["i"].to_numpy()] = found
    way = step > 0
    n_way = max(int(way.sum()), 1)
    span_s = max((ts[-1] - ts[0]) / _NS, 1e-9) if len(ts) else 1e-9
    out["level_ends_per_s"] = len(new) / span_s
    out["traded_share"] = float((way & traded).sum() / max(len(new), 1))
    out["cancelled_share"] = float((way & ~traded).sum() / max(len(new), 1))
    out["improved_share"] = float((~way).sum() / max(len(new), 1))
    out["depleted_by_trades"] = float((way & traded).sum() / n_way)  # of the ends in the aggressor's way
    # Levels old enough for a quote to have joined them (a requote every 250 ms at most, in the profiles).
    age = ts[new] - ts[starts[:-1]] if len(new) else np.zeros(0, np.int64)
    old = age >= 250 * _MS
    out["old_traded_per_s"] = float((way & traded & old).sum() / span_s)
    out["old_cancelled_per_s"] = float((way & ~traded & old).sum() / span_s)
    out["old_improved_per_s"] = float((~way & old).sum() / span_s)

    # Trades against the displayed size at their price.
    at_touch = ~np.isnan(trade_shown) & (trade_shown > 0)
    ratio = trade_qty[at_touch] / trade_shown[at_touch]
    out["trade_touch_ratio_median"], out["trade_touch_ratio_p90"] = _quantiles(ratio, (0.5, 0.9))

    # Size changes at a standing level, per millisecond (same-millisecond trades and updates net out).
    ms = ts // _MS
    last_in_ms = np.concatenate((ms[1:] != ms[:-1], [True])) | np.concatenate((level[1:] != level[:-1], [True]))
    m_ms, m_level, m_qty = ms[last_in_ms], level[last_in_ms], qty[last_in_ms]
    m_px = px[last_in_ms]
    same = m_level[1:] == m_level[:-1]
    # Lots traded at the level's price in each (previous ms, this ms]: cumulative sums over the trades in
    # (price, ms) order, searched with one combined integer key.
    tr_ms = trade_ts // _MS
    width = np.int64(max(int(tr_ms.max(initial=0)), int(m_ms.max(initial=0))) + 2)
    key = trade_px.astype(np.int64) * width + tr_ms
    order = np.argsort(key, kind="stable")
    cum = np.concatenate(([0.0], np.cumsum(trade_qty[order])))
    key = key[order]

    def traded_upto(price: np.ndarray, until_ms: np.ndarray) -> np.ndarray:
        return cum[np.searchsorted(key, price * width + until_ms, side="right")]

    between = traded_upto(m_px[1:], m_ms[1:]) - traded_upto(m_px[1:], m_ms[:-1])
    change = (m_qty[1:] - m_qty[:-1] + between)[same]
    before = m_qty[:-1][same]
    standing_s = max(float(np.sum(np.diff(m_ms)[same])) / 1000, 1e-9)
    adds, cancels = change > 0, change < 0
    out["adds_per_s"] = float(adds.sum() / standing_s)
    out["cancels_per_s"] = float(cancels.sum() / standing_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(change) / before
    ok = before > 0
    out["add_rel_median"] = float(np.median(rel[adds & ok])) if (adds & ok).any() else float("nan")
    out["cancel_rel_median"] = float(np.median(rel[cancels & ok])) if (cancels & ok).any() else float("nan")
    return out


def measure(ticks: pd.DataFrame, tick_size: float, lot_size: float, window_ms: float = 5.0) -> dict[str, float]:
    """The statistics of one symbol's ticks (module docstring), keyed ``<side>_<name>`` and ``<name>``."""
    ts_all = ticks["ts_server"].to_numpy(dtype=np.int64)
    is_trade = ticks["is_trade"].to_numpy(dtype=bool)
    quote = ~is_trade
    span_s = max((ts_all[-1] - ts_all[0]) / _NS, 1e-9)
    bid = np.rint(ticks["bid"].to_numpy(dtype=np.float64) / tick_size).astype(np.int64)
    ask = np.rint(ticks["ask"].to_numpy(dtype=np.float64) / tick_size).astype(np.int64)
    sizes = {s: np.rint(ticks[f"{s}_qty"].to_numpy(dtype=np.float64) / lot_size) for s in SIDES}
    last_px = np.rint(np.nan_to_num(ticks["last_px"].to_numpy(dtype=np.float64)) / tick_size).astype(np.int64)
    last_qty = np.rint(np.nan_to_num(ticks["last_qty"].to_numpy(dtype=np.float64)) / lot_size)
    side = ticks["last_side"].to_numpy(dtype=object)
    out: dict[str, float] = {}
    for name, px, aggressor, away in (("bid", bid, "sell", -1), ("ask", ask, "buy", 1)):
        hits = is_trade & (side == aggressor)
        # a trade tick carries the touch of the last quote: the shown size counts when it printed at that price
        shown = np.where(last_px[hits] == px[hits], sizes[name][hits], np.nan)
        stats = _side(
            ts_all[quote],
            px[quote],
            sizes[name][quote],
            ts_all[hits],
            last_px[hits],
            last_qty[hits],
            shown,
            away,
            round(window_ms * _MS),
        )
        out.update({f"{name}_{key}": value for key, value in stats.items()})
    trades = is_trade.sum()
    out["quotes_per_s"] = float(quote.sum() / span_s)
    out["trades_per_s"] = float(trades / span_s)
    out["buy_share"] = float((side[is_trade] == "buy").sum() / max(int(trades), 1))
    out["trade_lots_median"] = float(np.median(last_qty[is_trade])) if trades else float("nan")
    spread = (ask - bid)[quote]
    out["spread_one_tick_share"] = float((spread == 1).mean()) if len(spread) else float("nan")
    out["spread_ticks_mean"] = float(spread.mean()) if len(spread) else float("nan")
    moves = np.diff(bid[quote])
    moves = moves[moves != 0]
    out["touch_moves_per_s"] = float(len(moves) / span_s)
    out["move_ticks_median"], out["move_ticks_p90"] = _quantiles(np.abs(moves), (0.5, 0.9))
    mid = (bid + ask) / 2.0
    grid = np.arange(ts_all[0], ts_all[-1], 5 * _NS, dtype=np.int64)
    at = mid[np.searchsorted(ts_all, grid, side="right") - 1]
    out["mid_5s_std_ticks"] = float(np.std(np.diff(at))) if len(at) > 2 else float("nan")
    return out


def both_sides(stats: dict[str, float]) -> dict[str, float]:
    """The per-side statistics averaged over the bid and the ask, beside the two-sided ones: a compact table."""
    out: dict[str, float] = {}
    for key, value in stats.items():
        if key.startswith("bid_"):
            out[key[4:]] = (value + stats["ask_" + key[4:]]) / 2
        elif not key.startswith("ask_"):
            out[key] = value
    return out
