"""Binance USD-M futures and spot: ``bookTicker`` quotes and ``trade`` prints as the file reader makes them, and
the full book from the diff stream and a REST snapshot (``readers.binance_depth.DepthBook``) with ``--depth``.

The venue's rules (docs/feed.md, "Binance"): diffs are buffered until the REST snapshot; those with ``u`` below
its ``lastUpdateId`` are dropped, the first kept one straddles it, and then each diff must follow the previous one
(USD-M: ``pu`` = previous ``u``; spot: ``U`` = previous ``u`` + 1), else the book is resynced from a new snapshot
and no depth entry is published meanwhile. The touch ticks come from ``bookTicker``, which the venue computes, so
a depth resync does not hold them back; a ``bookTicker`` whose ``u`` goes back is stale and dropped.
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from shadow_pipeline.domain.market.depth import MalformedDepth
from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE
from shadow_pipeline.feed.live.protocol import MalformedFrame, Update, VenueDefaults, subscribed
from shadow_pipeline.feed.readers.binance import quote_row, trade_row
from shadow_pipeline.feed.readers.binance_depth import BookGap, DepthBook
from shadow_pipeline.feed.readers.files import BAD_LINE, describe
from shadow_pipeline.feed.readers.venues import BINANCE_DEPTH_PATHS, BINANCE_SPOT, BINANCE_USDM

# USD-M's touch changes many times a second on any listed perp; spot's smaller pairs can rest longer.
DEFAULTS = {
    BINANCE_USDM.code: VenueDefaults("wss://fstream.binance.com", "https://fapi.binance.com", 30.0),
    BINANCE_SPOT.code: VenueDefaults("wss://stream.binance.com:9443", "https://api.binance.com", 60.0),
}
_DEPTH_STREAM = {BINANCE_USDM.code: "depth@0ms", BINANCE_SPOT.code: "depth@100ms"}
SNAPSHOT_LIMIT = 1000
MAX_BUFFERED_DIFFS = 50_000  # diffs waiting for a snapshot; beyond it the oldest go and the straddle check decides
OFFSET_WINDOW = 501  # trades in the running median of the clock offset


class ClockOffset:
    """The running median of (trade ``E`` - receive time) over the last trades: spot ``bookTicker`` has no
    exchange time, so it is placed at its receive time plus this offset (0 before the first trade), as the file
    reader places it with the whole file's median."""

    def __init__(self) -> None:
        self._recent: deque[int] = deque(maxlen=OFFSET_WINDOW)
        self._sorted: list[int] = []

    def add(self, offset: int) -> None:
        if len(self._recent) == OFFSET_WINDOW:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(offset)
        bisect.insort(self._sorted, offset)

    def median(self) -> int:
        return self._sorted[len(self._sorted) // 2] if self._sorted else 0


class BinanceProtocol:
    def __init__(self, venue: str, symbols: tuple[str, ...], depth: bool = False) -> None:
        self.venue = venue
        self.defaults = DEFAULTS[venue]
        self.client_ping: str | None = None  # the server pings; websockets answers with a pong itself
        self.symbols = symbols
        self.depth = depth
        self.spot = venue == BINANCE_SPOT.code
        code = None if venue == DEFAULT_VENUE else venue  # frames.venue_code: the default venue writes none
        self.depth_books = {s: DepthBook(s, code, spot=self.spot) for s in symbols} if depth else {}
        self.ticker_u: dict[str, int] = {}
        self.offset = ClockOffset()

    def url(self, base: str) -> str:
        names = ["bookTicker", "trade", *([_DEPTH_STREAM[self.venue]] if self.depth else [])]
        streams = "/".join(f"{s.lower()}@{name}" for s in self.symbols for name in names)
        return f"{base.rstrip('/')}/stream?streams={streams}"

    def books(self) -> list[str]:
        return [f"{s}@bookTicker" for s in self.symbols] + [f"{s}@depth" for s in self.depth_books]

    def on_connect(self) -> Update:
        """Diffs are buffered from now; each depth book needs a new snapshot (the diffs between connections are
        lost)."""
        for book in self.depth_books.values():
            book.reset()
        return Update("connect", snapshots=list(self.depth_books))

    def snapshot_url(self, base: str, symbol: str) -> str:
        return f"{base.rstrip('/')}{BINANCE_DEPTH_PATHS[self.venue]}?symbol={symbol}&limit={SNAPSHOT_LIMIT}"

    def on_snapshot(self, symbol: str, body: str, ts_local: int) -> Update:
        book = self.depth_books[symbol]
        try:
            snapshot = json.loads(body)
            if not isinstance(snapshot, dict) or "lastUpdateId" not in snapshot:
                raise ValueError("a REST depth snapshot without lastUpdateId")
            return self._depth(book, lambda: book.take_snapshot(snapshot, ts_local), Update("snapshot"))
        except MalformedFrame:
            raise
        except BAD_LINE as exc:
            raise MalformedFrame(describe(exc), self._resync(book, "malformed", Update("snapshot"))) from None

    def on_frame(self, text: str, ts_local: int) -> Update:
        try:
            message = json.loads(text)
            stream, data = message["stream"], message["data"]
            if not isinstance(stream, str) or not isinstance(data, dict):
                raise ValueError("not a combined-stream frame")
            lower, _, name = stream.partition("@")
            if name in ("bookTicker", "trade") or name.startswith("depth"):
                subscribed(data.get("s"), lower.upper(), self.symbols)
            if name == "bookTicker":
                return self._ticker(data, ts_local)
            if name == "trade":
                row = trade_row(data)
                if self.spot:
                    self.offset.add(row["ts_server"] - ts_local)
                return Update("trade", rows=[row])
            if name.startswith("depth") and data.get("s") in self.depth_books:
                book = self.depth_books[data["s"]]
                return self._depth(book, lambda: self._diff(book, data, ts_local), Update("depth"))
            return Update("other")
        except MalformedFrame:
            raise
        except BAD_LINE as exc:
            raise MalformedFrame(describe(exc)) from None

    def _ticker(self, data: dict[str, Any], ts_local: int) -> Update:
        row = quote_row(data)
        symbol, update_id = row["symbol"], int(data["u"])
        if update_id < self.ticker_u.get(symbol, 0):
            return Update("quote", dropped=["stale_book_ticker"])
        self.ticker_u[symbol] = update_id
        if row["ts_server"] is None:
            row["ts_server"] = ts_local + self.offset.median()
        return Update("quote", rows=[row], changed=[f"{symbol}@bookTicker"])

    def _diff(self, book: DepthBook, data: dict[str, Any], ts_local: int) -> list[dict[str, str]]:
        if len(book.waiting) >= MAX_BUFFERED_DIFFS:
            del book.waiting[0]
        return book.take_diff(data, ts_local)

    def _depth(self, book: DepthBook, take: Callable[[], list[dict[str, str]]], update: Update) -> Update:
        """Run ``take`` on ``book``; a diff that breaks the rule (or a bad entry) starts a resync instead."""
        try:
            update.depth = take()
        except BookGap:
            return self._resync(book, "gap", update)
        except MalformedDepth as exc:
            raise MalformedFrame(exc.reason, self._resync(book, "malformed", update)) from None
        if update.depth:
            update.changed.append(f"{book.symbol}@depth")
        return update

    def _resync(self, book: DepthBook, cause: str, update: Update) -> Update:
        book.reset()
        update.resyncs.append(cause)
        update.snapshots.append(book.symbol)
        return update
