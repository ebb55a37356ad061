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

from shadow_pipeline.feed.readers.frames import as_text, exchange_ns, finish, to_frame
from shadow_pipeline.feed.readers.stamped import read_stamped

log = logging.getLogger(__name__)
_STREAM_PREFIX = '{"stream":"'
_NO_STREAM = "(no stream)"


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
                "symbol": as_text(data["s"], "symbol"),
                "ts_server": exchange_ns(data["E"]) if "E" in data else None,
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
                "symbol": as_text(data["s"], "symbol"),
                "ts_server": exchange_ns(data["E"]),
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
    Each file's local stamps are read in the unit its first stamp shows (see ``stamped._local_ns``).
    Exchange time is ``E`` (event time). Spot ``bookTicker`` has no ``E``: its exchange time is the local time
    shifted by the median (E - local) of the same file's trades, i.e. the recorder's clock offset.
    """
    rows: list[dict[str, Any]] = []
    ts_local: list[np.ndarray] = []
    for path in map(Path, paths):
        ignored: Counter[str] = Counter()
        file_rows, file_local, unit = read_stamped(path, partial(_binance_rows, ignored=ignored))
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
    frame = to_frame(rows, np.concatenate(ts_local) if ts_local else np.empty(0, dtype=np.int64), desc)
    unknown = frame["ts_server"].isna()
    if unknown.any():
        offsets = (frame["ts_server"] - frame["ts_local"]).dropna().to_numpy(dtype="int64")
        offset = int(np.median(offsets)) if len(offsets) else 0
        frame.loc[unknown, "ts_server"] = frame.loc[unknown, "ts_local"] + offset
    return finish(frame, desc)
