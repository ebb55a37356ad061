"""Helpers for ingest tests: fill a stream from a source, and read back everything a landing zone holds."""

from __future__ import annotations

import pandas as pd
import redis

from shadow_pipeline.domain.faults import FaultSpec
from shadow_pipeline.feed.replay import ReplayOptions, ReplayResult, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.ingest.landing import Kind, LandingStore, entry_order


def replay_synthetic(
    client: redis.Redis,
    stream: str,
    seconds: float,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    faults: FaultSpec | None = None,
    start: str | None = None,
) -> ReplayResult:
    source = open_source(
        "synthetic", symbols=symbols, seconds=seconds, seed=11, start=pd.Timestamp(start) if start else None
    )
    options = ReplayOptions(stream=stream, maxlen=None, faults=faults or FaultSpec(), progress=False)
    return replay(client, source.chunks, options)


def landed(store: LandingStore, kind: Kind = Kind.TICKS) -> pd.DataFrame:
    """Every row of the landing zone, one per entry id, in stream order."""
    parts = [store.read(kind, hour, symbol) for hour, symbol in store.partitions(kind)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True)
    order = entry_order(frame["entry_id"]).sort_values(["entry_ms", "entry_seq"]).index
    return frame.iloc[order].reset_index(drop=True)
