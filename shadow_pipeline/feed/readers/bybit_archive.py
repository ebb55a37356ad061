"""Bybit's public historical archives: the daily order book (``<date>_<SYMBOL>_ob500.data.zip``, JSON lines of
v5 ``orderbook.500`` frames) and the daily trades (``<SYMBOL><date>.csv.gz``), merged by exchange time.

Neither has a receive stamp: their ticks carry ``ts_local`` = ``ts_server`` (docs/tick-schema.md), so that the
feed leg of latency reads "not measured" downstream instead of a number nobody observed. Both are published for
derivatives (``orderbook.500``, the ``tickDirection`` column), which is how a file says its venue (bybit-linear).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shadow_pipeline.domain.market.instruments import Venue
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.feed.readers.bybit import Books, saw_book_depth
from shadow_pipeline.feed.readers.files import BAD_LINE, Lines, RecordingError, Shape, describe, first_shape
from shadow_pipeline.feed.readers.frames import finish, to_frame, venue_code
from shadow_pipeline.feed.readers.venues import BYBIT_LINEAR, Sightings

log = logging.getLogger(__name__)
_TRADE_COLUMNS = ("timestamp", "symbol", "side", "size", "price")
_SECONDS = re.compile(r"(\d{9,10})(?:\.(\d{1,9}))?")  # epoch seconds 2001 to 2286, up to ns
_SIDES = {"Buy": "buy", "Sell": "sell"}  # the taker's side
_UNDECIDED = "no orderbook.500 frame or tickDirection column says linear or spot"


def _book_rows(path: Path, sightings: Sightings) -> list[dict[str, Any]]:
    """One quote row per touch change of the archive's book (``Books.apply``: the same rules as live)."""
    books = Books()
    rows: list[dict[str, Any]] = []
    with Lines(path) as lines:
        try:
            for line in lines:
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise lines.error("not a JSON object")
                topic = str(message.get("topic", ""))
                if not topic.startswith("orderbook."):
                    raise lines.error(f"not an orderbook frame (topic {message.get('topic')!r})")
                saw_book_depth(sightings, topic, lines.number)
                row = books.apply(message)
                if row is not None:
                    rows.append(row)
        except RecordingError:
            raise
        except BAD_LINE as exc:
            raise lines.error(describe(exc)) from None
    log.info("%s: %d touch changes; %d deltas before any snapshot skipped", path, len(rows), books.orphans)
    return rows


def _ns(text: str) -> int:
    match = _SECONDS.fullmatch(text)
    if match is None:
        raise ValueError(f"timestamp {text[:40]!r} is not epoch seconds")
    seconds, fraction = match.groups()
    return int(seconds) * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def _trade_rows(path: Path, sightings: Sightings) -> list[dict[str, Any]]:
    """One trade row per CSV line; ``size`` is the base quantity on linear and spot markets."""
    rows: list[dict[str, Any]] = []
    with Lines(path) as lines:
        try:
            header = next(lines, b"").decode().rstrip("\r\n").split(",")
            missing = [name for name in _TRADE_COLUMNS if name not in header]
            if missing:
                raise lines.error(f"not a Bybit trade CSV header (missing {', '.join(missing)})")
            if "tickDirection" in header:  # as a live trade's L: derivatives only
                sightings.saw(BYBIT_LINEAR, 1, "a trade CSV with a tickDirection column (derivatives only)")
            at = [header.index(name) for name in _TRADE_COLUMNS]
            for line in lines:
                fields = line.decode().rstrip("\r\n").split(",")
                if len(fields) != len(header):
                    raise lines.error(f"{len(fields)} columns, the header has {len(header)}")
                timestamp, symbol, side, size, price = (fields[i] for i in at)
                if side not in _SIDES or float(size) <= 0 or float(price) <= 0:
                    raise lines.error(f"not a trade (side {side!r}, size {size!r}, price {price!r})")
                rows.append(
                    {
                        "symbol": symbol,
                        "ts_server": _ns(timestamp),
                        "last_px": price,
                        "last_qty": size,
                        "last_side": _SIDES[side],
                    }
                )
        except RecordingError:
            raise
        except BAD_LINE as exc:
            raise lines.error(describe(exc)) from None
    return rows


def read_bybit_archives(paths: Sequence[Path], venue: Venue | None = None) -> pd.DataFrame:
    """Order-book archives and trade CSVs, any number of each, as one frame in exchange-time order.

    A book keeps its file's order (a ``cts`` a millisecond behind the previous one must not replay an older
    touch after a newer one): it is placed by its running maximum time. On equal times a trade goes before the
    quote, since the book frame of that millisecond already shows what the trade took, and the trade tick
    should carry the touch it hit. Each file's venue is what it shows (see the module), else ``venue``.
    """
    parts: list[tuple[pd.DataFrame, pd.Series]] = []
    for path in map(Path, paths):
        shape = first_shape(path)
        sightings = Sightings(path, BYBIT_LINEAR.exchange)
        if shape is Shape.JSON_LINES:
            part = to_frame(_book_rows(path, sightings), None, str(path))
            key = part["ts_server"].cummax()
        elif shape is Shape.BYBIT_TRADES:
            part = to_frame(_trade_rows(path, sightings), None, str(path)).sort_values("ts_server", kind="stable")
            key = part["ts_server"]
        else:
            raise RecordingError(f"{path}: line 1: {shape.value}, not a Bybit order-book archive or trade CSV")
        part[VENUE_FIELD] = venue_code(sightings.venue(venue, _UNDECIDED))
        if shape is Shape.BYBIT_TRADES:
            parts.insert(0, (part, key))
        else:
            parts.append((part, key))
    frame = pd.concat([part for part, _ in parts], ignore_index=True)
    order = pd.concat([key for _, key in parts], ignore_index=True).argsort(kind="stable")
    return finish(frame.iloc[order].reset_index(drop=True), ", ".join(map(str, paths)))
