"""Quantiles of every prefix of a series, each equal to ``np.quantile`` of that prefix.

The latency KPIs fit clock offsets on the ticks from the frame's start through each window's end (an expanding
fit), so that a live shadow reaches the same figure when the window closes as the hourly batch does. The quantile
is low (``CLOCK_OFFSET_QUANTILE``, 0.5 %), so a prefix's answer lies among its lowest ``C`` values, ``C`` being
the rank the whole frame needs plus two: those are kept sorted and merged with each window's values below the
current ``C``-th (few, once the prefix is long), which costs about one pass over the frame, as the whole-frame
``np.quantile`` did; a sort of the frame would cost twenty times that. Any ``q`` is exact, a high one just slower.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _merge(low: np.ndarray, count: int, chunk: np.ndarray, into: np.ndarray) -> int:
    """The smallest ``len(into)`` of sorted ``low[:count]`` and sorted ``chunk``, in order, into ``into``."""
    i = j = t = 0
    while t < len(into) and (i < count or j < len(chunk)):
        if j >= len(chunk) or (i < count and low[i] <= chunk[j]):
            into[t] = low[i]
            i += 1
        else:
            into[t] = chunk[j]
            j += 1
        t += 1
    return t


@numba.njit(cache=True)
def _prefix_quantiles(values: np.ndarray, ends: np.ndarray, q: float, keep: int) -> np.ndarray:
    low = np.empty(keep, dtype=values.dtype)
    spare = np.empty(keep, dtype=values.dtype)
    out = np.full(len(ends), np.nan)
    count = 0
    start = 0
    largest = values[0] if len(values) else values.dtype.type(0)
    for w in range(len(ends)):
        end = ends[w]
        if end > start:
            chunk = values[start:end]
            largest = max(largest, chunk.max())
            if count == keep:
                chunk = chunk[chunk < low[keep - 1]]
            if len(chunk) > keep:  # only its lowest ``keep`` can matter: sort those alone
                chunk = np.partition(chunk, keep - 1)[:keep]
            if len(chunk):
                count = _merge(low, count, np.sort(chunk), spare)
                low, spare = spare, low
            start = end
        if end == 0:
            continue
        # numpy's "linear" method, operation for operation: virtual index (n - 1) * q, then _lerp
        virtual = (end - 1) * q
        below = np.floor(virtual)
        if virtual >= end - 1:
            a = b = largest
        else:
            a = low[int(below)]
            b = low[int(below) + 1]
        gamma = virtual - below
        diff = b - a
        out[w] = b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
    return out


def prefix_quantiles(values: np.ndarray, ends: np.ndarray, q: float) -> np.ndarray:
    """``np.quantile(values[:end], q)`` for each ``end`` of the ascending ``ends`` (NaN for an empty prefix),
    bit for bit (integer values keep numpy's integer difference before interpolating)."""
    values = np.asarray(values)
    keep = min(len(values), math.floor(q * (len(values) - 1)) + 2) if len(values) else 1
    return _prefix_quantiles(values, np.asarray(ends, dtype=np.int64), float(q), max(keep, 1))
