"""The live shadow over a sharded tick stream (docs/ingest.md, "Shards"): one loop per shard that holds its
instruments, each on a thread of its own with its own read position (``live_position_hash`` is per stream), so
a shard whose feed lags delays only its own instruments' windows."""

from __future__ import annotations

import dataclasses
import threading
from functools import partial

import redis

from shadow_pipeline.domain.market.shards import shard_of, shard_streams
from shadow_pipeline.live.metrics import LiveMetrics
from shadow_pipeline.live.shadow_loop import LiveOptions, LiveShadow, LiveSummary
from shadow_pipeline.threads import run_together


def shard_services(client: redis.Redis, options: LiveOptions, shards: int, metrics: LiveMetrics) -> list[LiveShadow]:
    """A live shadow per shard of ``options.stream`` that holds one of ``options.symbols`` (every shard when
    None), each shadowing that shard's instruments only; ``options`` itself with one shard."""
    if shards == 1:
        return [LiveShadow(client, options, metrics)]
    streams = shard_streams(options.stream, shards)
    if options.symbols is None:
        chosen: dict[int, tuple[str, ...] | None] = dict.fromkeys(range(shards))
    else:
        chosen = {}
        for symbol in options.symbols:
            number = shard_of(symbol, shards)
            chosen[number] = (*(chosen.get(number) or ()), symbol)
    return [
        LiveShadow(client, dataclasses.replace(options, stream=streams[number], symbols=symbols), metrics)
        for number, symbols in sorted(chosen.items())
    ]


def run_all(services: list[LiveShadow], stop: threading.Event) -> LiveSummary:
    """Run the services to their end (one on this thread, several on threads); their summaries added. The first
    error one raised is raised here once all have ended (``stop`` is set when one fails, ending the others)."""
    if len(services) == 1:
        return services[0].run(stop)
    run_together([(s.options.stream, partial(s.run, stop)) for s in services], stop)
    total = LiveSummary()
    for service in services:
        for name in ("ticks", "invalid", "late", "published", "already"):
            setattr(total, name, getattr(total, name) + getattr(service.summary, name))
        total.delays_ms += service.summary.delays_ms
    return total
