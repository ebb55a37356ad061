"""`make bench` rows "ingest per consumer vs redis-py loop", at 1 and 2 consumers of one group, on two streams.

The recordings as they are (155,470 entries: 8 batches, so the drain's fill and end, which overlap nothing, weigh
in), and a steady-state stream: the recordings repeated to ``STEADY_ENTRIES``, as a consumer that serves
continuously sees them, where the per-drain fixed costs (first read, last landing, settling) are spread thin.

Each consumer runs in its own process (as deployed: one consumer per process or pod), so two consumers do not
share a GIL; the processes are started and warmed before the clock starts, so the ratio is the read path's,
not interpreter start-up. The baseline runs the same number of redis-py XREADGROUP+XACK loops, also in
processes, against the same stream. Each round is a pair, the baseline and ours back to back (which goes first
alternates), and the row's ratio is the median of the pairs' ratios: a slow spell of a shared machine then hits
both sides of a pair alike, and one lucky round of either side cannot make the row (a best-of per side could pair
ours in a quiet spell with the baseline in a busy one). Peak memory comes from one more, untimed round under
tracemalloc.

Redis serves a group on one thread. ``redis_us_per_entry`` is that thread's CPU per entry during each side's
rounds (``INFO cpu``, main thread), ``redis_ceiling_per_s`` the entries a second it could deliver and take acks for
at 100 % of a core at our rounds' cost, shared by the group's consumers, and ``ratio_bound`` the ratio that ceiling
allows per consumer against the row's baseline: no consumer of one group on one Redis can pass it. It is why
several consumers scale only with shards on Redis nodes of their own (docs/ingest.md, "Speed per consumer").
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import redis

from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline_tests.bench_sources import REPEATS, fill_ingest_stream

CONSUMER_COUNTS = (1, 2)
BASELINE_COUNT = 2000  # the raw loop's COUNT, as in the "stream -> normalized_ticks" row
STEADY_ENTRIES = 1_000_000
WARM_ENTRIES = 5_000
STEADY_REPEATS = 5  # a round of the baseline takes 10-30 s there; 5 pairs, so that the median is one of 5


def redis_py_loop(url: str, stream: str, group: str, consumer: str) -> int:
    """The baseline: what a plain redis-py consumer does per batch (read, then ack the batch's ids)."""
    client = redis.Redis.from_url(url)
    read = 0
    while reply := client.xreadgroup(group, consumer, {stream: ">"}, count=BASELINE_COUNT):
        ids = [entry[0] for entry in reply[0][1]]  # type: ignore[index]
        client.xack(stream, group, *ids)  # type: ignore[arg-type]
        read += len(ids)
    return read


def tick_consumer(url: str, stream: str, group: str, consumer: str, landing: str) -> int:
    """One ingest consumer draining its share of the group into the shared landing zone."""
    options = IngestOptions(stream=stream, group=group, consumer=consumer)
    return TickConsumer(LandingStore(landing), options, url).drain().landed_total


def traced_tick_consumer(url: str, stream: str, group: str, consumer: str, landing: str) -> tuple[int, float]:
    """:func:`tick_consumer` under tracemalloc (numpy and pandas buffers are traced too): its peak MB. Untimed:
    tracing slows every allocation."""
    tracemalloc.start()
    try:
        return tick_consumer(url, stream, group, consumer, landing), tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _warm(url: str, stream: str, everyone: threading.Barrier) -> None:
    """Each worker process, once, before any clock: a drain and a redis-py loop on ``stream`` (a copy of the bench
    stream's first entries), so that first-call costs fall outside the timed rounds, on both sides alike: numba
    loads each compiled function from its cache at its first call, not at import, and Arrow's Parquet writer and
    the guard's script start once. A first drain in a process whose imports alone were done took 1.43 s against
    1.03 s for the next ones (155,470 entries). Then it waits for the other workers: a round started while one was
    still warming would time its warm-up."""
    client = redis.Redis.from_url(url)
    for run in (redis_py_loop, tick_consumer):
        group = f"warm-{os.getpid()}-{run.__name__}"
        client.xgroup_create(stream, group, id="0")
        with tempfile.TemporaryDirectory() as landing:
            run(url, stream, group, "c0", *([landing] if run is tick_consumer else []))
        client.xgroup_destroy(stream, group)
    everyone.wait(timeout=600)


def _warm_stream(client: redis.Redis, stream: str) -> str:
    """A stream of ``stream``'s first ``WARM_ENTRIES`` entries, for :func:`_warm`."""
    warm = f"{stream}:warm"
    client.delete(warm)
    pipe = client.pipeline(transaction=False)
    for _, fields in client.xrange(stream, count=WARM_ENTRIES) or []:
        pipe.xadd(warm, fields)  # type: ignore[arg-type]
    pipe.execute()
    return warm


def _started() -> None:
    """A job that a worker runs only once its :func:`_warm` has passed the barrier, i.e. all workers are warm."""


def _redis_cpu(client: redis.Redis) -> float:
    """CPU seconds of the Redis server's main thread, the one that serves every command."""
    cpu: dict[str, float] = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


def _round(
    client: redis.Redis, pool: ProcessPoolExecutor, jobs: list[tuple[Callable[..., int], tuple[str, ...]]], entries: int
) -> tuple[float, float]:
    """Entries per second of ``jobs`` started at once on a fresh group (together they read the stream once), and
    the Redis main thread's CPU microseconds per entry meanwhile."""
    redis_before, started = _redis_cpu(client), time.perf_counter()
    total = sum(future.result() for future in [pool.submit(run, *args) for run, args in jobs])
    seconds, redis_seconds = time.perf_counter() - started, _redis_cpu(client) - redis_before
    assert total == entries, (total, entries)  # every entry read (and, for ours, landed) exactly once
    return total / seconds, redis_seconds / total * 1e6


def bench_per_consumer(
    client: redis.Redis, url: str, stream: str, entries: int, name: str, repeats: int, label: str = ""
) -> list[dict[str, object]]:
    """``repeats`` paired rounds for each consumer count (ours and the redis-py loops, same stream, back to back);
    the row's ratio is the median of the pairs' ratios, its rates the medians of each side's rounds."""
    rows: list[dict[str, object]] = []
    groups = iter(range(1_000_000))
    workers, context = max(CONSUMER_COUNTS), multiprocessing.get_context("spawn")
    warm_stream = _warm_stream(client, stream)
    warmed = (url, warm_stream, context.Barrier(workers))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_warm, initargs=warmed) as pool:
        for started in [pool.submit(_started) for _ in range(workers)]:  # one each: a worker is spawned per submit
            started.result()
        client.delete(warm_stream)
        for count in CONSUMER_COUNTS:
            base_rates: list[float] = []
            our_rates: list[float] = []
            redis_us: dict[bool, list[float]] = {False: [], True: []}
            for pair in range(repeats):
                for ours in (False, True) if pair % 2 == 0 else (True, False):
                    group = f"per-consumer{next(groups)}"
                    client.xgroup_create(stream, group, id="0")
                    with tempfile.TemporaryDirectory() as landing:
                        jobs: list[tuple[Callable[..., int], tuple[str, ...]]] = [
                            (tick_consumer, (url, stream, group, f"c{c}", landing))
                            if ours
                            else (redis_py_loop, (url, stream, group, f"c{c}"))
                            for c in range(count)
                        ]
                        rate, per_entry = _round(client, pool, jobs, entries)
                        (our_rates if ours else base_rates).append(rate)
                        redis_us[ours].append(per_entry)
                    client.xgroup_destroy(stream, group)
            ratios = [o / b for o, b in zip(our_rates, base_rates, strict=True)]
            # Every consumer of one group is served by the one Redis thread: at 100 % of a core it delivers and
            # takes acks for 1 / (its CPU per entry) entries a second, shared by the group's consumers. No consumer
            # of the group can pass that, whatever its own speed: the ratio it bounds, against this baseline.
            ceiling = 1e6 / statistics.median(redis_us[True])
            baseline_per_consumer = statistics.median(base_rates) / count
            peak_mb = _peak_mb(client, pool, url, stream, f"per-consumer-memory{count}", count)
            rows.append(
                {
                    "benchmark": f"ingest per consumer vs redis-py loop{label} ({count} consumer{'s' * (count > 1)})",
                    "input": f"{name}, {entries} entries",
                    "baseline": f"{count} redis-py XREADGROUP COUNT {BASELINE_COUNT} + XACK loop(s), one process each",
                    "baseline_per_s": round(statistics.median(base_rates) / count),
                    "ours_per_s": round(statistics.median(our_rates) / count),
                    "ratio": round(statistics.median(ratios), 3),
                    "pair_ratios": " ".join(f"{r:.2f}" for r in ratios),
                    "redis_us_per_entry": f"ours {statistics.median(redis_us[True]):.2f}, "
                    f"baseline {statistics.median(redis_us[False]):.2f}",
                    "redis_ceiling_per_s": round(ceiling),
                    "ratio_bound": round(ceiling / count / baseline_per_consumer, 2),
                    "peak_memory": f"{peak_mb:.1f} MB per consumer (largest)",
                }
            )
    return rows


def _peak_mb(client: redis.Redis, pool: ProcessPoolExecutor, url: str, stream: str, group: str, count: int) -> float:
    """The largest peak of ``count`` consumers draining the stream together, in an untimed round."""
    client.xgroup_create(stream, group, id="0")
    with tempfile.TemporaryDirectory() as landing:
        runs = [pool.submit(traced_tick_consumer, url, stream, group, f"c{c}", landing) for c in range(count)]
        peaks = [run.result()[1] for run in runs]
    client.xgroup_destroy(stream, group)
    return max(peaks)


def bench_steady_state(client: redis.Redis, url: str, repeats: int = STEADY_REPEATS) -> list[dict[str, object]]:
    """The same rows on the recordings repeated to ``STEADY_ENTRIES``, on a stream of their own."""
    stream = "bench:per-consumer-steady"
    name, entries = fill_ingest_stream(client, stream, at_least=STEADY_ENTRIES)
    try:
        return bench_per_consumer(client, url, stream, entries, name, repeats, label=", steady state")
    finally:
        client.delete(stream)


def main() -> None:
    """``python -m shadow_pipeline_tests.bench_consumers``: these rows alone, on an embedded Redis."""
    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args()  # --help
    server = start_server()
    try:
        client = redis.Redis.from_url(server.url)
        name, entries = fill_ingest_stream(client, "bench:per-consumer")
        rows = bench_per_consumer(client, server.url, "bench:per-consumer", entries, name, REPEATS)
        client.delete("bench:per-consumer")
        rows += bench_steady_state(client, server.url)
    finally:
        server.stop()
    print(pd.DataFrame(rows, dtype=object).to_markdown(index=False))


if __name__ == "__main__":
    main()
