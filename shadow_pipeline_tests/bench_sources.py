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


def fill_ingest_stream(client: redis.Redis, stream: str) -> tuple[str, int]:
    files = [MARKET_DATA / f"binance_hftbacktest/usdm/{s}_20240808.gz" for s in ("btcusdt", "ethusdt")]
    if all(f.exists() for f in files):
        name, frame = "Binance BTCUSDT+ETHUSDT 2024-08-08", read_binance(files)
    else:
        name, frame = source()
    client.delete(stream)
    return name, replay(client, [frame], ReplayOptions(stream=stream, maxlen=None, progress=False)).entries
