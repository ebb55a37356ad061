"""When a window closes: when everything its KPIs need has arrived.

That is its end plus the markout horizon (net edge needs the mid ``markout_horizon_s`` after each fill), plus the
reorder watermark: a tick is final once a tick of its instrument more than the watermark newer has arrived (the
release rule of ``domain.market.reorder.ReorderBuffer``, the ingest's, with the same default). So window ``w`` of
hour ``H`` closes at the arrival that releases a tick at or after ``end_w + horizon``, and the hour's last windows
at the arrival that releases a tick of a later hour: from then on the hour's KPIs of those windows cannot change
(``iteration_kpis`` is causal), and the live value is the batch's.

Pure code over arrays of exchange times in arrival order; the service keeps one :class:`Frontier` per instrument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shadow_pipeline.domain.market.windows import HOUR_NS

_NEVER = np.iinfo(np.int64).min


@dataclass
class Frontier:
    """One instrument's release state: the newest exchange time seen, the ticks still held by the watermark, and
    the newest released exchange time (the frontier that closes windows)."""

    watermark_ns: int
    newest: int = _NEVER
    released: int = _NEVER
    held: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def advance(self, ts: np.ndarray) -> np.ndarray:
        """Take a batch of arrivals (exchange times, arrival order); return the released frontier after each."""
        ts = np.asarray(ts, dtype=np.int64)
        if len(ts) == 0:
            return np.empty(0, dtype=np.int64)
        newest = np.maximum.accumulate(np.concatenate(([self.newest], ts)))[1:]
        candidates = np.concatenate((self.held, ts))
        arrived = np.concatenate((np.zeros(len(self.held), dtype=np.int64), np.arange(len(ts))))
        # a tick is released at the first arrival (not before its own) after which the newest is more than the
        # watermark newer than it: ts < newest - watermark, ReorderBuffer's rule
        at = np.maximum(np.searchsorted(newest, candidates + self.watermark_ns, side="right"), arrived)
        released = at < len(ts)
        reached = np.full(len(ts), _NEVER, dtype=np.int64)
        np.maximum.at(reached, at[released], candidates[released])
        frontier: np.ndarray = np.maximum.accumulate(np.maximum(reached, self.released))
        self.newest = int(newest[-1])
        self.released = int(frontier[-1])
        self.held = candidates[~released]
        return frontier


def thresholds(first_window: int, windows: int, window_ns: int, horizon_ns: int, hour_end_ns: int) -> np.ndarray:
    """The released exchange time that closes each of the hour's windows ``first_window, ...`` (in units of
    ``window_ns`` since the epoch): its end plus the horizon, at most the hour's end (a tick of a later hour)."""
    ends = (first_window + np.arange(1, windows + 1, dtype=np.int64)) * window_ns
    return np.minimum(ends + horizon_ns, hour_end_ns)


def hour_end(ts_ns: int) -> int:
    return (ts_ns // HOUR_NS + 1) * HOUR_NS


def closing_arrivals(frontier: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """For each threshold in ``needed``, the arrival of the batch (index into ``frontier``) that closed it, or
    ``len(frontier)`` when it is still open."""
    return np.searchsorted(frontier, needed, side="left")
