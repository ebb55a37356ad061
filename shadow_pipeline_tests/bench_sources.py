"""The bench's market data and round count, shared by ``bench.py`` and ``bench_consumers.py``."""

from __future__ import annotations

import pandas as pd
import redis

from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.feed.recordings import read_binance
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline_tests.conftest import MARKET_DATA

REPEATS = 5


def source() -> tuple[str, pd.DataFrame]:
    path = MARKET_DATA / "binance_hftbacktest/usdm/btcusdt_20240808.gz"
    if path.exists():
        return path.name, read_binance([path])
    return "synthetic 10 min BTCUSDT+ETHUSDT", pd.concat(list(generate(["BTCUSDT", "ETHUSDT"], 600, seed=1)))


def _ingest_source() -> tuple[str, pd.DataFrame]:
    files = [MARKET_DATA / f"binance_hftbacktest/usdm/{s}_20240808.gz" for s in ("btcusdt", "ethusdt")]
    if all(f.exists() for f in files):
        return "Binance BTCUSDT+ETHUSDT 2024-08-08", read_binance(files)
    return source()


def fill_ingest_stream(client: redis.Redis, stream: str, at_least: int = 0) -> tuple[str, int]:
    """The recordings into ``stream``; with ``at_least``, repeated until the stream holds that many entries, each
    copy shifted in time past the previous one (seqs go on: replay numbers them), so that a consumer sees one
    long, ordered feed, as a serving consumer does, rather than the same ticks again."""
    name, frame = _ingest_source()
    copies = max(1, -(-at_least // len(frame)))
    times = frame[["ts_server", "ts_local"]].to_numpy()
    span = int(times.max() - times.min()) + 1_000_000_000
    tiles = [
        frame.assign(ts_server=frame["ts_server"] + k * span, ts_local=frame["ts_local"] + k * span)
        for k in range(copies)
    ]
    if copies > 1:
        name = f"{name} x{copies}, shifted in time"
    client.delete(stream)
    return name, replay(client, tiles, ReplayOptions(stream=stream, maxlen=None, progress=False)).entries
