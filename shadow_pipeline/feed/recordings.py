"""Recorded exchange WebSocket feeds turned into source ticks (see docs/tick-schema.md, "Sources").

Both recorders write ``<local receive timestamp> <raw frame>`` per line, gzip-compressed; the timestamp's unit
(ms, us or ns) is detected per file and converted to ns. Prices and sizes are kept as the exchange's decimal
strings so that the stream carries exactly what the exchange sent. The result is a *source frame*: the tick
fields except ``seq``, which the replayer assigns in emission order.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

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
_STREAM_PREFIX = '{"stream":"'
_NO_STREAM = "(no stream)"


class RecordingError(ValueError):
    """A recording file that is missing or not in the expected format."""


@dataclass(frozen=True)
class _Unit:
    name: str
    digits: int
    to_ns: int


# An epoch time from 2001-09-09 to 2262-04-11 has exactly this many digits in each unit, so a stamp's length
# names its unit (the upper end is where int64 nanoseconds end).
_UNITS = {unit.digits: unit for unit in (_Unit("ms", 13, 1_000_000), _Unit("us", 16, 1_000), _Unit("ns", 19, 1))}
_MAX_NS = np.uint64(np.iinfo(np.int64).max)
_RowsOf = Callable[[str], Sequence[dict[str, Any]]]


def _stamp_error(path: Path, line: int, stamp: bytes, unit: _Unit | None) -> RecordingError:
    """Why ``stamp`` cannot be a local time in ``unit`` (``None``: in any unit)."""
    shown = stamp[:40].decode(errors="replace")
    if not stamp.isdigit():
        return RecordingError(f"{path}:{line}: expected '<local timestamp> <frame>', got stamp {shown!r}")
    other = _UNITS.get(len(stamp))
    if unit is None or other is None:
        return RecordingError(
            f"{path}:{line}: local timestamp {shown} fits no unit (13-digit ms, 16-digit us or 19-digit ns, "
            "2001-09-09 to 2262-04-11)"
        )
    return RecordingError(
        f"{path}:{line}: local timestamp {shown} is in {other.name} but the file starts in {unit.name}: "
        "one file must keep one unit"
    )


def _raise_at_first(odd: np.ndarray, stamps: list[bytes], path: Path, unit: _Unit | None) -> None:
    if odd.any():
        index = int(np.argmax(odd))
        raise _stamp_error(path, index + 1, stamps[index], unit)


def _local_ns(stamps: list[bytes], path: Path) -> tuple[np.ndarray, str]:
    """Every line's local stamp in ns, and the file's unit, decided by the first stamp's digit count.

    Recorders differ (hftbacktest's earlier Python collector wrote microseconds, its current one nanoseconds),
    and a stamp read in the wrong unit silently shrinks or stretches market time 1000-fold. The other stamps are
    checked against the first one's unit column-wise, lengths first so that a stray long "stamp" never sizes a
    text array.
    """
    if not stamps:
        return np.empty(0, dtype=np.int64), "none"
    unit = _UNITS.get(len(stamps[0])) if stamps[0].isdigit() else None
    if unit is None:
        raise _stamp_error(path, 1, stamps[0], None)
    _raise_at_first(np.fromiter(map(len, stamps), dtype=np.intp, count=len(stamps)) != unit.digits, stamps, path, unit)
    column = np.array(stamps, dtype=f"S{unit.digits}")
    _raise_at_first(~np.char.isdigit(column), stamps, path, unit)
    ns = column.astype(np.uint64) * np.uint64(unit.to_ns)  # uint64: 19 digits times the factor cannot wrap
    _raise_at_first(ns > _MAX_NS, stamps, path, None)
    return ns.astype(np.int64), unit.name


def _read(path: Path, rows_of: _RowsOf) -> tuple[list[dict[str, Any]], np.ndarray, str]:
    """``rows_of(frame)`` for each line, those rows' local receive times in ns, and the file's stamp unit.

    Lines are ``<local receive timestamp> <raw frame>``. Stamps are collected as text and converted once at the
    end (see ``_local_ns``), so the per-line work is only the split and the reader's own dispatch.
    """
    if not path.exists():
        raise RecordingError(f"recording not found: {path}")
    rows: list[dict[str, Any]] = []
    line_of_row: list[int] = []
    stamps: list[bytes] = []
    # BufferedReader's C readline; GzipFile's own is Python-level, and a line is read per tick.
    with io.BufferedReader(gzip.open(path, "rb")) as handle:
        for index, line in enumerate(handle):
            stamp, _, frame = line.partition(b" ")
            if not frame.strip():
                raise RecordingError(f"{path}:{index + 1}: expected '<local timestamp> <frame>'")
            stamps.append(stamp)
            for row in rows_of(frame.decode()):
                rows.append(row)
                line_of_row.append(index)
    local, unit = _local_ns(stamps, path)
    return rows, local[np.asarray(line_of_row, dtype=np.intp)], unit


def _frame(rows: list[dict[str, Any]], ts_local: np.ndarray, path_desc: str) -> pd.DataFrame:
    if not rows:
        raise RecordingError(f"no bookTicker/trade or orderbook/publicTrade messages in {path_desc}")
    frame = pd.DataFrame.from_records(rows, columns=list(SOURCE_COLUMNS))
    frame["ts_local"] = ts_local
    return frame.astype({"ts_server": "Int64"})


def _finish(frame: pd.DataFrame, path_desc: str) -> pd.DataFrame:
    """Carry the touch forward onto trade ticks; trades before the first quote take the first quote's touch."""
    frame[_TOUCH] = frame.groupby("symbol")[_TOUCH].transform(lambda col: col.ffill().bfill())
    if frame[_TOUCH].isna().any().any():
        raise RecordingError(f"{path_desc}: a symbol has trades but no quote at all")
    frame["last_px"] = frame["last_px"].fillna("")
    frame["last_qty"] = frame["last_qty"].fillna("0")
    frame["last_side"] = frame["last_side"].fillna("")
    return frame.astype({"ts_server": "int64", "ts_local": "int64"}).reset_index(drop=True)


def _binance_rows(text: str, ignored: Counter[str]) -> Sequence[dict[str, Any]]:
    """The tick of a ``bookTicker`` or ``trade`` message; any other line is counted in ``ignored`` by stream.

    The stream name is matched exactly (``<symbol>@bookTicker``), not as a substring of the frame, so that no
    other stream (``markPrice@1s``, ``aggTrade``, depth) can be taken for one we read. Matching works on the
    frame text in place, as most lines are ticks and this runs once per line. Ignored lines are counted by the
    stream name after the symbol (``depth@0ms``, ``markPrice@1s``), frames outside the combined-stream envelope
    (the REST depth snapshot) as ``_NO_STREAM``.
    """
    name_end = max(text.find('"', len(_STREAM_PREFIX)), 0) if text.startswith(_STREAM_PREFIX) else 0
    if text.endswith("@bookTicker", 0, name_end):
        data = json.loads(text)["data"]
        return (
            {
                "symbol": data["s"],
                "ts_server": data["E"] * _MS if "E" in data else None,
                "bid": data["b"],
                "ask": data["a"],
                "bid_qty": data["B"],
                "ask_qty": data["A"],
            },
        )
    if text.endswith("@trade", 0, name_end):
        data = json.loads(text)["data"]
        return (
            {
                "symbol": data["s"],
                "ts_server": data["E"] * _MS,
                "last_px": data["p"],
                "last_qty": data["q"],
                # m = buyer is maker, so the aggressor sold.
                "last_side": "sell" if data["m"] else "buy",
            },
        )
    name = text[len(_STREAM_PREFIX) : name_end]
    ignored[name.partition("@")[2] or name or _NO_STREAM] += 1
    return ()


def read_binance(paths: Sequence[Path]) -> pd.DataFrame:
    """``bookTicker`` -> quote ticks, ``trade`` -> trade ticks, from hftbacktest recordings played back to back.

    Every other stream (depth diffs, ``markPrice``, ...) and the REST snapshot are ignored and counted in the log.
    Each file's local stamps are read in the unit its first stamp shows (see ``_local_ns``).
    Exchange time is ``E`` (event time). Spot ``bookTicker`` has no ``E``: its exchange time is the local time
    shifted by the median (E - local) of the same file's trades, i.e. the recorder's clock offset.
    """
    rows: list[dict[str, Any]] = []
    ts_local: list[np.ndarray] = []
    for path in map(Path, paths):
        ignored: Counter[str] = Counter()
        file_rows, file_local, unit = _read(path, partial(_binance_rows, ignored=ignored))
        rows.extend(file_rows)
        ts_local.append(file_local)
        log.info(
            "%s: local timestamps in %s; %d bookTicker/trade messages read; ignored by stream: %s",
            path,
            unit,
            len(file_rows),
            dict(ignored) or "none",
        )
    desc = ", ".join(map(str, paths))
    frame = _frame(rows, np.concatenate(ts_local) if ts_local else np.empty(0, dtype=np.int64), desc)
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
    books: dict[str, dict[str, dict[str, str]]] = {}
    last_touch: dict[str, tuple[str, str, str, str]] = {}

    def rows_of(message_text: str) -> Sequence[dict[str, Any]]:
        if '"topic":"orderbook.' in message_text[:40]:
            message = json.loads(message_text)
            data = message["data"]
            symbol = data["s"]
            if message["type"] == "snapshot" or data.get("u") == 1:
                books[symbol] = {"b": {}, "a": {}}
            book = books.get(symbol)
            if book is None:
                return ()  # a delta before any snapshot cannot be placed
            for side in ("b", "a"):
                for price, qty in data[side]:
                    if float(qty) == 0:
                        book[side].pop(price, None)
                    else:
                        book[side][price] = qty
            touch = _touch(book)
            if touch is None or touch == last_touch.get(symbol):
                return ()
            last_touch[symbol] = touch
            return (
                {
                    "symbol": symbol,
                    "ts_server": int(message.get("cts", message["ts"])) * _MS,
                    **dict(zip(_TOUCH, touch, strict=True)),
                },
            )
        if '"topic":"publicTrade.' in message_text[:40]:
            return [
                {
                    "symbol": trade["s"],
                    "ts_server": int(trade["T"]) * _MS,
                    "last_px": trade["p"],
                    "last_qty": trade["v"],
                    "last_side": trade["S"].lower(),
                }
                for trade in json.loads(message_text)["data"]
            ]
        return ()

    rows, ts_local, _ = _read(Path(path), rows_of)
    return _finish(_frame(rows, ts_local, str(path)), str(path))
