"""The project's synthetic market (``domain.market.synthetic``) as a venue's frames, so that a feed client can be
run end to end with no recording: a client reading the frames gets the synthetic ticks back, one for one.

Each quote tick becomes a book change of a book that is a function of the touch (the touch level and a fixed ladder
of deeper levels whose sizes depend only on their price, so only levels that the touch crosses change); Binance also
gets a ``bookTicker`` per quote tick, Bybit none (its clients read the touch off the book). A quote tick that repeats
the touch (a size change that rounds to no lot) is sent to Bybit as a delta that re-states the best bid with its
size written with one trailing zero more or less (``0.956`` / ``0.9560``): the value is the same, the frame is there,
and a client that emits on every touch update sees it (``readers.bybit`` does).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market import synthetic
from shadow_pipeline.domain.market.ticks import SOURCE_COLUMNS
from shadow_pipeline.feed.venue_server.source import (
    BINANCE_USDM,
    BYBIT_LINEAR,
    Frame,
    FrameKind,
    FrameSource,
    RestSnapshot,
    check_venue,
    is_bybit,
)

DEPTH = 50  # levels per side; Bybit's topic is orderbook.50
_FIRST_UPDATE_ID = 1_000_000
_MS = 1_000_000
_Side = dict[str, str]  # price text -> size text


class _Tick(NamedTuple):
    """A synthetic tick, its fields in ``SOURCE_COLUMNS`` order."""

    symbol: str
    ts_server: int
    ts_local: int
    bid: str
    ask: str
    bid_qty: str
    ask_qty: str
    last_px: str
    last_qty: str
    last_side: str


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _diff(old: _Side, new: _Side) -> list[list[str]]:
    gone = [[price, "0"] for price in old if price not in new]
    return gone + [[price, size] for price, size in new.items() if old.get(price) != size]


@functools.lru_cache(maxsize=4096)
def _deeper(market: synthetic.SymbolMarket, best_ticks: int, direction: int) -> _Side:
    """The levels behind a touch at ``best_ticks``: their sizes depend on their price alone, so that a touch
    move changes only the levels it crosses, as on a real book."""
    side = {}
    for k in range(1, DEPTH):
        level = best_ticks + direction * k
        lots = 1 + (level * 40503) % 97
        side[f"{level * market.tick_size:.{market.price_decimals}f}"] = (
            f"{lots * market.lot_size:.{market.qty_decimals}f}"
        )
    return side


def _levels(side: _Side) -> list[list[str]]:
    return [[price, size] for price, size in side.items()]


def _padded(size: str) -> str:
    return size + ("0" if "." in size else ".0")


@dataclass
class _Symbol:
    """One symbol's book as last sent, its ids, and the last trade price (for Bybit's tick direction ``L``)."""

    market: synthetic.SymbolMarket
    bids: _Side = field(default_factory=dict)
    asks: _Side = field(default_factory=dict)
    update_id: int = _FIRST_UPDATE_ID
    trade_id: int = 0
    last_px: float | None = None
    tick_direction: str = "ZeroPlusTick"
    padded: bool = False

    def ladder(self, best: str, best_size: str, direction: int) -> _Side:
        """The touch level, then DEPTH - 1 levels a tick apart away from it."""
        return {best: best_size, **_deeper(self.market, round(float(best) / self.market.tick_size), direction)}

    def book(self, row: _Tick, repeat: bool) -> tuple[_Side, _Side]:
        bid_size = row.bid_qty
        if repeat:  # Bybit only: the same touch, a different text (see the module docstring)
            self.padded = not self.padded
        else:
            self.padded = False
        if self.padded:
            bid_size = _padded(bid_size)
        return self.ladder(row.bid, bid_size, -1), self.ladder(row.ask, row.ask_qty, 1)

    def direction(self, price: str) -> str:
        """Bybit's ``L``: the tick direction of a trade against the previous trade's price."""
        value = float(price)
        if self.last_px is not None and value != self.last_px:
            self.tick_direction = "PlusTick" if value > self.last_px else "MinusTick"
        elif self.last_px is not None:
            self.tick_direction = "ZeroPlusTick" if self.tick_direction.endswith("PlusTick") else "ZeroMinusTick"
        self.last_px = value
        return self.tick_direction


class _Writer:
    """Appends one venue's frames for synthetic ticks, in tick order."""

    def __init__(self, venue: str, symbols: Sequence[str], seed: int) -> None:
        self.venue = venue
        self.frames: list[Frame] = []
        self.snapshots: list[RestSnapshot] = []
        self.state = {s: _Symbol(synthetic.market_for(s)) for s in symbols}
        self._ids = np.random.default_rng([seed, 7919])

    def add(self, ts_local: int, topic: str, symbol: str, kind: FrameKind, message: dict[str, Any]) -> None:
        self.frames.append(Frame(ts_local, topic, symbol, kind, _dumps(message)))

    def quote(self, row: _Tick, repeat: bool) -> None:
        state = self.state[row.symbol]
        bids, asks = state.book(row, repeat and is_bybit(self.venue))
        diff_b, diff_a = _diff(state.bids, bids), _diff(state.asks, asks)
        first = not state.bids
        state.bids, state.asks = bids, asks
        ms = int(row.ts_server) // _MS
        if is_bybit(self.venue):
            self._bybit_book(row, state, first, ms, diff_b, diff_a)
        else:
            self._binance_quote(row, state, first, ms, diff_b, diff_a)

    def _bybit_book(
        self, row: _Tick, state: _Symbol, first: bool, ms: int, diff_b: list[list[str]], diff_a: list[list[str]]
    ) -> None:
        state.update_id += 1
        if first:
            diff_b, diff_a = _levels(state.bids), _levels(state.asks)
        data = {"s": row.symbol, "b": diff_b, "a": diff_a, "u": state.update_id, "seq": state.update_id * 10}
        topic = f"orderbook.{DEPTH}.{row.symbol}"
        kind = FrameKind.BOOK_SNAPSHOT if first else FrameKind.BOOK_DELTA
        message = {"topic": topic, "type": "snapshot" if first else "delta", "ts": ms, "data": data, "cts": ms}
        self.add(int(row.ts_local), topic, row.symbol, kind, message)

    def _binance_quote(
        self, row: _Tick, state: _Symbol, first: bool, ms: int, diff_b: list[list[str]], diff_a: list[list[str]]
    ) -> None:
        usdm = self.venue == BINANCE_USDM
        name = row.symbol.lower()
        times = {"E": ms, "T": ms} if usdm else {}
        if diff_b or diff_a:
            previous = state.update_id
            state.update_id += 1
            if first:
                rest = {
                    "lastUpdateId": state.update_id,
                    **times,
                    "bids": _levels(state.bids),
                    "asks": _levels(state.asks),
                }
                self.snapshots.append(RestSnapshot(row.symbol, 0, _dumps(rest)))
            data: dict[str, Any] = {"e": "depthUpdate", "E": ms, **({"T": ms} if usdm else {}), "s": row.symbol}
            data |= {"U": state.update_id, "u": state.update_id, **({"pu": previous} if usdm else {})}
            stream = f"{name}@depth@{'0ms' if usdm else '100ms'}"
            message = {"stream": stream, "data": data | {"b": diff_b, "a": diff_a}}
            self.add(int(row.ts_local), stream, row.symbol, FrameKind.BOOK_DELTA, message)
        ticker: dict[str, Any] = {"e": "bookTicker"} if usdm else {}
        ticker |= {"u": state.update_id, "s": row.symbol, "b": row.bid, "B": row.bid_qty, "a": row.ask}
        ticker |= {"A": row.ask_qty, **times}
        stream = f"{name}@bookTicker"
        self.add(int(row.ts_local), stream, row.symbol, FrameKind.TICKER, {"stream": stream, "data": ticker})

    def trades(self, rows: list[_Tick]) -> None:
        symbol, ms, ts_local = rows[0].symbol, int(rows[0].ts_server) // _MS, int(rows[0].ts_local)
        state = self.state[symbol]
        if is_bybit(self.venue):
            prints = []
            for row in rows:
                state.trade_id += 1
                trade: dict[str, Any] = {"T": int(row.ts_server) // _MS, "s": symbol, "S": row.last_side.title()}
                trade |= {"v": row.last_qty, "p": row.last_px}
                if self.venue == BYBIT_LINEAR:
                    trade["L"] = state.direction(row.last_px)
                trade_uuid = uuid.UUID(bytes=self._ids.bytes(16), version=4)
                prints.append(trade | {"i": str(trade_uuid), "BT": False, "RPI": False, "seq": state.update_id * 10})
            topic = f"publicTrade.{symbol}"
            message = {"topic": topic, "type": "snapshot", "ts": ms, "data": prints}
            self.add(ts_local, topic, symbol, FrameKind.TRADE, message)
            return
        usdm = self.venue == BINANCE_USDM
        stream = f"{symbol.lower()}@trade"
        for row in rows:
            state.trade_id += 1
            trade_ms = int(row.ts_server) // _MS
            data: dict[str, Any] = {"e": "trade", "E": trade_ms, "T": trade_ms, "s": symbol, "t": state.trade_id}
            data |= {"p": row.last_px, "q": row.last_qty, "m": row.last_side == "sell"}
            data |= {"X": "MARKET"} if usdm else {"M": True}
            self.add(int(row.ts_local), stream, symbol, FrameKind.TRADE, {"stream": stream, "data": data})


def _same_match(row: _Tick, first: _Tick) -> bool:
    """A print of the same symbol in the same millisecond as the batch's first: one Bybit frame."""
    return bool(row.last_side) and row.symbol == first.symbol and row.ts_server // _MS == first.ts_server // _MS


def synthetic_frames(venue: str, symbols: Sequence[str], minutes: float, seed: int = 0) -> FrameSource:
    """``minutes`` of the synthetic market for ``symbols`` from ``seed`` (the ticks ``replay --source synthetic``
    writes for the same arguments) as ``venue``'s frames. Bybit trades of one symbol in one millisecond share a
    frame, as the venue batches one match's prints."""
    check_venue(venue)
    if not symbols or len(set(symbols)) != len(symbols):
        raise ValueError(f"synthetic frames need distinct symbols, got {list(symbols)}")
    if not 0 < minutes < float("inf"):
        raise ValueError(f"minutes must be a finite number > 0, got {minutes}")
    frame = pd.concat(synthetic.generate(list(symbols), minutes * 60.0, seed=seed), ignore_index=True)
    writer = _Writer(venue, symbols, seed)
    last_touch: dict[str, tuple[str, str, str, str]] = {}
    batch: list[_Tick] = []
    for values in zip(*(frame[column].tolist() for column in SOURCE_COLUMNS), strict=True):
        row = _Tick(*values)
        if batch and not (is_bybit(venue) and _same_match(row, batch[0])):
            writer.trades(batch)
            batch = []
        if row.last_side:
            batch.append(row)
            continue
        touch = (row.bid, row.ask, row.bid_qty, row.ask_qty)
        writer.quote(row, repeat=last_touch.get(row.symbol) == touch)
        last_touch[row.symbol] = touch
    if batch:
        writer.trades(batch)
    return FrameSource(venue, tuple(writer.frames), tuple(writer.snapshots))
