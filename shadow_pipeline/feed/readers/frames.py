"""Rows read from any venue made into one source frame: the tick fields except ``seq``, quotes carried onto trades."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE, Venue
from shadow_pipeline.domain.market.ticks import SOURCE_COLUMNS, VENUE_FIELD
from shadow_pipeline.feed.readers.files import RecordingError

TOUCH = ["bid", "ask", "bid_qty", "ask_qty"]
# The trade fields of a quote tick (docs/tick-schema.md, "Quote ticks and trade ticks").
NO_TRADE = {"last_px": "", "last_qty": "0", "last_side": ""}
MS = 1_000_000
_MAX_MS = np.iinfo(np.int64).max // MS


def exchange_ns(ms: Any) -> int:
    """An exchange time in ms as ns; one out of int64's range would fail later, in a frame, nameless."""
    value = int(ms)  # a field of any JSON type: int() says what it cannot take
    if not 0 < value <= _MAX_MS:
        raise ValueError(f"exchange time {value} ms is out of range")
    return value * MS


def as_text(value: object, name: str) -> str:
    """A field that must be text (a symbol: a number or list there would fail later, grouped by symbol)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} {str(value)[:40]!r} is not text")
    return value


def to_frame(rows: list[dict[str, Any]], ts_local: np.ndarray | None, desc: str) -> pd.DataFrame:
    """``ts_local`` None: the source has no receive stamp, and ``ts_local`` = ``ts_server`` says so (see
    docs/tick-schema.md: the feed leg of latency is then not measured rather than a made-up number)."""
    if not rows:
        raise RecordingError(f"no bookTicker/trade or orderbook/publicTrade messages in {desc}")
    frame = pd.DataFrame.from_records(rows, columns=list(SOURCE_COLUMNS))
    frame["ts_local"] = frame["ts_server"] if ts_local is None else ts_local
    return frame.astype({"ts_server": "Int64", "ts_local": "Int64"})


def venue_code(venue: Venue) -> str | None:
    """A row's ``venue`` cell: None on the default venue, where an entry leaves the field out (docs/tick-schema.md),
    so that a USD-M recording is written as it always was."""
    return None if venue.code == DEFAULT_VENUE else venue.code


def finish(frame: pd.DataFrame, desc: str) -> pd.DataFrame:
    """Carry the touch forward onto trade ticks, per instrument (symbol and ``venue``: two venues' BTCUSDT are two
    books); trades before the first quote take the first quote's touch. A ``venue`` column of the default venue
    alone is dropped: the replayer writes the field only when the frame has the column."""
    by = ["symbol", VENUE_FIELD] if VENUE_FIELD in frame.columns else ["symbol"]
    frame[TOUCH] = frame.groupby(by, dropna=False)[TOUCH].transform(lambda col: col.ffill().bfill())
    if frame[TOUCH].isna().any().any():
        raise RecordingError(f"{desc}: a symbol has trades but no quote at all")
    trade = frame[["last_px", "last_qty", "last_side"]].astype(object)  # all NaN (float) in a quotes-only frame
    frame[trade.columns] = trade.fillna(NO_TRADE)
    if VENUE_FIELD in frame.columns and frame[VENUE_FIELD].isna().all():
        frame = frame.drop(columns=VENUE_FIELD)
    return frame.astype({"ts_server": "int64", "ts_local": "int64"}).reset_index(drop=True)
