"""hftbacktest events of a full L2 book (a depth stream) and the ticks' trades, on the engine's scaled row clock.

Why: from ticks alone hftbacktest knows only the touch, and for a level behind it the size it last showed as the
touch (docs/hftbacktest-reality.md, "Differences", 1). With the venue's book its queue model sees every level's
real size. The strategy must still wake once per tick row, as our kernel decides per row, so everything is placed
on ``hftbacktest_engine._clock``:

- rows: a trade row's trade (exchange and local), any other row a local-only trade of size 0 that wakes the
  strategy and changes no book (hftbacktest keeps no local trades unless asked);
- a depth update of ``ts_server`` t: after every row at or before t and before the next row, in the upper half of
  t's scaled nanosecond where no row lies (order arrivals sit at its middle, so an order due at the row after t
  reaches the exchange before the update, as in our kernel, whose orders see the book in force before that row);
  updates before the first row go before it;
- rows before the book's first snapshot keep the touch events of ``to_events`` (the only book known then); from
  the snapshot on, the levels behind the touch come from the depth stream and the touch itself from the rows
  (``to_events``' touch events: the prices the touch left zeroed, the touch's price and size), because the ticks'
  touch is fresher than the depth stream's (measured on the Binance USD-M recordings: a bookTicker about every
  1 ms, a depth update about every 52 ms; matched on the depth alone, 89 of 93 BTCUSDT orders the venue filled and
  the shadow did not were post-only orders the market had already crossed: docs/reconciliation.md, "Measured");
- a snapshot clears the whole book (a DEPTH_CLEAR_EVENT of no side: nothing of the touch-only book or of an
  earlier snapshot survives; a clear of one side up to a price, as hftbacktest's Binance converter writes it, clears
  nothing on the ask side in 2.4.4's ROI vector book) and sets its levels as DEPTH_SNAPSHOT_EVENTs; a delta's
  levels are DEPTH_EVENTs (qty 0 deletes).

The engine's loop skips wakes that reach no new row (a depth update between rows), so the strategy decides
exactly as often as without depth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.depth import BID, DEPTH_COLUMNS
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.domain.validation.hftbacktest_engine import _clock, _hbt, to_events

_GRID = 1e-6  # how far from a whole tick or lot a level may be (decimal text read as float)


def _on_grid(values: np.ndarray, step: float, what: str) -> np.ndarray:
    """``values`` in whole steps; a value off the grid means the depth is of another instrument (or corrupt)."""
    steps = np.round(values / step)
    off = np.abs(values / step - steps) > _GRID
    if off.any():
        raise ValueError(f"depth {what} {values[off][0]:g} is not a whole number of steps of {step:g}")
    return steps.astype(np.int64)


def depth_events(depth: pd.DataFrame, ticks: pd.DataFrame, params: StrategyParams) -> np.ndarray:
    """hftbacktest ``event_dtype`` events of ``depth`` (``domain.market.depth.DEPTH_COLUMNS``, its first update a
    snapshot) and of one symbol's ``ticks`` (sorted by ``ts_server``), for ``hftbacktest_replay(..., depth=)``.
    Prices must lie on ``params.tick_size`` and sizes on ``params.lot_step`` (else ValueError). Updates after the
    last row are left out: no decision follows them."""
    hbt = _hbt()
    missing = set(DEPTH_COLUMNS) - set(depth.columns)
    if missing:
        raise ValueError(f"depth frame lacks {', '.join(sorted(missing))}")
    if not len(depth) or not bool(depth["snapshot"].iloc[0]):
        raise ValueError("depth must start with a snapshot (the book is unknown before one)")
    ts = ticks["ts_server"].to_numpy(dtype=np.int64)
    if not len(ts):
        return np.zeros(0, dtype=hbt.event_dtype)  # no row, no decision: hftbacktest_replay runs nothing
    clock, scale = _clock(ts)
    upd_ts = depth["ts_server"].to_numpy(dtype=np.int64)
    if np.any(np.diff(upd_ts) < 0) or np.any(np.diff(depth["update"].to_numpy(dtype=np.int64)) < 0):
        raise ValueError("depth must be in update order, with ts_server never going back")
    price = _on_grid(depth["price"].to_numpy(dtype=np.float64), params.tick_size, "price")
    _on_grid(depth["qty"].to_numpy(dtype=np.float64), params.lot_step, "qty")
    keep = upd_ts <= ts[-1]
    place = np.where(upd_ts < ts[0], 0, (upd_ts - ts[0]) * scale + scale - 1)
    both = hbt.EXCH_EVENT | hbt.LOCAL_EVENT
    side = depth["side"].to_numpy()
    side_flag = np.where(side == BID, hbt.BUY_EVENT, hbt.SELL_EVENT).astype(np.uint64)
    snapshot = depth["snapshot"].to_numpy(dtype=bool)
    kind = np.where(snapshot, hbt.DEPTH_SNAPSHOT_EVENT, hbt.DEPTH_EVENT).astype(np.uint64)

    # (clock, group, ev, px, qty, within): at one clock depth (group 0) goes before a row's events (group 1), and
    # ``within`` keeps each group's own order
    parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    row_bid = ticks["bid"].to_numpy(dtype=np.float64)
    first_of_update = np.r_[True, depth["update"].to_numpy()[1:] != depth["update"].to_numpy()[:-1]]
    clears = np.flatnonzero(first_of_update & snapshot & keep)
    # a clear sorts before the levels of its update: 2 * row - 1 vs 2 * row (below)
    ev = np.full(len(clears), both | hbt.DEPTH_CLEAR_EVENT, np.uint64)
    parts.append((place[clears], 0, ev, np.zeros(len(clears)), np.zeros(len(clears)), 2 * clears - 1))
    rows = np.flatnonzero(keep)
    levels_ev = (both | kind | side_flag)[rows]
    px = price[rows] * params.tick_size
    parts.append((place[rows], 0, levels_ev, px, depth["qty"].to_numpy(dtype=np.float64)[rows], 2 * rows))

    # rows before the first snapshot: the touch-only book of to_events; from it on, trades and wakes, and the touch:
    # the ticks' touch (a bookTicker every ms or so) is fresher than the depth stream (Binance's depth@0ms updates
    # every ~50 ms on the recordings), so without it an order would be matched against prices the market had
    # already left (a post-only order the venue would reject filled a few ms later as the depth caught up)
    first_snapshot = place[0]
    touch = to_events(ticks, params)
    early = touch[touch["exch_ts"] < first_snapshot]
    parts.append((early["exch_ts"], 1, early["ev"], early["px"], early["qty"], np.arange(len(early))))
    book_flags = hbt.EXCH_EVENT | hbt.DEPTH_EVENT
    fresh = touch[(touch["exch_ts"] >= first_snapshot) & ((touch["ev"] & book_flags) == book_flags)]
    at_fresh = len(early) + len(ts) + np.arange(len(fresh))  # after the row's trade or wake, in to_events' order
    parts.append((fresh["exch_ts"], 1, fresh["ev"], fresh["px"], fresh["qty"], at_fresh))
    late = clock >= first_snapshot
    is_trade = ticks["is_trade"].to_numpy(dtype=bool)
    trade_rows = np.flatnonzero(late & is_trade)
    aggressor = ticks["last_side"].to_numpy(dtype=object)[trade_rows] == "buy"
    parts.append(
        (
            clock[trade_rows],
            1,
            (both | hbt.TRADE_EVENT | np.where(aggressor, hbt.BUY_EVENT, hbt.SELL_EVENT)).astype(np.uint64),
            ticks["last_px"].to_numpy(dtype=np.float64)[trade_rows],
            ticks["last_qty"].to_numpy(dtype=np.float64)[trade_rows],
            len(early) + trade_rows,
        )
    )
    wake_rows = np.flatnonzero(late & ~is_trade)
    parts.append(
        (
            clock[wake_rows],
            1,
            np.full(len(wake_rows), hbt.LOCAL_EVENT | hbt.TRADE_EVENT | hbt.BUY_EVENT, np.uint64),
            row_bid[wake_rows],
            np.zeros(len(wake_rows)),
            len(early) + wake_rows,
        )
    )
    at = np.concatenate([p[0] for p in parts]).astype(np.int64)
    group = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    within = np.concatenate([p[5] for p in parts])
    order = np.lexsort((within, group, at))
    events = np.zeros(len(at), dtype=hbt.event_dtype)
    events["ev"] = np.concatenate([p[2] for p in parts])[order]
    events["exch_ts"] = events["local_ts"] = at[order]
    events["px"] = np.concatenate([p[3] for p in parts])[order]
    events["qty"] = np.concatenate([p[4] for p in parts])[order]
    return events
