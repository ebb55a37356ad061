"""Recordings (``<local ns> <frame text>`` lines, see ../shared/data/market/README.md) as a server's frames.

Lines are read with the project's recording readers' line handling (``readers.stamped``), so that a file that is
not a recording, or a bad line, is one ``RecordingError`` naming the file and the line. Every frame is parsed once
here, so that the server never meets a line it cannot route while it plays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shadow_pipeline.feed.readers import venues
from shadow_pipeline.feed.readers.files import RecordingError
from shadow_pipeline.feed.readers.stamped import read_stamped
from shadow_pipeline.feed.venue_server.source import (
    BINANCE_SPOT,
    BINANCE_USDM,
    BYBIT_LINEAR,
    BYBIT_SPOT,
    Frame,
    FrameKind,
    FrameSource,
    RestSnapshot,
    check_venue,
    is_bybit,
)

_VENUES = {v.code: v for v in (venues.BINANCE_USDM, venues.BINANCE_SPOT, venues.BYBIT_LINEAR, venues.BYBIT_SPOT)}
_REST = "rest"  # the kind of a Binance REST snapshot line while files are read
_Row = dict[str, Any]


def _check_levels(data: dict[str, Any], sides: tuple[str, str]) -> None:
    """Book levels must be ``[price, size]`` numbers in text: the server's books would otherwise fail mid-replay."""
    for side in sides:
        for price, size in data[side]:
            float(price), float(size)


def _binance_row(text: str, line: int, sightings: venues.Sightings) -> list[_Row]:
    message = json.loads(text)
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    if "lastUpdateId" in message:
        int(message["lastUpdateId"])
        _check_levels(message, ("bids", "asks"))
        return [{"kind": _REST, "topic": "", "symbol": "", "text": text}]
    stream, data = str(message["stream"]), message["data"]
    name, _, suffix = stream.partition("@")
    kind = FrameKind.OTHER
    if suffix.startswith("depth"):
        kind = FrameKind.BOOK_DELTA
        int(data["u"]), int(data["U"])
        _check_levels(data, ("b", "a"))
    elif suffix == "bookTicker":
        kind = FrameKind.TICKER
        usdm = "E" in data
        why = "a bookTicker with" + ("" if usdm else "out") + " an event time E"
        sightings.saw(_VENUES[BINANCE_USDM if usdm else BINANCE_SPOT], line, why)
    elif suffix == "trade":
        kind = FrameKind.TRADE
        if "X" in data:
            sightings.saw(_VENUES[BINANCE_USDM], line, "a trade with a trade type X (futures only)")
        elif "M" in data:
            sightings.saw(_VENUES[BINANCE_SPOT], line, "a trade with the M flag (spot only)")
    return [{"kind": kind, "topic": stream, "symbol": name.upper(), "text": text}]


def _bybit_row(text: str, line: int, sightings: venues.Sightings) -> list[_Row]:
    message = json.loads(text)
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    if "topic" not in message:  # acks and pongs: the server makes its own
        return []
    topic = str(message["topic"])
    kind = FrameKind.OTHER
    if topic.startswith("orderbook."):
        parts = topic.split(".")
        if len(parts) != 3 or not parts[1].isdigit():  # the depth sizes the server's own snapshots
            raise ValueError(f"topic {topic[:60]!r} is not orderbook.<depth>.<symbol>")
        data = message["data"]
        int(data["u"]), int(data.get("seq", 0)), int(message["ts"])
        _check_levels(data, ("b", "a"))
        kind = FrameKind.BOOK_SNAPSHOT if message["type"] == "snapshot" else FrameKind.BOOK_DELTA
        if topic.startswith("orderbook.500."):
            sightings.saw(_VENUES[BYBIT_LINEAR], line, "an orderbook.500 frame (derivatives only)")
    elif topic.startswith("publicTrade."):
        kind = FrameKind.TRADE
        for trade in message["data"]:
            linear = "L" in trade
            why = "a publicTrade with" + ("" if linear else "out") + " a tick direction L"
            sightings.saw(_VENUES[BYBIT_LINEAR if linear else BYBIT_SPOT], line, why)
    elif topic.startswith("tickers."):
        kind = FrameKind.TICKER
    return [{"kind": kind, "topic": topic, "symbol": topic.rpartition(".")[2], "text": text}]


def _read(path: Path, venue: str) -> tuple[list[_Row], list[int]]:
    bybit = is_bybit(venue)
    sightings = venues.Sightings(path, "bybit" if bybit else "binance")

    def rows_of(text: str, line: int) -> list[_Row]:
        text = text.rstrip("\r\n")
        return _bybit_row(text, line, sightings) if bybit else _binance_row(text, line, sightings)

    rows, local, _ = read_stamped(path, rows_of)
    if not any(row["kind"] != _REST for row in rows):
        raise RecordingError(f"{path}: no {'Bybit topic' if bybit else 'Binance combined-stream'} frames in it")
    sightings.venue(_VENUES[venue], "no frame says which market")
    symbols = {row["symbol"] for row in rows if row["kind"] != _REST}
    for row in rows:
        if row["kind"] == _REST:
            if len(symbols) != 1:
                raise RecordingError(f"{path}: a REST snapshot in a file of {len(symbols)} symbols: whose is it?")
            row["symbol"] = next(iter(symbols))
    return rows, [int(ns) for ns in local]


def recording_frames(venue: str, files: Sequence[Path], symbols: Sequence[str] = ()) -> FrameSource:
    """The frames of ``files`` merged by local receive stamp (a ``*_20240809`` file continues its ``*_20240808``
    file; two symbols' files interleave as one connection would receive them), all symbols or ``symbols``."""
    check_venue(venue)
    if not files:
        raise RecordingError("no recording files given")
    merged: list[tuple[int, int, int, _Row]] = []
    for number, path in enumerate(map(Path, files)):
        rows, local = _read(path, venue)
        merged.extend((ns, number, index, row) for index, (ns, row) in enumerate(zip(local, rows, strict=True)))
    merged.sort(key=lambda item: item[:3])
    found = {row["symbol"] for *_, row in merged}
    unknown = set(symbols) - found
    if unknown:
        raise RecordingError(f"symbols {sorted(unknown)} are not in the recording (it has {sorted(found)})")
    frames: list[Frame] = []
    snapshots: list[RestSnapshot] = []
    for ns, _, _, row in merged:
        if symbols and row["symbol"] not in symbols:
            continue
        if row["kind"] == _REST:
            snapshots.append(RestSnapshot(row["symbol"], len(frames), row["text"]))
        else:
            frames.append(Frame(ns, row["topic"], row["symbol"], row["kind"], row["text"]))
    if not is_bybit(venue):
        missing = sorted({frame.symbol for frame in frames} - {snapshot.symbol for snapshot in snapshots})
        if missing:
            raise RecordingError(
                f"no REST depth snapshot for {', '.join(missing)} in the recording: play the file that has it "
                "first (a *_20240809 file continues its *_20240808 file)"
            )
    return FrameSource(venue, tuple(frames), tuple(snapshots))
