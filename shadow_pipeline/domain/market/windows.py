"""Time windows of exchange time: the hourly partitions of ticks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

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


def closed_days(
    pairs: Iterable[tuple[str, str]],
    newest_ns: Mapping[str, int],
    stream_of: Callable[[str], str],
    group_of: Mapping[str, str],
    watermark_ns: int,
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(day, group) -> its (hour, instrument) ``pairs``, for the days whose last hour has closed by the event time of
    every stream that holds an instrument of the group (``newest_ns`` by stream). A (day, group) partition runs
    once, so it waits for the slowest shard of its group: a lagging shard's instrument would otherwise miss the
    day's run. Pairs of instruments without a group are left out."""
    by_day: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for hour, symbol in pairs:
        if symbol in group_of:
            by_day.setdefault((hour[:10], group_of[symbol]), []).append((hour, symbol))
    streams: dict[str, set[str]] = {}
    for symbol, group in group_of.items():
        streams.setdefault(group, set()).add(stream_of(symbol))
    closed = {}
    for (day, group), members in sorted(by_day.items()):
        last = f"{day}-23:00"
        if all(closed_hours({last}, newest_ns.get(stream, -1), watermark_ns) for stream in streams[group]):
            closed[(day, group)] = sorted(members)
    return closed
