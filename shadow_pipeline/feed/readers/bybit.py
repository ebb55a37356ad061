"""Bybit v5 public WebSocket recordings (``<local timestamp> <frame>`` lines): book rebuilt, trades as they are."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shadow_pipeline.feed.readers.frames import TOUCH, as_text, exchange_ns, finish, to_frame
from shadow_pipeline.feed.readers.stamped import read_stamped

_Side = dict[float, tuple[str, str]]  # price -> (price, size) as the exchange wrote them
_Touch = tuple[str, str, str, str]


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

    def apply(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The quote row ``message`` makes, if it changes the touch. A snapshot, or ``u`` = 1 (the service
        restarted), resets the book; a delta applies; a size of 0 deletes the level. Exchange time is the
        matching-engine time ``cts`` (it lines up with trades' ``T``), else the system time ``ts``."""
        data = message["data"]
        symbol = as_text(data["s"], "symbol")
        if message["type"] == "snapshot" or data.get("u") == 1:
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


def read_bybit(path: Path) -> pd.DataFrame:
    """``orderbook.N`` snapshot+delta -> a quote tick whenever the touch changes; ``publicTrade`` -> trade ticks.

    Exchange time is ``cts`` for book messages (see ``Books.apply``) and ``T`` for trades. Other topics
    (``tickers``, ``kline.1``, acks) are ignored.
    """
    books = Books()

    def rows_of(message_text: str) -> Sequence[dict[str, Any]]:
        if '"topic":"orderbook.' in message_text[:40]:
            row = books.apply(json.loads(message_text))
            return () if row is None else (row,)
        if '"topic":"publicTrade.' in message_text[:40]:
            return [
                {
                    "symbol": as_text(trade["s"], "symbol"),
                    "ts_server": exchange_ns(trade["T"]),
                    "last_px": trade["p"],
                    "last_qty": trade["v"],
                    "last_side": trade["S"].lower(),
                }
                for trade in json.loads(message_text)["data"]
            ]
        return ()

    rows, ts_local, _ = read_stamped(Path(path), rows_of)
    return finish(to_frame(rows, ts_local, str(path)), str(path))
