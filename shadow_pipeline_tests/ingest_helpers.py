"""Helpers for ingest tests: fill a stream from a source, and read back everything a landing zone holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import redis

from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.feed.replay import ReplayOptions, ReplayResult, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.ingest.landing import Kind, LandingStore, entry_order
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP
from shadow_pipeline.resources import ArtifactsResource, LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.conftest import market_file


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


def replay_binance(client: redis.Redis, stream: str, symbols: tuple[str, ...]) -> None:
    """The recorded Binance USD-M day of ``symbols`` into a fresh ``stream`` (skips when the data is absent)."""
    files = [market_file(f"binance_hftbacktest/usdm/{s.lower()}_20240808.gz") for s in symbols]
    client.delete(stream)
    replay(
        client, open_source("binance", files=files).chunks, ReplayOptions(stream=stream, maxlen=None, progress=False)
    )


def pipeline_resources(
    redis_url: str, stream: str, folder: Path, group: str = CONSUMER_GROUP, artifacts: str = "artifacts"
) -> dict[str, Any]:
    """The resources of every stage, on the real Redis and under ``folder``."""
    return {
        "redis": RedisResource(url=redis_url),
        "tick_stream": TickStreamResource(stream=stream, group=group),
        "landing": LandingResource(base_path=str(folder / "landing")),
        "io_manager": ParquetIOManager(base_path=str(folder / "assets")),
        "artifacts": ArtifactsResource(base_path=str(folder / artifacts)),
    }


def landed(store: LandingStore, kind: Kind = Kind.TICKS) -> pd.DataFrame:
    """Every row of the landing zone, one per entry id, in stream order."""
    parts = [store.read(kind, hour, symbol) for hour, symbol in store.partitions(kind)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True)
    return frame.iloc[entry_order(pa.array(frame["entry_id"]))].reset_index(drop=True)
