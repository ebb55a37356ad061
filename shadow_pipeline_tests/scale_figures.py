"""The measured inputs of docs/scaling.md's arithmetic: `python -m shadow_pipeline_tests.scale_figures`.

Three figures the sizing rests on, each measured here rather than assumed:
- ticks per second per instrument as the stream carries them (mean, 99th percentile and peak of 1-second counts),
  from the recorded Binance days when ``../shared`` is present (none of them is tuned to: they only size);
- Redis memory per stream entry of the tick schema (``MEMORY USAGE`` of a filled stream over its length), on the
  synthetic market and, when present, the recordings;
- Redis server CPU per entry for XADD (the producer's pipelines), XREADGROUP and XACK (``INFO commandstats``);
- shadow CPU per tick (simulate + per-window KPIs, steady state after the JIT), on one tiled hour of BTCUSDT.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.feed.readers.binance import read_binance
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline_tests.bench import _tiled_hour
from shadow_pipeline_tests.conftest import MARKET_DATA

RECORDINGS = [
    f"binance_hftbacktest/{market}/{symbol}_20240808.gz"
    for market in ("usdm", "spot")
    for symbol in ("btcusdt", "ethusdt")
]


def tick_rates() -> list[dict[str, object]]:
    """Per recorded instrument: ticks per second of exchange-receive time (the local clock, present on every
    line), mean over the file and the 99th percentile and maximum of 1-second counts."""
    rows = []
    for relative in RECORDINGS:
        path = MARKET_DATA / relative
        if not path.exists():
            print(f"tick rates: {path} not found (set SHADOW_MARKET_DATA): skipped")
            continue
        seconds = read_binance([path])["ts_local"].to_numpy(dtype=np.int64) // 1_000_000_000
        _, counts = np.unique(seconds, return_counts=True)
        span = int(seconds[-1] - seconds[0]) + 1
        rows.append(
            {
                "recording": relative,
                "ticks": len(seconds),
                "mean_per_s": round(len(seconds) / span),
                "p99_1s": round(float(np.percentile(counts, 99))),
                "max_1s": int(counts.max()),
            }
        )
    return rows


def stream_bytes_per_entry() -> list[dict[str, object]]:
    """Redis memory per entry of a stream filled by the project's own producer (``replay``), no MAXLEN."""
    sources = {"synthetic BTCUSDT+ETHUSDT 10 min": pd.concat(list(generate(["BTCUSDT", "ETHUSDT"], 600, seed=1)))}
    usdm = [MARKET_DATA / f"binance_hftbacktest/usdm/{s}_20240808.gz" for s in ("btcusdt", "ethusdt")]
    if all(path.exists() for path in usdm):
        sources["recorded Binance USD-M BTCUSDT+ETHUSDT"] = read_binance(usdm)
    server = start_server()
    client = redis.Redis.from_url(server.url)
    rows = []
    try:
        for name, frame in sources.items():
            client.delete("scale:ticks")
            client.config_resetstat()
            entries = replay(client, [frame], ReplayOptions(stream="scale:ticks", maxlen=None, progress=False)).entries
            usage = int(client.memory_usage("scale:ticks", samples=0) or 0)
            rows.append(
                {"source": name, "entries": entries, "bytes_per_entry": round(usage / entries, 1), **_server_us(client)}
            )
    finally:
        client.close()
        server.stop()
    return rows


def _server_us(client: redis.Redis) -> dict[str, float]:
    """Microseconds of Redis CPU per entry: the XADDs just made, then one drain of the stream by a group in batches
    of 2,000 (read, then ack), from the server's own command statistics (reset first, so only these count)."""
    entries = int(client.xlen("scale:ticks"))
    xadd = client.info("commandstats").get("cmdstat_xadd", {}).get("usec", 0)
    client.config_resetstat()
    client.xgroup_create("scale:ticks", "scale", id="0")
    while reply := client.xreadgroup("scale", "c", {"scale:ticks": ">"}, count=2000):
        client.xack("scale:ticks", "scale", *[entry[0] for entry in reply[0][1]])  # type: ignore[index,arg-type]
    stats = client.info("commandstats")
    client.config_resetstat()
    per = {name: stats.get(f"cmdstat_{name}", {}).get("usec", 0) / entries for name in ("xreadgroup", "xack")}
    return {"xadd_us": round(xadd / entries, 2), **{f"{k}_us": round(v, 2) for k, v in per.items()}}


def shadow_cpu_per_tick() -> dict[str, object]:
    """CPU seconds of the shadow's core (simulate, then 5 s window KPIs) per tick, median of 3 after a warm-up."""
    name, ticks = _tiled_hour()
    params, thresholds = resolve(load_profiles(), "moderate", "BTCUSDT")
    iteration_kpis(ticks, simulate(ticks, params), params, thresholds, 5.0)  # JIT compile outside the timing
    runs = []
    for _ in range(3):
        start = time.process_time()
        iteration_kpis(ticks, simulate(ticks, params), params, thresholds, 5.0)
        runs.append(time.process_time() - start)
    cpu = float(np.median(runs))
    return {
        "input": f"{name} = {len(ticks):,} ticks",
        "cpu_s": round(cpu, 3),
        "ticks_per_cpu_s": round(len(ticks) / cpu),
    }


def main() -> None:
    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args()  # --help
    print(pd.DataFrame(tick_rates()).to_string(index=False))
    print(pd.DataFrame(stream_bytes_per_entry()).to_string(index=False))
    print(shadow_cpu_per_tick())


if __name__ == "__main__":
    main()
