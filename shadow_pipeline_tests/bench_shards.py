"""`make bench` row "ingest over N shards": entries/s of a drain over 1, 2 and 3 shards of the same ticks, one
consumer per shard, as ratios against the 1-shard figure of the same run (docs/ingest.md, "Shards").

The same synthetic ticks (four instruments on bybit-linear) are replayed once per shard count, each instrument
into its shard. Each consumer runs in its own process, started and warmed before the clock; a round drains every
shard of one count at once on fresh groups; the counts alternate round by round (best of REPEATS), so a slow
spell of a shared machine hits each alike. The row asserts that every entry was landed exactly once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import redis

from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.shards import shard_of, shard_streams
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline_tests.bench_sources import REPEATS

SHARD_COUNTS = (1, 2, 3)
VENUE = "bybit-linear"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")
SECONDS = 300  # of synthetic market


def _drain(url: str, stream: str, group: str, landing: str, consumer: str) -> int:
    """One shard's consumer; its name is its own (a writer sweeps the temporary files of its name)."""
    options = IngestOptions(stream=stream, group=group, consumer=consumer)
    return TickConsumer(LandingStore(landing), options, url).drain().landed_total


def _warm() -> None:
    import shadow_pipeline.ingest.consumer  # noqa: F401  (imports and numba caches load before the clock)


def _fill(client: redis.Redis, base: str, shards: int) -> int:
    for stream in shard_streams(base, shards):
        client.delete(stream)
    source = open_source("synthetic", symbols=SYMBOLS, seconds=SECONDS, seed=7, venue=VENUE)
    return replay(client, source.chunks, ReplayOptions(stream=base, maxlen=None, progress=False, shards=shards)).entries


def bench_shards(client: redis.Redis, url: str, repeats: int = REPEATS) -> list[dict[str, object]]:
    entries = {shards: _fill(client, f"bench:shards{shards}", shards) for shards in SHARD_COUNTS}
    assert len(set(entries.values())) == 1, entries  # the same ticks whatever the count
    best = dict.fromkeys(SHARD_COUNTS, 0.0)
    groups = iter(range(1_000_000))
    with ProcessPoolExecutor(max(SHARD_COUNTS), mp_context=multiprocessing.get_context("spawn")) as pool:
        for warm in [pool.submit(_warm) for _ in range(max(SHARD_COUNTS))]:
            warm.result()
        for _ in range(repeats):
            for shards in SHARD_COUNTS:
                streams = shard_streams(f"bench:shards{shards}", shards)
                group = f"shards{next(groups)}"
                for stream in streams:
                    client.xgroup_create(stream, group, id="0")
                with tempfile.TemporaryDirectory() as landing:
                    started = time.perf_counter()
                    futures = [
                        pool.submit(_drain, url, stream, group, landing, f"bench-s{number}")
                        for number, stream in enumerate(streams)
                    ]
                    landed = sum(future.result() for future in futures)
                    seconds = time.perf_counter() - started
                assert landed == entries[shards], (landed, entries[shards])  # every entry landed exactly once
                best[shards] = max(best[shards], landed / seconds)
                for stream in streams:
                    client.xgroup_destroy(stream, group)
    for shards in SHARD_COUNTS:
        for stream in shard_streams(f"bench:shards{shards}", shards):
            client.delete(stream)
    keys = [instrument_key(symbol, VENUE) for symbol in SYMBOLS]
    return [
        {
            "benchmark": f"ingest over {shards} shard{'s' * (shards > 1)}, one consumer each",
            "input": f"synthetic {len(SYMBOLS)} instruments, {entries[shards]} entries, instruments per shard "
            + "/".join(str(sum(shard_of(k, shards) == n for k in keys)) for n in range(shards)),
            "baseline": "the same ticks in 1 shard, 1 consumer",
            "baseline_per_s": round(best[1]),
            "ours_per_s": round(best[shards]),
            "ratio": round(best[shards] / best[1], 3),
        }
        for shards in SHARD_COUNTS
    ]


def main() -> None:
    """``python -m shadow_pipeline_tests.bench_shards``: these rows alone, on an embedded Redis."""
    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args()  # --help
    server = start_server()
    try:
        rows = bench_shards(redis.Redis.from_url(server.url), server.url)
    finally:
        server.stop()
    print(f"shards: best of {REPEATS} interleaved rounds; ratio = entries/s against 1 shard (higher: better)")
    print(pd.DataFrame(rows, dtype=object).to_markdown(index=False))


if __name__ == "__main__":
    main()
