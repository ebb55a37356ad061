"""Binance combined-stream recordings (hftbacktest's collector): ``bookTicker`` and ``trade`` to ticks."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.instruments import Venue
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.feed.readers.frames import as_text, exchange_ns, finish, to_frame, venue_code
from shadow_pipeline.feed.readers.stamped import read_stamped
from shadow_pipeline.feed.readers.venues import BINANCE_SPOT, BINANCE_USDM, Sightings

log = logging.getLogger(__name__)
_STREAM_PREFIX = '{"stream":"'
_NO_STREAM = "(no stream)"


def quote_row(data: dict[str, Any]) -> dict[str, Any]:
    """A ``bookTicker`` message's quote row; the recordings and the live feed read the venue's touch alike.
    ``ts_server`` is None on spot, whose ``bookTicker`` carries no event time (the caller places it)."""
    return {
        "symbol": as_text(data["s"], "symbol"),
        "ts_server": exchange_ns(data["E"]) if "E" in data else None,
        "bid": data["b"],
        "ask": data["a"],
        "bid_qty": data["B"],
        "ask_qty": data["A"],
    }


def trade_row(data: dict[str, Any]) -> dict[str, Any]:
    """A ``trade`` message's trade row (event time ``E``, as the recordings have always been read)."""
    return {
        "symbol": as_text(data["s"], "symbol"),
        "ts_server": exchange_ns(data["E"]),
        "last_px": data["p"],
        "last_qty": data["q"],
        # m = buyer is maker, so the aggressor sold.
        "last_side": "sell" if data["m"] else "buy",
    }


def _binance_rows(text: str, line: int, ignored: Counter[str], sightings: Sightings) -> Sequence[dict[str, Any]]:
    """The tick of a ``bookTicker`` or ``trade`` message; any other line is counted in ``ignored`` by stream.

    Each tick message also says its market (``sightings``): a futures ``bookTicker`` carries the event time
    ``E`` and a spot one does not; a futures ``trade`` carries the trade type ``X``, a spot one the ``M`` flag.

    The stream name is matched exactly (``<symbol>@bookTicker``), not as a substring of the frame, so that no
    other stream (``markPrice@1s``, ``aggTrade``, depth) can be taken for one we read. Matching works on the
    frame text in place, as most lines are ticks and this runs once per line. Ignored lines are counted by the
    stream name after the symbol (``depth@0ms``, ``markPrice@1s``), frames outside the combined-stream envelope
    (the REST depth snapshot) as ``_NO_STREAM``.
    """
    name_end = max(text.find('"', len(_STREAM_PREFIX)), 0) if text.startswith(_STREAM_PREFIX) else 0
    if text.endswith("@bookTicker", 0, name_end):
        data = json.loads(text)["data"]
        if "E" in data:
            sightings.saw(BINANCE_USDM, line, "a bookTicker with an event time E (futures only)")
        else:
            sightings.saw(BINANCE_SPOT, line, "a bookTicker without an event time E (spot)")
        return (quote_row(data),)
    if text.endswith("@trade", 0, name_end):
        data = json.loads(text)["data"]
        if "X" in data:
            sightings.saw(BINANCE_USDM, line, "a trade with a trade type X (futures only)")
        elif "M" in data:
            sightings.saw(BINANCE_SPOT, line, "a trade with the M flag (spot only)")
        return (trade_row(data),)
    name = text[len(_STREAM_PREFIX) : name_end]
    ignored[name.partition("@")[2] or name or _NO_STREAM] += 1
    return ()


def read_binance(paths: Sequence[Path], venue: Venue | None = None) -> pd.DataFrame:
    """``bookTicker`` -> quote ticks, ``trade`` -> trade ticks, from hftbacktest recordings played back to back.

    Every other stream (depth diffs, ``markPrice``, ...) and the REST snapshot are ignored and counted in the log.
    Each file's local stamps are read in the unit its first stamp shows (see ``stamped._local_ns``).
    Exchange time is ``E`` (event time). Spot ``bookTicker`` has no ``E``: its exchange time is the local time
    shifted by the median (E - local) of the same file's trades, i.e. the recorder's clock offset.

    Each file's venue is the market its messages show (USD-M or spot, see ``_binance_rows``; the folder a file
    sits in is not read, as files are renamed and moved), or ``venue`` when it agrees (``venues.Sightings``).
    """
    rows: list[dict[str, Any]] = []
    ts_local: list[np.ndarray] = []
    venues: list[str | None] = []
    for path in map(Path, paths):
        ignored: Counter[str] = Counter()
        sightings = Sightings(path, BINANCE_USDM.exchange)
        file_rows, file_local, unit = read_stamped(path, partial(_binance_rows, ignored=ignored, sightings=sightings))
        rows.extend(file_rows)
        ts_local.append(file_local)
        # a file without ticks has nothing to place on a venue
        placed = sightings.venue(venue, "no bookTicker or trade message says spot or USD-M") if file_rows else None
        venues.extend([None if placed is None else venue_code(placed)] * len(file_rows))
        log.info(
            "%s: local timestamps in %s; %d bookTicker/trade messages read (venue %s); ignored by stream: %s",
            path,
            unit,
            len(file_rows),
            "none" if placed is None else placed.code,
            dict(ignored) or "none",
        )
    desc = ", ".join(map(str, paths))
    frame = to_frame(rows, np.concatenate(ts_local) if ts_local else np.empty(0, dtype=np.int64), desc)
    frame[VENUE_FIELD] = pd.Series(venues, dtype=object)
    unknown = frame["ts_server"].isna()
    if unknown.any():
        offsets = (frame["ts_server"] - frame["ts_local"]).dropna().to_numpy(dtype="int64")
        offset = int(np.median(offsets)) if len(offsets) else 0
        frame.loc[unknown, "ts_server"] = frame.loc[unknown, "ts_local"] + offset
    return finish(frame, desc)
