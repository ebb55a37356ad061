"""Ticks and depth entries on their way to Redis: gathered while frames arrive, written by one task in order.

Receiving must not wait for Redis, and Redis should not be asked once per tick: the outbox collects what the
frames give, and its task writes whatever has gathered since its last write in one Lua call per shard
(``redis_io.feed_publisher``), so a busy feed writes big batches and a quiet one each tick at once. A Redis that
cannot be reached is retried (the ticks wait); one that refuses a write stops the feed.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import redis

from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.feed.live.metrics import FeedMetrics
from shadow_pipeline.feed.live.ticks import Tick
from shadow_pipeline.redis_io.feed_publisher import FeedPublisher

log = logging.getLogger(__name__)
REDIS_RETRY_SECONDS = 1.0
SHUTDOWN_REDIS_TRIES = 3  # at a stop, ticks that Redis still refuses after these tries are reported lost
_RETRYABLE = (redis.ConnectionError, redis.TimeoutError)


class Outbox:
    def __init__(self, publisher: FeedPublisher, batch_max: int, metrics: FeedMetrics, stop: threading.Event) -> None:
        self.publisher = publisher
        self.batch_max = batch_max
        self.metrics = metrics
        self.stop = stop
        self.ticks: list[Tick] = []
        self.depth: list[dict[str, str]] = []
        self.wake = asyncio.Event()
        self.closing = False
        self.lost = 0  # ticks and depth entries not written when the feed stopped
        self.fatal: redis.RedisError | None = None

    def put(self, ticks: list[Tick], depth: list[dict[str, str]]) -> None:
        self.ticks.extend(ticks)
        self.depth.extend(depth)
        if ticks or depth:
            self.wake.set()

    def close(self) -> None:
        """Write what is left, then end :meth:`run`."""
        self.closing = True
        self.wake.set()

    async def run(self) -> None:
        """Write what has gathered, in order, until closed and empty (or Redis refuses)."""
        tries = 0
        while True:
            if not (self.ticks or self.depth):
                if self.closing:
                    return
                await self.wake.wait()
                self.wake.clear()
                continue
            try:
                await self._write_batch()
            except _RETRYABLE as exc:
                tries += 1
                log.error("%s: Redis write failed (%s); retrying", self.metrics.venue, exc)
                if self.closing and tries >= SHUTDOWN_REDIS_TRIES:
                    self.lost = len(self.ticks) + len(self.depth)
                    return
                await asyncio.sleep(REDIS_RETRY_SECONDS)
                continue
            except redis.RedisError as exc:  # refused (NOPERM, WRONGTYPE, OOM): retrying cannot help
                self.fatal, self.lost = exc, len(self.ticks) + len(self.depth)
                self.stop.set()
                return
            tries = 0

    async def _write_batch(self) -> None:
        """Ticks shard by shard, then depth entries, each taken off the outbox as soon as it is written: a write
        that fails (another shard's, the depth's) must not write them again (they would come back under new seqs,
        duplicates no check could see)."""
        head = min(len(self.ticks), self.batch_max)  # the batch: the outbox's first ticks (put only appends)
        by_stream: dict[str, list[Tick]] = {}
        for tick in self.ticks[:head]:
            by_stream.setdefault(self.publisher.stream_of(tick.instrument), []).append(tick)
        for ticks in by_stream.values():
            await asyncio.to_thread(self.publisher.publish, [(t.instrument, t.fields) for t in ticks], ())
            written = {id(tick) for tick in ticks}
            self.ticks[:head] = [tick for tick in self.ticks[:head] if id(tick) not in written]
            head -= len(ticks)
            self._count(ticks, [])
        depth = self.depth[: self.batch_max]
        if depth:
            await asyncio.to_thread(self.publisher.publish, (), depth)
            del self.depth[: len(depth)]
            self._count([], depth)

    def _count(self, ticks: list[Tick], depth: list[dict[str, str]]) -> None:
        venue = self.metrics.venue
        per: dict[str, int] = {}
        lag = self.metrics.lag.labels(venue)
        for tick in ticks:
            per[tick.instrument] = per.get(tick.instrument, 0) + 1
            lag.observe(tick.lag_ns / 1e9)
        for instrument, count in per.items():
            self.metrics.ticks.labels(venue, instrument).inc(count)
        for record in depth:
            self.metrics.depth.labels(venue, instrument_key(record["symbol"], record.get(VENUE_FIELD))).inc()
