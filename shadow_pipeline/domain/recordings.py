"""Recorded exchange WebSocket feeds turned into source ticks (see docs/tick-schema.md, "Sources").

Both recorders write ``<local_receive_ns> <raw frame>`` per line, gzip-compressed. Prices and sizes are kept
as the exchange's decimal strings so that the stream carries exactly what the exchange sent. The result is
a *source frame*: the tick fields except ``seq``, which the replayer assigns in emission order.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SOURCE_COLUMNS = (
    "symbol",
    "ts_server",
    "ts_local",
    "bid",
    "ask",
    "bid_qty",
    "ask_qty",
    "last_px",
    "last_qty",
    "last_side",
)
_TOUCH = ["bid", "ask", "bid_qty", "ask_qty"]
_MS = 1_000_000


class RecordingError(ValueError):
    """A recording file that is missing or not in the expected format."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.exists():
        raise RecordingError(f"recording not found: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            stamp, _, frame = line.partition(" ")
            if not stamp.isdigit() or not frame:
                raise RecordingError(f"{path}:{number}: expected '<local_ns> <json>'")
            yield int(stamp), frame


def _frame(rows: list[dict[str, Any]], path_desc: str) -> pd.DataFrame:
    if not rows:
        raise RecordingError(f"no bookTicker/trade or orderbook/publicTrade messages in {path_desc}")
    frame = pd.DataFrame.from_records(rows, columns=list(SOURCE_COLUMNS))
    return frame.astype({"ts_server": "Int64", "ts_local": "int64"})


def _finish(frame: pd.DataFrame, path_desc: str) -> pd.DataFrame:
    """Carry the touch forward onto trade ticks; trades before the first quote take the first quote's touch."""
    frame[_TOUCH] = frame.groupby("symbol")[_TOUCH].transform(lambda col: col.ffill().bfill())
    if frame[_TOUCH].isna().any().any():
        raise RecordingError(f"{path_desc}: a symbol has trades but no quote at all")
    frame["last_px"] = frame["last_px"].fillna("")
    frame["last_qty"] = frame["last_qty"].fillna("0")
    frame["last_side"] = frame["last_side"].fillna("")
    return frame.astype({"ts_server": "int64", "ts_local": "int64"}).reset_index(drop=True)


def read_binance(paths: Sequence[Path]) -> pd.DataFrame:
    """``bookTicker`` -> quote ticks, ``trade`` -> trade ticks, from hftbacktest recordings played back to back.

    Exchange time is ``E`` (event time). Spot ``bookTicker`` has no ``E``: its exchange time is the local time
    shifted by the median (E - local) of the same file's trades, i.e. the recorder's clock offset.
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        for local_ns, message_text in _lines(Path(path)):
            if "@bookTicker" in message_text[:60]:
                data = json.loads(message_text)["data"]
                rows.append(
                    {
                        "symbol": data["s"],
                        "ts_server": data["E"] * _MS if "E" in data else None,
                        "ts_local": local_ns,
                        "bid": data["b"],
                        "ask": data["a"],
                        "bid_qty": data["B"],
                        "ask_qty": data["A"],
                    }
                )
            elif "@trade" in message_text[:60]:
                data = json.loads(message_text)["data"]
                rows.append(
                    {
                        "symbol": data["s"],
                        "ts_server": data["E"] * _MS,
                        "ts_local": local_ns,
                        "last_px": data["p"],
                        "last_qty": data["q"],
                        # m = buyer is maker, so the aggressor sold.
                        "last_side": "sell" if data["m"] else "buy",
                    }
                )
    desc = ", ".join(map(str, paths))
    frame = _frame(rows, desc)
    unknown = frame["ts_server"].isna()
    if unknown.any():
        offsets = (frame["ts_server"] - frame["ts_local"]).dropna().to_numpy(dtype="int64")
        offset = int(np.median(offsets)) if len(offsets) else 0
        frame.loc[unknown, "ts_server"] = frame.loc[unknown, "ts_local"] + offset
    return _finish(frame, desc)


def _touch(book: dict[str, dict[str, str]]) -> tuple[str, str, str, str] | None:
    if not book["b"] or not book["a"]:
        return None
    bid = max(book["b"], key=float)
    ask = min(book["a"], key=float)
    return bid, ask, book["b"][bid], book["a"][ask]


def read_bybit(path: Path) -> pd.DataFrame:
    """``orderbook.N`` snapshot+delta -> a quote tick whenever the touch changes; ``publicTrade`` -> trade ticks.

    Exchange time is the matching-engine time ``cts`` for book messages and ``T`` for trades.
    """
    rows: list[dict[str, Any]] = []
    books: dict[str, dict[str, dict[str, str]]] = {}
    last_touch: dict[str, tuple[str, str, str, str]] = {}
    for local_ns, message_text in _lines(Path(path)):
        if '"topic":"orderbook.' in message_text[:40]:
            message = json.loads(message_text)
            data = message["data"]
            symbol = data["s"]
            if message["type"] == "snapshot" or data.get("u") == 1:
                books[symbol] = {"b": {}, "a": {}}
            book = books.get(symbol)
            if book is None:
                continue  # a delta before any snapshot cannot be placed
            for side in ("b", "a"):
                for price, qty in data[side]:
                    if float(qty) == 0:
                        book[side].pop(price, None)
                    else:
                        book[side][price] = qty
            touch = _touch(book)
            if touch is None or touch == last_touch.get(symbol):
                continue
            last_touch[symbol] = touch
            rows.append(
                {
                    "symbol": symbol,
                    "ts_server": int(message.get("cts", message["ts"])) * _MS,
                    "ts_local": local_ns,
                    **dict(zip(_TOUCH, touch, strict=True)),
                }
            )
        elif '"topic":"publicTrade.' in message_text[:40]:
            for trade in json.loads(message_text)["data"]:
                rows.append(
                    {
                        "symbol": trade["s"],
                        "ts_server": int(trade["T"]) * _MS,
                        "ts_local": local_ns,
                        "last_px": trade["p"],
                        "last_qty": trade["v"],
                        "last_side": trade["S"].lower(),
                    }
                )
    return _finish(_frame(rows, str(path)), str(path))
