"""Full-depth events for hftbacktest (``domain/validation/depth_events.py``): a hand-made book (snapshot, deltas, a
second snapshot) read back from hftbacktest's own book at each tick row, one wake per row, and a book that mirrors
the touch giving the fills of the touch-only conversion.

Hand-built sequences use ``sim_helpers``: tick 0.1, lot step 0.1, rows ``T0 + ms``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("hftbacktest", reason="hftbacktest (the hbt extra) is not installed: pip install -e '.[hbt]'")

from shadow_pipeline.domain.market.depth import SNAPSHOT, depth_fields, depth_table, parse_depth_entry
from shadow_pipeline.domain.validation.depth_events import depth_events
from shadow_pipeline.domain.validation.hftbacktest_engine import _clock, hftbacktest_replay
from shadow_pipeline_tests.sim_helpers import BASE, MS, T0, make_ticks, tick

PRICES = [99.5, 99.8, 99.9, 100.0, 100.1, 100.2, 100.3, 100.5]


def _depth(*updates: tuple[float, str, list[list[Any]], list[list[Any]]]) -> pd.DataFrame:
    """Depth updates ``(ms, kind, bids, asks)`` through the stream's own entry format and parser."""
    entries = [
        parse_depth_entry(depth_fields("BTCUSDT", kind, T0 + round(ms * MS), T0, bids, asks))
        for ms, kind, bids, asks in updates
    ]
    return depth_table(entries)


def _books(events: np.ndarray, ticks: pd.DataFrame) -> list[dict[float, float]]:
    """hftbacktest's book (qty at each of ``PRICES``, bids as +qty, asks as -qty) at each wake that reaches a new
    tick row, as the engine's loop sees it."""
    import hftbacktest as hbt

    clock, _ = _clock(ticks["ts_server"].to_numpy(dtype=np.int64))
    asset = (
        hbt.BacktestAsset()
        .data(events)
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(0.1)
        .lot_size(0.1)
        .roi_lb(90.0)
        .roi_ub(110.0)
        .risk_adverse_queue_model()
    )
    backtest = hbt.ROIVectorMarketDepthBacktest([asset])
    books: list[dict[float, float]] = []
    try:
        while len(books) < len(ticks):
            code = backtest.wait_next_feed(False, int(clock[-1]) + 10)
            now = clock[-1] if code == 1 else backtest.current_timestamp
            reached = int(np.searchsorted(clock, now, side="right"))
            depth = backtest.depth(0)
            while len(books) < reached:
                books.append(
                    {
                        px: depth.bid_qty_at_tick(round(px / 0.1)) - depth.ask_qty_at_tick(round(px / 0.1))
                        for px in PRICES
                    }
                )
    finally:
        backtest.close()
    return books


def _book(**levels: float) -> dict[float, float]:
    given = {float(k.removeprefix("p").replace("_", ".")): v for k, v in levels.items()}
    return {px: given.get(px, 0.0) for px in PRICES}


def test_snapshot_deltas_and_a_second_snapshot_are_hftbacktests_book_at_each_row() -> None:
    ticks = make_ticks([tick(0, 100.0, 100.1), tick(10, 100.0, 100.1), tick(20, 99.9, 100.1), tick(30, 99.5, 100.5)])
    ticks["bid_qty"], ticks["ask_qty"] = [3.0, 3.0, 1.0, 1.0], [2.0, 2.0, 2.0, 1.5]  # the touch as the depth shows it
    depth = _depth(
        (-5, "snapshot", [["100.0", "3"], ["99.9", "5"], ["99.8", "7"]], [["100.1", "2"], ["100.2", "4"]]),
        (10, "delta", [["99.9", "1"]], [["100.2", "0"], ["100.3", "6"]]),  # after row 1 (same ms), before row 2
        (15, "delta", [["100.0", "0"]], []),
        (25, "snapshot", [["99.5", "1"]], [["100.5", "1.5"]]),  # replaces everything
        (40, "delta", [["99.5", "9"]], []),  # after the last row: left out
    )
    books = _books(depth_events(depth, ticks, BASE), ticks)
    first = _book(p100_0=3, p99_9=5, p99_8=7, p100_1=-2, p100_2=-4)
    assert books == [
        first,
        first,
        _book(p99_9=1, p99_8=7, p100_1=-2, p100_3=-6),
        _book(p99_5=1, p100_5=-1.5),
    ]


def test_the_ticks_touch_overrides_a_depth_book_that_lags_it() -> None:
    """The depth stream updates every ~50 ms, the ticks' touch every ms: between depth updates the touch is the
    ticks' (prices it left zeroed), the levels behind it the depth's, so an order meets the market in force."""
    ticks = make_ticks([tick(0, 100.0, 100.1), tick(20, 99.9, 100.0)])  # the ask came down to 100.0, bid left it
    ticks["bid_qty"], ticks["ask_qty"] = [3.0, 5.0], [2.0, 0.5]
    depth = _depth((-5, "snapshot", [["100.0", "3"], ["99.9", "5"], ["99.8", "7"]], [["100.1", "2"], ["100.2", "4"]]))
    books = _books(depth_events(depth, ticks, BASE), ticks)
    assert books[1] == _book(p99_9=5, p99_8=7, p100_0=-0.5, p100_1=-2, p100_2=-4)


def test_rows_before_the_first_snapshot_have_the_touch_book() -> None:
    ticks = make_ticks([tick(0, 100.0, 100.1), tick(10, 99.9, 100.1), tick(20, 99.9, 100.1)])
    depth = _depth((15, "snapshot", [["99.9", "4"], ["99.8", "2"]], [["100.2", "3"]]))
    books = _books(depth_events(depth, ticks, BASE), ticks)
    # the touch rows show size 1.0 (make_ticks); at 10 ms the bid moved down and 100.0 was zeroed
    assert books[0] == _book(p100_0=1, p100_1=-1)
    assert books[1] == _book(p99_9=1, p100_1=-1)
    assert books[2] == _book(p99_9=4, p99_8=2, p100_2=-3)  # the snapshot cleared the touch's 100.1


def test_the_strategy_wakes_once_per_row_with_depth_updates_between_rows() -> None:
    """Depth updates between rows wake hftbacktest but not the strategy: positions are recorded per row and the
    same rows decide as without depth (here, one fill at the same row)."""
    rows = [tick(0, 100.0, 100.1), tick(20, 100.0, 100.1), tick(30, 100.0, 100.1, "sell", 99.9, 0.5)]
    ticks = make_ticks(rows)
    ticks["bid_qty"] = ticks["ask_qty"] = 3.0
    updates: list[tuple[float, str, list[list[Any]], list[list[Any]]]] = [
        (-1, SNAPSHOT, [["100.0", "3"], ["99.9", "8"]], [["100.1", "3"], ["100.2", "8"]])
    ]
    updates += [(ms + 0.5, "delta", [["99.9", str(8 + ms % 3)]], []) for ms in range(0, 30, 2)]
    simulation = hftbacktest_replay(ticks, BASE, depth=depth_events(_depth(*updates), ticks, BASE))
    assert len(simulation.inventory) == len(ticks)
    assert simulation.fills[["tick", "side", "price"]].values.tolist() == [[2, 1, 100.0]]


def _mirror(ticks: pd.DataFrame) -> pd.DataFrame:
    """A depth stream that says exactly what the ticks' touch says, each change 1 ns before its row."""
    updates: list[tuple[float, str, list[list[Any]], list[list[Any]]]] = []
    previous: tuple[float, ...] | None = None
    touches = ticks[["bid", "bid_qty", "ask", "ask_qty"]].to_numpy(dtype=np.float64).tolist()
    for ts, (bid, bid_qty, ask, ask_qty) in zip(ticks["ts_server"].tolist(), touches, strict=True):
        ms = (int(ts) - T0 - 1) / MS
        bids, asks = [[f"{bid:.1f}", str(bid_qty)]], [[f"{ask:.1f}", str(ask_qty)]]
        if previous is None:
            updates.append((ms, SNAPSHOT, bids, asks))
        elif (bid, bid_qty, ask, ask_qty) != previous:
            bids += [[f"{previous[0]:.1f}", "0"]] if bid < previous[0] else []
            asks += [[f"{previous[2]:.1f}", "0"]] if ask > previous[2] else []
            updates.append((ms, "delta", bids, asks))
        previous = (bid, bid_qty, ask, ask_qty)
    return _depth(*updates)


@pytest.mark.parametrize(
    "rows",
    [
        [  # trades at the price take the queue ahead first (test_hftbacktest_engine)
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1),
            tick(30, 100.0, 100.1, "sell", 100.0, 1.0),
            tick(40, 100.0, 100.1, "sell", 100.0, 1.0),
            tick(50, 100.0, 100.1, "sell", 100.0, 2.0),
        ],
        [  # the touch moves away and back, the inventory limit and the hedge
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1, "sell", 99.9, 1.0),
            tick(30, 99.9, 100.1),
            tick(40, 100.0, 100.2, "sell", 99.9, 1.0),
            tick(45, 100.0, 100.1, "sell", 99.9, 1.0),
            tick(60, 100.0, 100.1),
        ],
    ],
    ids=["queue", "moves-and-hedge"],
)
def test_a_book_that_mirrors_the_touch_fills_as_the_touch_only_conversion(rows: list[dict[str, Any]]) -> None:
    ticks = make_ticks(rows)
    ticks["bid_qty"] = ticks["ask_qty"] = 3.0
    touch_only = hftbacktest_replay(ticks, BASE).fills
    full = hftbacktest_replay(ticks, BASE, depth=depth_events(_mirror(ticks), ticks, BASE)).fills
    assert len(touch_only) > 0
    pd.testing.assert_frame_equal(full, touch_only)


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        (_depth((0, "delta", [["100.0", "1"]], [])), "must start with a snapshot"),
        (_depth((0, SNAPSHOT, [["100.05", "1"]], [["100.1", "1"]])), "100.05 is not a whole number of steps of 0.1"),
        (_depth((0, SNAPSHOT, [["100.0", "0.05"]], [["100.1", "1"]])), "0.05 is not a whole number of steps"),
        (pd.DataFrame({"price": [1.0]}), "depth frame lacks"),
    ],
    ids=["no-snapshot", "off-tick", "off-lot", "not-a-depth-frame"],
)
def test_a_depth_frame_that_cannot_be_this_instruments_book_is_refused(depth: pd.DataFrame, message: str) -> None:
    ticks = make_ticks([tick(0, 100.0, 100.1)])
    with pytest.raises(ValueError, match=message):
        depth_events(depth, ticks, BASE)
