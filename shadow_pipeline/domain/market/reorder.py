"""The reorder buffer: puts late ticks back in exchange-time order, with bounded memory.

Event time only: a tick is released once a tick of its symbol more than ``watermark_ns`` newer (by
``ts_server``) has been seen, or when the buffer is flushed at the end of a drain; the wall clock is never
consulted, so a replay at any speed gives the same result. Each symbol holds at most ``capacity`` ticks;
on overflow the oldest are dropped and reported (backpressure), never silently lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
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


@numba.njit(cache=True)
def _late_arrivals(codes: np.ndarray, ts: np.ndarray, newest: np.ndarray, late: np.ndarray) -> None:
    """Count, per symbol code, arrivals older than the newest tick of their symbol seen before them; ``newest``
    (per code) is updated in place. One pass, whatever the number of symbols in the batch."""
    for i in range(len(codes)):
        code = codes[i]
        if ts[i] < newest[code]:
            late[code] += 1
        else:
            newest[code] = ts[i]


class ReorderBuffer:
    """Per-symbol event-time buffer over typed tick frames (any extra columns ride along).

    Symbols get small integer codes on first sight, kept for the buffer's life, so that a batch's symbols are
    hashed once (one factorize of the batch) and everything else runs on the codes."""

    def __init__(self, watermark_ns: int = DEFAULT_WATERMARK_NS, capacity: int = DEFAULT_CAPACITY) -> None:
        if watermark_ns < 0 or capacity < 1:
            raise ValueError(f"need watermark_ns >= 0 and capacity >= 1, got {watermark_ns}, {capacity}")
        self.watermark_ns = watermark_ns
        self.capacity = capacity
        self._held: pd.DataFrame | None = None
        self._held_codes: np.ndarray = np.empty(0, dtype=np.int64)  # the symbol code of each held row
        self._code: dict[str, int] = {}
        self._symbols: list[str] = []  # code -> symbol
        self._newest = np.empty(0, dtype=np.int64)  # code -> newest ts_server seen

    def __len__(self) -> int:
        return 0 if self._held is None else len(self._held)

    def held(self) -> pd.DataFrame:
        """The ticks waiting for release (not to be modified)."""
        return pd.DataFrame() if self._held is None else self._held

    def push(self, ticks: pd.DataFrame) -> Release:
        """Add a batch (in arrival order); return what the watermark releases and what overflow drops."""
        if ticks.empty:
            return Release(ticks.iloc[0:0], ticks.iloc[0:0])
        batch_codes = self._codes_of(ticks["symbol"].to_numpy())
        reordered = self._count_late(batch_codes, ticks["ts_server"].to_numpy(dtype=np.int64))
        if self._held is None:
            held, codes = ticks.reset_index(drop=True), batch_codes
        else:
            held = pd.concat([self._held, ticks], ignore_index=True)
            codes = np.concatenate([self._held_codes, batch_codes])
        ts = held["ts_server"].to_numpy(dtype=np.int64)
        due = ts < self._newest[codes] - self.watermark_ns
        due_rows = np.flatnonzero(due)
        released = held.take(due_rows[np.lexsort((held["seq"].to_numpy()[due_rows], ts[due_rows]))])
        waiting_rows = np.flatnonzero(~due)
        waiting_codes = codes[waiting_rows]
        dropped = held.iloc[0:0]
        if np.bincount(waiting_codes, minlength=len(self._symbols)).max(initial=0) > self.capacity:
            # Oldest first within each symbol; everything past the newest `capacity` of a symbol overflows.
            order = waiting_rows[np.lexsort((ts[waiting_rows], waiting_codes))]
            from_newest = pd.Series(codes[order]).groupby(codes[order]).cumcount(ascending=False).to_numpy()
            dropped_rows = np.sort(order[from_newest >= self.capacity])
            waiting_rows = np.setdiff1d(waiting_rows, dropped_rows, assume_unique=True)
            dropped = held.take(dropped_rows[np.lexsort((ts[dropped_rows],))]).reset_index(drop=True)
        self._held = held.take(waiting_rows).reset_index(drop=True)
        self._held_codes = codes[waiting_rows]
        return Release(released.reset_index(drop=True), dropped, reordered)

    def _codes_of(self, symbols: np.ndarray) -> np.ndarray:
        """Each row's symbol code; a symbol seen first gets the next one."""
        positions, uniques = pd.factorize(symbols)
        for symbol in uniques:
            if symbol not in self._code:
                self._code[symbol] = len(self._symbols)
                self._symbols.append(str(symbol))
        if len(self._newest) < len(self._symbols):
            grown = np.full(len(self._symbols), np.iinfo(np.int64).min, dtype=np.int64)
            grown[: len(self._newest)] = self._newest
            self._newest = grown
        return np.array([self._code[s] for s in uniques], dtype=np.int64)[positions]

    def _count_late(self, codes: np.ndarray, ts: np.ndarray) -> dict[str, int]:
        """Arrivals older than the newest tick of their symbol seen before them; updates the newest seen."""
        late = np.zeros(len(self._symbols), dtype=np.int64)
        _late_arrivals(codes, ts, self._newest, late)
        return {self._symbols[code]: int(late[code]) for code in np.flatnonzero(late)}

    def flush(self) -> pd.DataFrame:
        """Everything held, in (ts_server, seq) order (end of a drain, or shutdown)."""
        held = self._held
        self._held, self._held_codes = None, np.empty(0, dtype=np.int64)
        if held is None:
            return pd.DataFrame()
        return held.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)
