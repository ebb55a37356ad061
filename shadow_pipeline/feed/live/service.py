"""The feed's run loop: connections in turn, frames through the venue's protocol, ticks to Redis.

Receiving and publishing run side by side (``outbox``): frames are read and turned into ticks as they come, and
Redis is written in batches of whatever has gathered. The loop is testable in-process:
``run_feed(config, client, stop)`` with a ``threading.Event`` that a signal handler or a test sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from dataclasses import asdict, dataclass, field

import redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE
from shadow_pipeline.feed.live.config import FeedConfig
from shadow_pipeline.feed.live.connection import Watchdog, backoff_delay, close_cause, http_get, open_connection
from shadow_pipeline.feed.live.metrics import FeedMetrics
from shadow_pipeline.feed.live.outbox import Outbox
from shadow_pipeline.feed.live.protocol import MalformedFrame, Update, VenueProtocol
from shadow_pipeline.feed.live.ticks import TouchCarry
from shadow_pipeline.feed.live.venues import protocol_for
from shadow_pipeline.redis_io.feed_publisher import FeedPublisher

log = logging.getLogger(__name__)
POLL_SECONDS = 0.1  # how soon a stop request, a ping or a watchdog deadline is noticed while no frame comes
YIELD_EVERY = 32  # frames read back to back before the other tasks (publisher, REST snapshots) get a turn
MAX_PENDING = 200_000  # ticks waiting for Redis before receiving waits too (the venue then sees a slow reader)
_STOP = "stop"


@dataclass
class FeedSummary:
    """What a run did, read from its metrics (one definition of each count)."""

    venue: str
    stream: str
    ticks: dict[str, int] = field(default_factory=dict)
    depth_records: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    resyncs: dict[str, int] = field(default_factory=dict)
    stale_timeouts: int = 0
    malformed_frames: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    lost_at_stop: int = 0  # ticks and depth entries not written (Redis unreachable at the stop)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _Feed:
    def __init__(self, config: FeedConfig, client: redis.Redis, stop: threading.Event, metrics: FeedMetrics) -> None:
        self.config = config
        self.stop = stop
        self.metrics = metrics
        self.protocol: VenueProtocol = protocol_for(config)
        defaults = self.protocol.defaults
        self.ws_base = config.ws_url or defaults.ws_url
        self.rest_base = config.rest_url or defaults.rest_url or ""
        self.stale_seconds = config.stale_seconds or defaults.stale_seconds
        publisher = FeedPublisher(client, config.stream, config.maxlen, config.shards)
        self.outbox = Outbox(publisher, config.batch_max, metrics, stop)
        self.carry = TouchCarry(None if config.venue == DEFAULT_VENUE else config.venue)  # as frames.venue_code
        self.connections = 0
        self.rng = random.Random()
        self.fetching: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._carry_dropped = 0

    async def run(self) -> FeedSummary:
        publishing = asyncio.create_task(self.outbox.run())
        attempt = 0
        try:
            while not self.stop.is_set():
                cause, worked = await self._session()
                if cause == _STOP or self.stop.is_set():
                    break
                self.metrics.reconnects.labels(self.config.venue, cause).inc()
                attempt = 0 if worked else attempt + 1
                delay = backoff_delay(
                    attempt, self.config.backoff_initial_seconds, self.config.backoff_max_seconds, self.rng
                )
                log.warning("%s: connection ended (%s); reconnecting in %.2fs", self.config.venue, cause, delay)
                await self._sleep(delay)
        finally:
            self.outbox.close()
            await publishing
        if self.outbox.fatal is not None:
            raise self.outbox.fatal
        return self._summary()

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, POLL_SECONDS))

    async def _session(self) -> tuple[str, bool]:
        """One connection, from open to its end; the cause of the end and whether any frame came."""
        url = self.protocol.url(self.ws_base)
        opening = asyncio.create_task(
            open_connection(
                url, self.config.open_timeout_seconds, self.config.receive_buffer_bytes, self.config.compression
            )
        )
        while not opening.done():  # a stop request does not wait for a slow handshake
            await asyncio.wait({opening}, timeout=POLL_SECONDS)
            if self.stop.is_set() and not opening.done():
                opening.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await opening
                return _STOP, False
        try:
            ws = opening.result()
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.warning("%s: cannot connect to %s: %s", self.config.venue, url[:200], exc)
            return "connect_failed", False
        self.connections += 1
        worked = False
        frames = 0
        loop = asyncio.get_running_loop()
        opened = loop.time()
        watchdog = Watchdog(self.protocol.books(), opened, self.stale_seconds)
        ping = self.protocol.client_ping
        next_ping = opened + self.config.ping_seconds if ping else float("inf")
        try:
            await self._handle(self.protocol.on_connect(), ws, watchdog, time.time_ns(), first=True)
            while True:
                if self.stop.is_set():
                    return _STOP, worked
                now = loop.time()
                if now - opened >= self.config.max_age_seconds:
                    return "max_age", worked
                if now >= watchdog.next_deadline():
                    stale = watchdog.stale(now)
                    if stale:
                        for book in stale:
                            self.metrics.stale.labels(self.config.venue, book).inc()
                        log.warning("%s: no change in %s for %.1fs", self.config.venue, stale, self.stale_seconds)
                        return "stale", worked
                if ping and now >= next_ping:
                    await ws.send(ping)
                    next_ping = now + self.config.ping_seconds
                wait = min(POLL_SECONDS, opened + self.config.max_age_seconds - now, next_ping - now)
                wait = min(wait, watchdog.next_deadline() - now)
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        frame = await ws.recv()
                except TimeoutError:
                    continue
                ts_local = time.time_ns()
                self.metrics.last_message = time.monotonic()
                frames += 1
                if frames % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # recv() of a queued frame does not yield: let the publisher run
                if frames == self.config.pause_after_frames and self.connections == 1:
                    log.info("pausing %.1fs after %d frames (test-only)", self.config.pause_seconds, frames)
                    await asyncio.sleep(self.config.pause_seconds)  # test-only: a reader that stops reading
                # only market data proves the connection works: a venue that acks and then drops or refuses
                # must meet a growing backoff, not a reconnect every half second
                worked = await self._frame(frame, ts_local, ws, watchdog) or worked
                while len(self.outbox.ticks) > MAX_PENDING and not self.stop.is_set():
                    await asyncio.sleep(POLL_SECONDS)
        except ConnectionClosed as exc:
            return close_cause(exc), worked
        finally:
            for task in list(self.tasks):
                task.cancel()
            self.fetching.clear()
            with contextlib.suppress(Exception):
                await ws.close()

    async def _frame(self, frame: str | bytes, ts_local: int, ws: ClientConnection, watchdog: Watchdog) -> bool:
        """Handle one frame; whether it was market data (a book changed or a tick came)."""
        try:
            text = frame if isinstance(frame, str) else frame.decode()
            update = self.protocol.on_frame(text, ts_local)
        except (MalformedFrame, UnicodeDecodeError) as exc:
            self.metrics.malformed.labels(self.config.venue).inc()
            self.metrics.messages.labels(self.config.venue, "malformed").inc()
            log.warning("%s: malformed frame skipped: %s", self.config.venue, getattr(exc, "reason", exc))
            if isinstance(exc, MalformedFrame) and exc.update is not None:
                await self._handle(exc.update, ws, watchdog, ts_local, counted=True)
            return False
        await self._handle(update, ws, watchdog, ts_local)
        return bool(update.changed or update.rows)

    async def _handle(
        self,
        update: Update,
        ws: ClientConnection,
        watchdog: Watchdog,
        ts_local: int,
        first: bool = False,
        counted: bool = False,
    ) -> None:
        """``counted``: the frame is counted already (as malformed)."""
        venue = self.config.venue
        if not (first or counted):
            self.metrics.messages.labels(venue, update.kind).inc()
        for cause in update.resyncs:
            self.metrics.resyncs.labels(venue, cause).inc()
            log.warning("%s: book resync (%s)", venue, cause)
        for reason in update.dropped:
            self.metrics.dropped.labels(venue, reason).inc()
        if update.changed:
            watchdog.saw(update.changed, asyncio.get_running_loop().time())
        self.outbox.put(self.carry.ticks(update.rows, ts_local) if update.rows else [], update.depth)
        if self.carry.dropped != self._carry_dropped:
            self.metrics.dropped.labels(venue, "trade_before_quote").inc(self.carry.dropped - self._carry_dropped)
            self._carry_dropped = self.carry.dropped
        for message in update.send:
            await ws.send(message)
        for symbol in update.snapshots:
            if symbol not in self.fetching:
                self.fetching.add(symbol)
                delay = 0.0 if first else backoff_delay(0, self.config.backoff_initial_seconds, 1.0, self.rng)
                task = asyncio.create_task(self._snapshot(symbol, delay, ws, watchdog))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _snapshot(self, symbol: str, delay: float, ws: ClientConnection, watchdog: Watchdog) -> None:
        """Fetch ``symbol``'s REST snapshot (retrying with backoff) and hand it to the protocol."""
        url = self.protocol.snapshot_url(self.rest_base, symbol)
        attempt = 0
        await self._sleep(delay)
        started = time.time_ns()
        while not self.stop.is_set():
            try:
                body = await asyncio.to_thread(http_get, url, self.config.rest_timeout_seconds)
                break
            except (OSError, UnicodeDecodeError) as exc:
                attempt += 1
                self.metrics.dropped.labels(self.config.venue, "snapshot_failed").inc()
                log.warning("%s: REST snapshot of %s failed: %s", self.config.venue, symbol, exc)
                await self._sleep(
                    backoff_delay(
                        attempt, self.config.backoff_initial_seconds, self.config.backoff_max_seconds, self.rng
                    )
                )
        else:
            return
        ts_local = time.time_ns()
        log.info("%s: REST snapshot of %s in %.2fs", self.config.venue, symbol, (ts_local - started) / 1e9)
        self.fetching.discard(symbol)
        try:
            update = self.protocol.on_snapshot(symbol, body, ts_local)
        except MalformedFrame as exc:
            self.metrics.malformed.labels(self.config.venue).inc()
            log.warning("%s: malformed REST snapshot of %s: %s", self.config.venue, symbol, exc.reason)
            if exc.update is not None:
                await self._handle(exc.update, ws, watchdog, ts_local)
            return
        await self._handle(update, ws, watchdog, ts_local)

    def _summary(self) -> FeedSummary:
        m = self.metrics
        held = sum(len(trades) for trades in self.carry.held.values())
        if held:  # trades of an instrument that never quoted: nothing to carry onto them
            m.dropped.labels(self.config.venue, "trade_before_quote").inc(held)
        as_int = lambda counts: {k: int(v) for k, v in counts.items() if v}  # noqa: E731
        return FeedSummary(
            venue=self.config.venue,
            stream=self.config.stream,
            ticks=as_int(m.counts(m.ticks)),
            depth_records=as_int(m.counts(m.depth)),
            connections=self.connections,
            reconnects=as_int(m.counts(m.reconnects)),
            resyncs=as_int(m.counts(m.resyncs)),
            stale_timeouts=int(sum(m.counts(m.stale).values())),
            malformed_frames=int(sum(m.counts(m.malformed).values())),
            dropped=as_int(m.counts(m.dropped)),
            lost_at_stop=self.outbox.lost,
        )


async def run_feed(
    config: FeedConfig, client: redis.Redis, stop: threading.Event, metrics: FeedMetrics | None = None
) -> FeedSummary:
    """Run the feed until ``stop`` is set; then publish what was received, and return the summary. Raises the
    Redis error that made it stop when Redis refused a write (a retryable one is retried), ValueError for a
    config the venue cannot take."""
    feed = _Feed(config, client, stop, metrics or FeedMetrics(config.venue))
    return await feed.run()
