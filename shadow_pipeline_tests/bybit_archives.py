"""Bybit's public archives in their documented formats, generated small for tests: the daily order book
(``<date>_<SYMBOL>_ob500.data.zip``: one ``.data`` member of v5 ``orderbook.500`` frames as JSON lines, no
receive stamp) and the daily trades (gzipped CSV, ``timestamp`` in epoch seconds, ``side`` the taker's).

The generator keeps its own book (integer ticks, sorted by hand), so the touches it expects do not come from
the reader under test.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

START_MS = 1_723_158_000_000  # 2024-08-08 23:00:00 UTC, an hour the project's partitions have
TRADE_HEADER = "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional"
Touch = tuple[int, str, str, str, str]  # exchange ms, bid, ask, bid_qty, ask_qty


@dataclass
class Market:
    frames: list[dict[str, Any]] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)  # after each frame that changed the touch
    trades: list[tuple[int, str, str, str]] = field(default_factory=list)  # ms, taker side, size, price


def _px(ticks: int) -> str:
    return f"{ticks // 10}.{ticks % 10}"


def _levels(side: dict[int, str]) -> list[list[str]]:
    return [[_px(price), size] for price, size in side.items()]


def compact(message: Any) -> str:
    """JSON as exchanges send it, without spaces."""
    return json.dumps(message, separators=(",", ":"))


def frame(symbol: str, kind: str, ms: int, bids: list[list[str]], asks: list[list[str]], u: int) -> dict[str, Any]:
    """One ``orderbook.500`` frame; ``cts`` (matching engine) is a millisecond before ``ts`` (system)."""
    data = {"s": symbol, "b": bids, "a": asks, "u": u, "seq": 7_000_000 + u}
    return {"topic": f"orderbook.500.{symbol}", "type": kind, "ts": ms + 1, "data": data, "cts": ms}


def random_market(symbol: str = "BTCUSDT", seconds: int = 120, seed: int = 3, start_ms: int = START_MS) -> Market:
    """A five-level book a frame every 100 ms: the touch resized, taken (with its trade) or a deep level changed."""
    rng = np.random.default_rng(seed)
    mid = 600_000  # 60000.0 in 0.1 ticks
    bids = {mid - i: f"{rng.integers(1, 999) / 1000:.3f}" for i in range(1, 6)}
    asks = {mid + i: f"{rng.integers(1, 999) / 1000:.3f}" for i in range(1, 6)}
    market = Market()
    market.frames.append(frame(symbol, "snapshot", start_ms, _levels(bids), _levels(asks), 1000))

    def touch(ms: int) -> None:
        bid, ask = max(bids), min(asks)
        now = (ms, _px(bid), _px(ask), bids[bid], asks[ask])
        if not market.touches or market.touches[-1][1:] != now[1:]:
            market.touches.append(now)

    touch(start_ms)
    for step in range(1, seconds * 10):
        ms, size = start_ms + step * 100, f"{rng.integers(1, 999) / 1000:.3f}"
        event = int(rng.integers(0, 4))
        if event == 0:  # the touch resized on one side
            book = bids if rng.integers(0, 2) else asks
            book[max(book) if book is bids else min(book)] = size
            changes = {id(book): {max(book) if book is bids else min(book): size}}
        elif event in (1, 2):  # a taker takes the whole best level; a level refills the far end
            taken, other = (asks, bids) if event == 1 else (bids, asks)
            best = min(taken) if taken is asks else max(taken)
            market.trades.append((ms, "Buy" if taken is asks else "Sell", taken.pop(best), _px(best)))
            far = (max(taken) + 1) if taken is asks else (min(taken) - 1)
            taken[far] = size
            changes = {id(taken): {best: "0", far: size}, id(other): {}}
        else:  # a level away from the touch
            book = bids if rng.integers(0, 2) else asks
            deep = sorted(book)[0 if book is bids else -1]
            book[deep] = size
            changes = {id(book): {deep: size}}
        levels = [[[_px(p), s] for p, s in changes.get(id(book), {}).items()] for book in (bids, asks)]
        market.frames.append(frame(symbol, "delta", ms, levels[0], levels[1], 1000 + step))
        touch(ms)
    return market


def write_ob500(folder: Path, symbol: str, frames: list[dict[str, Any]], day: str = "2024-08-08") -> Path:
    """The archive as Bybit names it: a zip of one ``.data`` member."""
    path = folder / f"{day}_{symbol}_ob500.data.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{day}_{symbol}_ob500.data", "".join(compact(f) + "\n" for f in frames))
    return path


def write_trades(folder: Path, symbol: str, trades: list[tuple[int, str, str, str]], day: str = "2024-08-08") -> Path:
    """Newest first, so that the reader has to order them (it must not trust a file's order)."""
    rows = [
        f"{ms // 1000}.{ms % 1000:03d}0,{symbol},{side},{size},{price},PlusTick,id-{ms},0,{size},0"
        for ms, side, size, price in sorted(trades, reverse=True)
    ]
    path = folder / f"{symbol}{day}.csv.gz"
    path.write_bytes(gzip.compress("\n".join([TRADE_HEADER, *rows]).encode() + b"\n"))
    return path
