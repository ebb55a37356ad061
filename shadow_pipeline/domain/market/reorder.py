"""The reorder buffer: puts late ticks back in exchange-time order, with bounded memory.

Event time only: a tick is released once a tick of its symbol more than ``watermark_ns`` newer (by
``ts_server``) has been seen, or when the buffer is flushed at the end of a drain; the wall clock is never
consulted, so a replay at any speed gives the same result. Each symbol holds at most ``capacity`` ticks;
on overflow the oldest are dropped and reported (backpressure), never silently lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DEFAULT_WATERMARK_NS = 40_000_000
DEFAULT_CAPACITY = 4000


@dataclass(frozen=True)
class Release:
    """Ticks leaving the buffer: ``released`` in (ts_server, seq) order, ``dropped`` by backpressure."""

    released: pd.DataFrame
    dropped: pd.DataFrame
    reordered: dict[str, int] = field(default_factory=dict)  # late arrivals put back in order, per symbol


class ReorderBuffer:
    """Per-symbol event-time buffer over typed tick frames (any extra columns ride along)."""

    def __init__(self, watermark_ns: int = DEFAULT_WATERMARK_NS, capacity: int = DEFAULT_CAPACITY) -> None:
        if watermark_ns < 0 or capacity < 1:
            raise ValueError(f"need watermark_ns >= 0 and capacity >= 1, got {watermark_ns}, {capacity}")
        self.watermark_ns = watermark_ns
        self.capacity = capacity
        self._held: pd.DataFrame | None = None
        self._newest: dict[str, int] = {}

    def __len__(self) -> int:
        return 0 if self._held is None else len(self._held)

    def held(self) -> pd.DataFrame:
        """The ticks waiting for release (not to be modified)."""
        return pd.DataFrame() if self._held is None else self._held

    def push(self, ticks: pd.DataFrame) -> Release:
        """Add a batch (in arrival order); return what the watermark releases and what overflow drops."""
        if ticks.empty:
            return Release(ticks.iloc[0:0], ticks.iloc[0:0])
        reordered = self._count_late(ticks["symbol"].to_numpy(), ticks["ts_server"].to_numpy(dtype=np.int64))
        held = ticks if self._held is None else pd.concat([self._held, ticks], ignore_index=True)
        codes, symbols = pd.factorize(held["symbol"])
        newest = np.array([self._newest[s] for s in symbols], dtype=np.int64)[codes]
        ts = held["ts_server"].to_numpy(dtype=np.int64)
        due = ts < newest - self.watermark_ns
        due_rows = np.flatnonzero(due)
        released = held.take(due_rows[np.lexsort((held["seq"].to_numpy()[due_rows], ts[due_rows]))])
        waiting_rows = np.flatnonzero(~due)
        waiting_codes = codes[waiting_rows]
        dropped_rows = np.empty(0, dtype=np.int64)
        if np.bincount(waiting_codes, minlength=len(symbols)).max(initial=0) > self.capacity:
            # Oldest first within each symbol; everything past the newest `capacity` of a symbol overflows.
            order = waiting_rows[np.lexsort((ts[waiting_rows], waiting_codes))]
            from_newest = pd.Series(codes[order]).groupby(codes[order]).cumcount(ascending=False).to_numpy()
            dropped_rows = np.sort(order[from_newest >= self.capacity])
            waiting_rows = np.setdiff1d(waiting_rows, dropped_rows, assume_unique=True)
        self._held = held.take(waiting_rows).reset_index(drop=True)
        dropped = held.take(dropped_rows[np.lexsort((ts[dropped_rows],))]).reset_index(drop=True)
        return Release(released.reset_index(drop=True), dropped, reordered)

    def _count_late(self, symbols: np.ndarray, ts: np.ndarray) -> dict[str, int]:
        """Arrivals older than the newest tick of their symbol seen before them; updates the newest seen."""
        reordered: dict[str, int] = {}
        for symbol in pd.unique(symbols):
            own = ts[symbols == symbol]
            seen = self._newest.get(symbol, np.iinfo(np.int64).min)
            prior = np.maximum.accumulate(np.concatenate(([seen], own)))[:-1]
            late = int((own < prior).sum())
            if late:
                reordered[str(symbol)] = late
            self._newest[str(symbol)] = int(max(seen, own.max()))
        return reordered

    def flush(self) -> pd.DataFrame:
        """Everything held, in (ts_server, seq) order (end of a drain, or shutdown)."""
        held = self._held
        self._held = None
        if held is None:
            return pd.DataFrame()
        return held.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)
