"""Quote and trade rows into tick entries as they arrive: the streaming form of ``readers.frames.finish``.

A trade tick carries the touch last quoted for its instrument; a trade before the instrument's first quote is
held and published, with that quote's touch, just before it, which is what ``finish`` gives a recording (it
back-fills the first quote's touch), so a live feed and the replay of its recording agree tick for tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.feed.readers.frames import NO_TRADE, TOUCH

MAX_HELD = 10_000  # trades held per instrument before its first quote; more are dropped and counted


@dataclass(frozen=True)
class Tick:
    """One entry to XADD: its instrument key (the seq counter's), its fields without ``seq`` in the stream's
    field order (``symbol`` first), and its lag (``ts_local - ts_server``, ns) for the metrics."""

    instrument: str
    fields: list[str]
    lag_ns: int


class TouchCarry:
    """Each instrument's last touch, and the trades waiting for a first one. ``venue`` is the ``venue`` field
    (``frames.venue_code``: None on the default venue, whose entries leave it out)."""

    def __init__(self, venue: str | None) -> None:
        self.venue = venue
        self.touch: dict[str, list[str]] = {}
        self.held: dict[str, list[tuple[dict[str, Any], int]]] = {}
        self.dropped = 0

    def ticks(self, rows: Sequence[dict[str, Any]], ts_local: int) -> list[Tick]:
        out: list[Tick] = []
        for row in rows:
            symbol = row["symbol"]
            if "bid" in row:
                touch = self.touch[symbol] = [row[name] for name in TOUCH]
                for trade, trade_local in self.held.pop(symbol, ()):
                    out.append(self._tick(trade, trade_local, touch, trade))
                out.append(self._tick(row, ts_local, touch, NO_TRADE))
            elif symbol in self.touch:
                out.append(self._tick(row, ts_local, self.touch[symbol], row))
            else:
                held = self.held.setdefault(symbol, [])
                if len(held) < MAX_HELD:
                    held.append((row, ts_local))
                else:
                    self.dropped += 1
        return out

    def _tick(self, row: dict[str, Any], ts_local: int, touch: list[str], trade: dict[str, Any]) -> Tick:
        ts_server = int(row["ts_server"])
        fields = [
            "symbol",
            row["symbol"],
            "ts_server",
            str(ts_server),
            "ts_local",
            str(ts_local),
            *(item for pair in zip(TOUCH, touch, strict=True) for item in pair),
            "last_px",
            trade["last_px"],
            "last_qty",
            trade["last_qty"],
            "last_side",
            trade["last_side"],
        ]
        if self.venue is not None:
            fields += [VENUE_FIELD, self.venue]
        return Tick(instrument_key(row["symbol"], self.venue), fields, ts_local - ts_server)
