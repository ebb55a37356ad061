"""Quantiles of every prefix of a series, each equal to ``np.quantile`` of that prefix.

The latency KPIs fit clock offsets on the ticks from the frame's start through each window's end (an expanding
fit), so that a live shadow reaches the same figure when the window closes as the hourly batch does. One sort and
a Fenwick tree of counts give every prefix's order statistics in O(n log n); re-sorting each prefix would be
quadratic in the hour's ticks.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _kth(tree: np.ndarray, k: int) -> int:
    """The rank of the ``k``-th smallest (0-based) present element: a descent of the Fenwick tree of counts."""
    position = 0
    step = 1
    while step * 2 < len(tree):
        step *= 2
    remaining = k + 1
    while step:
        following = position + step
        if following < len(tree) and tree[following] < remaining:
            position = following
            remaining -= tree[following]
        step //= 2
    return position  # the element sits at tree index position + 1, i.e. its 0-based rank is position


@numba.njit(cache=True)
def _prefix_quantiles(ordered: np.ndarray, ranks: np.ndarray, ends: np.ndarray, q: float) -> np.ndarray:
    tree = np.zeros(len(ranks) + 1, dtype=np.int64)
    out = np.full(len(ends), np.nan)
    added = 0
    for w in range(len(ends)):
        while added < ends[w]:
            i = ranks[added] + 1
            while i < len(tree):
                tree[i] += 1
                i += i & -i
            added += 1
        if added == 0:
            continue
        # numpy's "linear" method, operation for operation: virtual index (n - 1) * q, then _lerp
        virtual = (added - 1) * q
        below = np.floor(virtual)
        if virtual >= added - 1:
            low = high = ordered[_kth(tree, added - 1)]
        else:
            low = ordered[_kth(tree, int(below))]
            high = ordered[_kth(tree, int(below) + 1)]
        gamma = virtual - below
        diff = high - low
        if gamma >= 0.5:
            out[w] = high - diff * (1 - gamma)
        else:
            out[w] = low + diff * gamma
    return out


def prefix_quantiles(values: np.ndarray, ends: np.ndarray, q: float) -> np.ndarray:
    """``np.quantile(values[:end], q)`` for each ``end`` of the ascending ``ends`` (NaN for an empty prefix),
    bit for bit (integer values keep numpy's integer difference before interpolating)."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(len(values), dtype=np.int64)
    return _prefix_quantiles(values[order], ranks, np.asarray(ends, dtype=np.int64), float(q))
