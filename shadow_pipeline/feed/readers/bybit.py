"""Bybit v5 public WebSocket recordings (``<local timestamp> <frame>`` lines): book rebuilt, trades as they are."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shadow_pipeline.domain.market.instruments import Venue
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.feed.readers.frames import TOUCH, as_text, exchange_ns, finish, to_frame, venue_code
from shadow_pipeline.feed.readers.stamped import read_stamped
from shadow_pipeline.feed.readers.venues import BYBIT_LINEAR, BYBIT_SPOT, Sightings

_Side = dict[float, tuple[str, str]]  # price -> (price, size) as the exchange wrote them
_Touch = tuple[str, str, str, str]
# Ticker fields of derivatives only (a spot ticker has none of them, and has usdIndexPrice instead).
_DERIVATIVE_TICKER = ("markPrice", "openInterest", "fundingRate")
_UNDECIDED = "no publicTrade, tickers or orderbook.500 frame says linear or spot"


def saw_book_depth(sightings: Sightings, topic: str, line: int) -> None:
    """``orderbook.500`` exists for derivatives only (spot books are 1, 50, 200 and 1000 deep); other depths are
    served on both markets and say nothing."""
    if topic.startswith("orderbook.500."):
        sightings.saw(BYBIT_LINEAR, line, "an orderbook.500 frame (derivatives only)")


def restarted(data: dict[str, Any]) -> bool:
    """``u`` = 1: the service restarted and the message overwrites the book (Bybit v5 docs, "Orderbook"); decided
    here once, so the live feed's sequence check and the book agree on a ``"1"`` as much as on a 1."""
    return str(data.get("u")) == "1"


class Books:
    """The ``orderbook.N`` books by symbol, and the touch each last showed, so that a tick is emitted only when
    the touch (best prices or their sizes) changes. Shared by the live recordings and the daily archives, which
    carry the same frames.

    Levels are keyed by the price's value, so ``"65114.2"`` and ``"65114.20"`` are one level.
    """

    def __init__(self) -> None:
        self._books: dict[str, tuple[_Side, _Side]] = {}
        self._touch: dict[str, _Touch] = {}
        self.orphans = 0  # deltas before any snapshot of their symbol: they cannot be placed

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s book (known to be inconsistent): its deltas are orphans until the next snapshot.
        The touch last shown is kept, so a snapshot that shows the same touch again makes no tick."""
        self._books.pop(symbol, None)

    def has(self, symbol: str) -> bool:
        """Whether ``symbol``'s book is known (a snapshot since the start or the last ``forget``)."""
        return symbol in self._books

    def apply(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The quote row ``message`` makes, if it changes the touch. A snapshot, or ``u`` = 1 (the service
        restarted), resets the book; a delta applies; a size of 0 deletes the level. Exchange time is the
        matching-engine time ``cts`` (it lines up with trades' ``T``), else the system time ``ts``."""
        data = message["data"]
        symbol = as_text(data["s"], "symbol")
        if message["type"] == "snapshot" or restarted(data):
            book = self._books[symbol] = ({}, {})
        elif symbol in self._books:
            book = self._books[symbol]
        else:
            self.orphans += 1
            return None
        for side, levels in zip(book, (data["b"], data["a"]), strict=True):
            for price, size in levels:
                if float(size) == 0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = (price, size)
        bids, asks = book
        if not bids or not asks:
            return None
        (bid, bid_qty), (ask, ask_qty) = bids[max(bids)], asks[min(asks)]
        touch = (bid, ask, bid_qty, ask_qty)
        if touch == self._touch.get(symbol):
            return None
        self._touch[symbol] = touch
        return {
            "symbol": symbol,
            "ts_server": exchange_ns(message.get("cts", message["ts"])),
            **dict(zip(TOUCH, touch, strict=True)),
        }


def trade_rows(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ``publicTrade`` frame's trade rows (``S`` is the taker side, ``T`` the matching time); the recordings
    and the live feed read trades alike."""
    return [
        {
            "symbol": as_text(trade["s"], "symbol"),
            "ts_server": exchange_ns(trade["T"]),
            "last_px": trade["p"],
            "last_qty": trade["v"],
            "last_side": trade["S"].lower(),
        }
        for trade in trades
    ]


def _saw_trade(sightings: Sightings, trade: dict[str, Any], line: int) -> None:
    """A trade's tick direction ``L`` is a field of derivatives only (Bybit v5 docs, publicTrade)."""
    if "L" in trade:
        sightings.saw(BYBIT_LINEAR, line, "a publicTrade with a tick direction L (derivatives only)")
    else:
        sightings.saw(BYBIT_SPOT, line, "a publicTrade without a tick direction L (spot)")


def _saw_ticker(sightings: Sightings, message: dict[str, Any], line: int) -> None:
    """A ticker snapshot has every field of its market; a delta only what changed, so it may say nothing."""
    data = message["data"]
    if any(name in data for name in _DERIVATIVE_TICKER):
        sightings.saw(BYBIT_LINEAR, line, "a tickers frame with markPrice/openInterest/fundingRate (derivatives)")
    elif "usdIndexPrice" in data:
        sightings.saw(BYBIT_SPOT, line, "a tickers frame with usdIndexPrice (spot only)")


def read_bybit(path: Path, venue: Venue | None = None) -> pd.DataFrame:
    """``orderbook.N`` snapshot+delta -> a quote tick whenever the touch changes; ``publicTrade`` -> trade ticks.

    Exchange time is ``cts`` for book messages (see ``Books.apply``) and ``T`` for trades. Other topics
    (``kline.1``, acks) are ignored, ``tickers`` read only for the market they show. Linear and spot share
    topic names, so the venue comes from the frames (``saw_book_depth``, ``_saw_trade``, ``_saw_ticker``), or
    from ``venue`` when they say nothing or agree with it (``venues.Sightings``).
    """
    books = Books()
    sightings = Sightings(Path(path), BYBIT_LINEAR.exchange)

    def rows_of(message_text: str, line: int) -> Sequence[dict[str, Any]]:
        if '"topic":"orderbook.' in message_text[:40]:
            message = json.loads(message_text)
            saw_book_depth(sightings, str(message["topic"]), line)
            row = books.apply(message)
            return () if row is None else (row,)
        if '"topic":"publicTrade.' in message_text[:40]:
            trades = json.loads(message_text)["data"]
            for trade in trades:
                _saw_trade(sightings, trade, line)
            return trade_rows(trades)
        if '"topic":"tickers.' in message_text[:40]:
            _saw_ticker(sightings, json.loads(message_text), line)
        return ()

    rows, ts_local, _ = read_stamped(Path(path), rows_of)
    frame = to_frame(rows, ts_local, str(path))
    frame[VENUE_FIELD] = venue_code(sightings.venue(venue, _UNDECIDED))
    return finish(frame, str(path))
