"""The tick consumer: XREADGROUP in batches, guard, reorder, land durably, then XACK.

Start-up order (so that nothing a crashed consumer held is lost): re-read this consumer's own pending
entries, claim entries other consumers left idle too long (XAUTOCLAIM), then read new ones. An entry is
acked only once the tick it carries is landed (or dropped by backpressure and landed as a drop record, or
written to the dead-letter stream in the same MULTI/EXEC as its XACK). Landing dedups by entry id, so a
redelivery after a crash between landing and ack never duplicates a tick.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.domain.reorder import DEFAULT_CAPACITY, ReorderBuffer
from shadow_pipeline.ingest import dead_letters
from shadow_pipeline.ingest.deliveries import Delivery, from_field_maps, from_reply
from shadow_pipeline.ingest.guard import GuardCounts, SequenceGuard
from shadow_pipeline.ingest.landing import Kind, LandingStore
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.redis_io.connect import RedisUnavailable, connect
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP, dead_letter_stream
from shadow_pipeline.redis_io.raw_reply import read_raw
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM
from shadow_pipeline.redis_io.url import redact

log = logging.getLogger(__name__)
_CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)
PROGRESS_SECONDS = 10.0


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


@dataclass(frozen=True)
class IngestOptions:
    stream: str = DEFAULT_STREAM
    group: str = CONSUMER_GROUP
    consumer: str = field(default_factory=default_consumer_name)
    batch: int = 2000
    block_ms: int = 1000
    claim_idle_ms: int = 60_000
    watermark_ms: float = 40.0
    buffer_capacity: int = DEFAULT_CAPACITY
    land_every: int = 20_000  # released ticks gathered before a landing write (fewer, larger Parquet files)
    group_start_id: str = "0"  # where a new group starts: "0" = everything in the stream, "$" = only new entries
    reconnect_seconds: float = 60.0  # how long to keep retrying a lost connection before giving up

    def __post_init__(self) -> None:
        for name in ("batch", "buffer_capacity", "land_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"ingest option {name} must be >= 1, got {getattr(self, name)}")
        for name in ("block_ms", "claim_idle_ms", "watermark_ms", "reconnect_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"ingest option {name} must be >= 0, got {getattr(self, name)}")

    @property
    def dead_letter_stream(self) -> str:
        return dead_letter_stream(self.stream)


@dataclass
class IngestReport:
    """What one run of a consumer did; counts are of entries and ticks."""

    read: int = 0
    redelivered: int = 0
    landed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    reordered: dict[str, int] = field(default_factory=dict)
    gaps: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    out_of_order: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    reconnects: int = 0
    peak_buffered: int = 0  # most ticks the reorder buffer held at once (bounded by capacity per symbol)
    seconds: float = 0.0

    @property
    def landed_total(self) -> int:
        return sum(self.landed.values())

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "landed_total": self.landed_total}


def _add(target: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        if value:
            target[key] = target.get(key, 0) + int(value)


class TickConsumer:
    def __init__(
        self,
        landing: LandingStore,
        options: IngestOptions | None = None,
        url: str | None = None,
        metrics: IngestMetrics | None = None,
        client_factory: Callable[..., redis.Redis] | None = None,
    ) -> None:
        """``client_factory(**options)`` makes the connection (e.g. a Dagster resource's, with its TLS settings);
        by default one is made from ``url`` (else $REDIS_URL, else the embedded server)."""
        self.options = options or IngestOptions()
        self.landing = landing
        self.metrics = metrics or IngestMetrics()
        self.report = IngestReport()
        self._url = url
        self._client_factory = client_factory or (lambda **kw: connect(url, **kw))
        self._buffer = ReorderBuffer(int(self.options.watermark_ms * 1e6), self.options.buffer_capacity)
        self._next_lag_check = 0.0
        self._next_progress = time.monotonic() + PROGRESS_SECONDS
        self._ready: list[pd.DataFrame] = []  # released, not yet landed (their entries are still pending)
        # One read ahead: while a batch is processed, Redis already serializes the next one (see _read_new).
        # Guard updates and XACKs go to Redis in order on another thread, overlapping the next batch's parse;
        # an XACK is only submitted once its ticks are landed, so the at-least-once contract is unchanged.
        # Both single-thread pools live for one run (see _run).
        self._reader: ThreadPoolExecutor
        self._side: ThreadPoolExecutor
        self._prefetched: Future[Delivery] | None = None
        self._side_work: list[tuple[Future[Any], Callable[[Any], None]]] = []
        self._client = self._connect()  # fails fast, with a clear message, when Redis is down at start
        self._guard = SequenceGuard(self._client, self.options.stream, self.options.group)

    def _connect(self) -> redis.Redis:
        return self._client_factory(decode_responses=True, socket_timeout=max(5.0, self.options.block_ms / 1000 + 5))

    # -- public ---------------------------------------------------------------------------------------------

    def drain(self) -> IngestReport:
        """Land everything the stream holds for this group now, flush the reorder buffer, and return."""
        return self._run(stop=None)

    def serve(self, stop: threading.Event) -> IngestReport:
        """Run until ``stop`` is set (SIGTERM in the CLI); the current batch finishes and the buffer is flushed."""
        return self._run(stop=stop)

    # -- loop -----------------------------------------------------------------------------------------------

    def _run(self, stop: threading.Event | None) -> IngestReport:
        started = time.perf_counter()
        opts = self.options
        log.info("consumer %s of group %s on %s: start", opts.consumer, opts.group, opts.stream)
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="xreadgroup") as self._reader,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="guard-ack") as self._side,
        ):
            self._with_reconnect(self._recover_pending)
            while stop is None or not stop.is_set():
                got = self._with_reconnect(lambda: self._read_new(block=stop is not None))
                if not got and stop is None:
                    break  # drained: nothing new for this group
            self._with_reconnect(self._process_prefetched)  # delivered to us already: land it before leaving
            self._with_reconnect(self._flush)
            self._with_reconnect(lambda: self._collect_side(wait=True))
            self._with_reconnect(lambda: self._update_lag(force=True))
        self.report.seconds = time.perf_counter() - started
        log.info("consumer %s: done: %s", opts.consumer, self.report.as_dict())
        return self.report

    def _with_reconnect(self, step: Any) -> Any:
        """Run ``step``; on a lost connection reconnect with backoff and recover before trying it again."""
        deadline = time.monotonic() + self.options.reconnect_seconds
        wait = 0.1
        recovering = False
        while True:
            try:
                if recovering:
                    self._recover_after_reconnect()
                    recovering = False
                return step()
            except redis.exceptions.ResponseError as exc:
                # NOGROUP: the stream or group was deleted; UNBLOCKED: deleted under a blocked read; "no such key":
                # deleted under XINFO. All three: recreate the group and read on.
                if not (str(exc).startswith(("NOGROUP", "UNBLOCKED")) or "no such key" in str(exc)):
                    raise
                log.warning(
                    "stream %s or group %s is gone (%s): recreating the group",
                    self.options.stream,
                    self.options.group,
                    str(exc).split(" ", 1)[0],
                )
                self._drop_prefetched()
                self._ensure_group()
            except _CONNECTION_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise RedisUnavailable(
                        f"lost Redis at {redact(self._url) if self._url else 'the configured URL'} and could not "
                        f"reconnect within {self.options.reconnect_seconds}s: {exc}"
                    ) from None
                log.warning("Redis connection lost (%s); retrying in %.1fs", exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, 5.0)
                self.report.reconnects += 1
                recovering = True

    def _recover_after_reconnect(self) -> None:
        """Start over from what Redis knows: every entry not yet acked is still pending for this consumer.

        Ticks held in memory (reorder buffer, not yet landed) belong to unacked entries, so they are dropped
        here and come back with the pending entries; landing dedups by entry id what was landed but not acked.
        """
        self._drop_prefetched()
        self._buffer = ReorderBuffer(int(self.options.watermark_ms * 1e6), self.options.buffer_capacity)
        self._ready = []
        self._client = self._connect()
        self._guard = SequenceGuard(self._client, self.options.stream, self.options.group)
        self._recover_pending()
        log.info("consumer %s: reconnected and recovered its pending entries", self.options.consumer)

    def _ensure_group(self) -> None:
        try:
            self._client.xgroup_create(
                self.options.stream, self.options.group, id=self.options.group_start_id, mkstream=True
            )
            log.info(
                "created consumer group %s on %s at %s",
                self.options.group,
                self.options.stream,
                self.options.group_start_id,
            )
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _recover_pending(self) -> None:
        """Own pending entries first, then entries that other consumers left idle too long."""
        self._ensure_group()
        opts = self.options
        last = "0"
        while True:
            delivery = self._xreadgroup(last, block=None)
            if not len(delivery):
                break
            self._process(delivery, redelivered=True)
            last = delivery.ids[-1]
        cursor = "0-0"
        while True:
            reply = self._client.xautoclaim(
                opts.stream, opts.group, opts.consumer, opts.claim_idle_ms, start_id=cursor, count=opts.batch
            )
            cursor, claimed = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            delivery = from_field_maps([*claimed, *((i, None) for i in deleted)])
            if len(delivery):
                log.info("claimed %d entries idle > %d ms from other consumers", len(delivery), opts.claim_idle_ms)
                self._process(delivery, redelivered=True)
            if cursor in ("0-0", b"0-0"):
                break

    def _read_new(self, block: bool) -> int:
        """Take the batch read ahead (or read one), start reading the next, then process this one."""
        wait = self.options.block_ms if block else None
        future, self._prefetched = self._prefetched, None
        delivery = (future or self._reader.submit(self._xreadgroup, ">", wait)).result()
        if len(delivery):
            self._prefetched = self._reader.submit(self._xreadgroup, ">", wait)
            self._process(delivery, redelivered=False)
        self._update_lag()
        return len(delivery)

    def _process_prefetched(self) -> None:
        future, self._prefetched = self._prefetched, None
        if future is not None and len(delivery := future.result()):
            self._process(delivery, redelivered=False)

    def _drop_prefetched(self) -> None:
        """Before recovering after an error: let a read in flight finish, so that the pending-entry scan that
        follows sees everything delivered to this consumer (and processes it once, as a redelivery)."""
        future, self._prefetched = self._prefetched, None
        in_flight = [f for f, _ in self._side_work] + ([future] if future is not None else [])
        self._side_work = []  # unacked entries stay pending and are recovered; guard counts may miss a batch
        for call in in_flight:
            try:
                call.result(timeout=self.options.block_ms / 1000 + 10)
            except Exception:
                log.debug("call in flight failed during recovery", exc_info=True)

    def _xreadgroup(self, last: str, block: int | None) -> Delivery:
        """Read and parse a batch (on the reader thread for new entries: the byte scan runs without the GIL)."""
        opts = self.options
        args: list[Any] = ["XREADGROUP", "GROUP", opts.group, opts.consumer, "COUNT", opts.batch]
        if block is not None:
            args += ["BLOCK", block]
        return from_reply(read_raw(self._client, *args, "STREAMS", opts.stream, last))

    def _update_lag(self, force: bool = False) -> None:
        """The group's lag gauge, at most once a second; a progress line every PROGRESS_SECONDS."""
        now = time.monotonic()
        if not force and now < self._next_lag_check:
            return
        self._next_lag_check = now + 1.0
        lag = None
        for info in self._client.xinfo_groups(self.options.stream):
            if info.get("name") == self.options.group and info.get("lag") is not None:
                lag = int(info["lag"])
                self.metrics.lag.set(lag)
        if now >= self._next_progress:
            self._next_progress = now + PROGRESS_SECONDS
            log.info(
                "consumer %s: %d entries read, %d ticks landed, %d dead letters, lag %s",
                self.options.consumer,
                self.report.read,
                self.report.landed_total,
                self.report.dead_letters,
                "unknown" if lag is None else lag,
            )

    # -- one batch ------------------------------------------------------------------------------------------

    def _process(self, delivery: Delivery, redelivered: bool) -> None:
        ids = delivery.ids
        self.report.read += len(ids)
        if redelivered:
            self.report.redelivered += len(ids)
        self._dead_letter(delivery)
        ticks = delivery.parsed.ticks  # with entry_id and ts_broker (see ingest.deliveries)
        if not ticks.empty:
            symbols, seqs = ticks["symbol"].to_numpy(), ticks["seq"].to_numpy(dtype=np.int64)
            guard = self._guard
            self._submit_side(lambda: guard.check(symbols, seqs, redelivered), self._account_guard)
        release = self._buffer.push(ticks.reset_index(drop=True))
        self.report.peak_buffered = max(self.report.peak_buffered, len(self._buffer))
        _add(self.report.reordered, release.reordered)
        for symbol, count in release.reordered.items():
            self.metrics.reordered.labels(symbol).inc(count)
        self._ready.append(release.released)
        if not release.dropped.empty:
            self._land_ready()
            self._land(release.released.iloc[0:0], release.dropped)
        elif sum(len(r) for r in self._ready) >= self.options.land_every or len(ids) < self.options.batch:
            self._land_ready()

    def _land_ready(self) -> None:
        ready = [r for r in self._ready if not r.empty]
        self._ready = []
        if ready:
            released = pd.concat(ready, ignore_index=True)
            self._land(released, released.iloc[0:0])

    def _submit_side(self, call: Callable[[], Any], then: Callable[[Any], None]) -> None:
        self._side_work.append((self._side.submit(call), then))
        self._collect_side(wait=False)

    def _collect_side(self, wait: bool) -> None:
        """Account finished guard/ack calls in submission order; raises what a call raised (e.g. lost Redis)."""
        while self._side_work and (wait or self._side_work[0][0].done()):
            future, then = self._side_work.pop(0)
            then(future.result())

    def _account_guard(self, found: dict[str, GuardCounts]) -> None:
        for symbol, counts in found.items():
            _add(self.report.gaps, {symbol: counts.gaps})
            _add(self.report.duplicates, {symbol: counts.duplicates})
            _add(self.report.out_of_order, {symbol: counts.out_of_order})
            self.metrics.gaps.labels(symbol).inc(counts.gaps)
            self.metrics.duplicates.labels(symbol).inc(counts.duplicates)
            self.metrics.out_of_order.labels(symbol).inc(counts.out_of_order)
            self.metrics.missing.labels(symbol).set(counts.missing)
            if counts.gaps or counts.duplicates:
                log.warning(
                    "sequence guard %s: %d seqs skipped, %d duplicates, %d out of order (%d missing now)",
                    symbol,
                    counts.gaps,
                    counts.duplicates,
                    counts.out_of_order,
                    counts.missing,
                )

    def _land(self, released: pd.DataFrame, dropped: pd.DataFrame) -> None:
        if released.empty and dropped.empty:
            return
        self.landing.write(Kind.TICKS, released, self.options.consumer)
        self.landing.write(Kind.DROPS, dropped, self.options.consumer)
        for frame, counter, total in (
            (released, self.metrics.ticks, self.report.landed),
            (dropped, self.metrics.drops, self.report.dropped),
        ):
            if frame.empty:
                continue
            counts = frame["symbol"].value_counts()
            _add(total, {str(k): int(v) for k, v in counts.items()})
            for symbol, count in counts.items():
                counter.labels(symbol).inc(int(count))
        if not dropped.empty:
            log.warning("backpressure: reorder buffer full, dropped %d ticks (kept as drop records)", len(dropped))
        landed = [frame["entry_id"].to_numpy(dtype=object) for frame in (released, dropped) if not frame.empty]
        ids = np.concatenate(landed).tolist()
        for start in range(0, len(ids), 10_000):
            self._submit_side(partial(self._ack, self._client, ids[start : start + 10_000]), lambda _: None)

    def _ack(self, client: redis.Redis, ids: list[str]) -> int:
        return int(client.xack(self.options.stream, self.options.group, *ids))

    def _dead_letter(self, delivery: Delivery, extra: pd.Series | None = None) -> None:
        """Dead-letter the delivery's rejects, and ``extra`` (position -> reason: entries to dead-letter for a reason
        of the caller's, e.g. delivered too many times; the caller then lands none of their ticks), each record with
        the entry's original bytes (``ingest.dead_letters.record``), with their XACKs in one MULTI/EXEC."""
        rejects = delivery.parsed.rejects
        if extra is not None and len(extra):
            rejects = pd.concat([rejects, extra[~extra.index.isin(rejects.index)]]).sort_index()
        if rejects.empty:
            return
        opts = self.options
        positions = rejects.index.to_numpy(dtype=int)
        ids = delivery.ids[positions].tolist()
        pipe = self._client.pipeline(transaction=True)  # the dead letters and their XACKs, or none of them
        for position, entry_id, reason in zip(positions, ids, rejects.to_numpy(), strict=True):
            letter = dead_letters.record(entry_id, opts.stream, str(reason), delivery.original(int(position)))
            pipe.xadd(opts.dead_letter_stream, letter)  # type: ignore[arg-type]
        pipe.xack(opts.stream, opts.group, *ids)
        pipe.execute()
        self.report.dead_letters += len(rejects)
        self.metrics.dead_letters.inc(len(rejects))
        log.warning(
            "dead-lettered %d malformed entries to %s (first: %s: %s)",
            len(rejects),
            opts.dead_letter_stream,
            ids[0],
            rejects.iloc[0],
        )

    def _flush(self) -> None:
        self._ready.append(self._buffer.flush())
        self._land_ready()
