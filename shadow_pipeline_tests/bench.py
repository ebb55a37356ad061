"""`make bench`: throughput of the project's hot paths, each as a ratio to a baseline measured in the same run.

Never asserted in tests: timings depend on the machine; the ratios are what to compare between commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import redis

from shadow_pipeline.domain.recordings import read_binance
from shadow_pipeline.domain.synthetic import generate
from shadow_pipeline.domain.ticks import FIELDS
from shadow_pipeline.feed.replay import ReplayOptions, number_ticks, replay
from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline_tests.conftest import MARKET_DATA

REPEATS = 3


def _best(run: Callable[[], int]) -> tuple[int, float]:
    """Best of REPEATS: (items, seconds). Best-of filters out the other core's noise."""
    results = [_timed(run) for _ in range(REPEATS)]
    return min(results, key=lambda r: r[1])


def _timed(run: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    items = run()
    return items, time.perf_counter() - started


def _source() -> tuple[str, pd.DataFrame]:
    path = MARKET_DATA / "binance_hftbacktest/usdm/btcusdt_20240808.gz"
    if path.exists():
        return path.name, read_binance([path])
    return "synthetic 10 min BTCUSDT+ETHUSDT", pd.concat(list(generate(["BTCUSDT", "ETHUSDT"], 600, seed=1)))


def bench_replay(client: redis.Redis) -> dict[str, object]:
    name, frame = _source()
    numbered = number_ticks(frame.reset_index(drop=True), {})
    prebuilt = [dict(zip(FIELDS, map(str, row), strict=True)) for row in numbered[list(FIELDS)].to_numpy().tolist()]

    def raw_xadd() -> int:
        client.delete("bench:raw")
        for start in range(0, len(prebuilt), 1000):
            pipe = client.pipeline(transaction=False)
            for fields in prebuilt[start : start + 1000]:
                pipe.xadd("bench:raw", fields)  # type: ignore[arg-type]
            pipe.execute()
        return len(prebuilt)

    def ours() -> int:
        client.delete("bench:replay")
        return replay(client, [frame], ReplayOptions(stream="bench:replay", maxlen=None, progress=False)).entries

    base_n, base_s = _best(raw_xadd)
    our_n, our_s = _best(ours)
    assert base_n == our_n, (base_n, our_n)
    return {
        "benchmark": "replay -> XADD",
        "input": f"{name}, {our_n} entries",
        "baseline": "redis-py pipelined XADD of prebuilt dicts (1000/round trip)",
        "baseline_per_s": round(base_n / base_s),
        "ours_per_s": round(our_n / our_s),
        "ratio": round((our_n / our_s) / (base_n / base_s), 3),
    }


def main() -> None:
    server = start_server()
    try:
        client = redis.Redis.from_url(server.url)
        rows = [bench_replay(client)]
    finally:
        server.stop()
    table = pd.DataFrame(rows)
    print(f"best of {REPEATS} runs each; ratio = ours / baseline throughput (higher is better)")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
