"""Time windows of exchange time: the hourly partitions of ticks."""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR_NS = 3_600_000_000_000
HOUR_KEY_FORMAT = "%Y-%m-%d-%H:00"  # Dagster's hourly partition key format


def hour_keys(ts_ns: np.ndarray | pd.Series) -> np.ndarray:
    """Partition key of each exchange time (``2024-08-09-00:00``), UTC."""
    starts = (np.asarray(ts_ns, dtype=np.int64) // HOUR_NS) * HOUR_NS
    unique, inverse = np.unique(starts, return_inverse=True)
    labels = pd.to_datetime(unique, utc=True).strftime(HOUR_KEY_FORMAT).to_numpy(dtype=object)
    return labels[inverse]


def hour_bounds(key: str) -> tuple[int, int]:
    """[start, end) of an hourly partition in ns."""
    start = pd.to_datetime(key, format=HOUR_KEY_FORMAT, utc=True).value
    return int(start), int(start) + HOUR_NS


def closed_hours(hours: set[str], newest_ts_ns: int, watermark_ns: int) -> set[str]:
    """The hours whose window has closed by event time: the newest tick is past their end by the watermark."""
    return {h for h in hours if hour_bounds(h)[1] + watermark_ns <= newest_ts_ns}
