"""Reading: new entries, read ahead (``read_ahead``), and each batch's own processing (guard, reorder buffer).

Guard checks, landings and XACKs run in order on a side thread, overlapping the next batches; what they did is
accounted here when they finish (``collect_side``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from shadow_pipeline.domain.market.reorder import Release
from shadow_pipeline.ingest import claims
from shadow_pipeline.ingest.consumer.read_ahead import ReadAhead
from shadow_pipeline.ingest.consumer.report import add_counts
from shadow_pipeline.ingest.deliveries import Delivery, from_reply, without
from shadow_pipeline.ingest.guard import GuardCounts
from shadow_pipeline.redis_io.raw_reply import read_raw

if TYPE_CHECKING:
    from shadow_pipeline.ingest.consumer.tick_consumer import TickConsumer

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 10.0
# A read not preceded by one sent ahead asks for this many entries at most: the consumer waits for it whole (Redis
# serializes a 20,000-entry reply for 50-120 ms, then it is parsed), and the full-size read sent right behind it is
# served meanwhile. A drain's first read, and a serving consumer's first after a quiet spell, start sooner.
FIRST_READ = 1_000
Read = tuple[Delivery, bool]  # a batch, and whether it caught up (fewer entries than asked: none are waiting)


def read_new(consumer: TickConsumer, block: bool) -> int:
    """Take the batch read ahead (or read one), start reading the next, then process this one."""
    future, consumer._prefetched = consumer._prefetched, None
    delivery, caught_up = (future or consumer._reader.submit(read_ahead, consumer, block, True)).result()
    if len(delivery):
        consumer._prefetched = consumer._reader.submit(read_ahead, consumer, block, True)
        consumer._process(without_claimed(consumer, delivery), redelivered=False, caught_up=caught_up)
    consumer._update_lag()
    return len(delivery)


def without_claimed(consumer: TickConsumer, delivery: Delivery) -> Delivery:
    """A read's entries less those a claim took meanwhile. XAUTOCLAIM takes this consumer's own idle entries too,
    and those of a read already sent but not yet received cannot be in ``held_ids``: a stalled consumer would
    claim them, land them, then land them again from the read's reply. At most two reads are in flight when a
    claim runs (the one read ahead and the one sent behind it), so the claimed ids are kept for two reads."""
    if not consumer._claimed_recent:
        return delivery
    fresh = without(delivery, consumer._claimed_recent)
    consumer._claimed_reads_left -= 1
    if consumer._claimed_reads_left <= 0:
        consumer._claimed_recent = set()
    return fresh


def read_ahead(consumer: TickConsumer, block: bool, more: bool) -> Read:
    """On the reader thread: the next batch of new entries, the read after it sent first (``more``; see
    ``read_ahead``); the byte scan runs without the GIL. A read not sent ahead asks for ``FIRST_READ``."""
    opts = consumer.options
    if consumer._read_ahead is None:
        consumer._read_ahead = ReadAhead(consumer._client)
    asked = opts.batch if consumer._read_ahead.outstanding else min(opts.batch, FIRST_READ)

    def command(count: int) -> list[Any]:
        wait = ["BLOCK", opts.block_ms] if block else []
        return ["XREADGROUP", "GROUP", opts.group, opts.consumer, "COUNT", count, *wait, "STREAMS", opts.stream, ">"]

    delivery = consumer._read_ahead.read(command(asked), more, command(opts.batch))
    return delivery, len(delivery) < asked


def close_read_ahead(consumer: TickConsumer) -> None:
    """With no read in flight (on the reader thread, or once it stopped): receive an outstanding read, give its
    connection back."""
    if consumer._read_ahead is not None:
        consumer._read_ahead.close()
        consumer._read_ahead = None


def process_prefetched(consumer: TickConsumer) -> None:
    """Before leaving: process what was read ahead, and the read sent after it (delivered to us already)."""
    future, consumer._prefetched = consumer._prefetched, None
    while future is not None:
        delivery, caught_up = future.result()
        if len(delivery):
            consumer._process(without_claimed(consumer, delivery), redelivered=False, caught_up=caught_up)
        outstanding = consumer._read_ahead is not None and consumer._read_ahead.outstanding
        future = consumer._reader.submit(read_ahead, consumer, False, False) if outstanding else None


def drop_prefetched(consumer: TickConsumer) -> None:
    """Before recovering after an error: let a read in flight finish, so that the pending-entry scan that
    follows sees everything delivered to this consumer (and processes it once, as a redelivery)."""
    future, consumer._prefetched = consumer._prefetched, None
    side_work, consumer._side_work = consumer._side_work, []
    closing = consumer._reader.submit(close_read_ahead, consumer)  # after the read in flight (one reader thread)
    for call, then in [*side_work, *([(future, None)] if future is not None else []), (closing, None)]:
        try:
            result = call.result(timeout=consumer.options.block_ms / 1000 + 10)
        except Exception:  # its XACK or guard check is redone by the recovery (_unacked, _unguarded)
            log.debug("call in flight failed during recovery", exc_info=True)
        else:
            if then is not None:
                then(result)
    consumer._generation += 1  # side calls still running are abandoned: what they do next registers nothing


def xreadgroup(consumer: TickConsumer, last: str, block: int | None) -> Delivery:
    """Read and parse a batch (pending entries, re-read by a recovery)."""
    opts = consumer.options
    args: list[Any] = ["XREADGROUP", "GROUP", opts.group, opts.consumer, "COUNT", opts.batch]
    if block is not None:
        args += ["BLOCK", block]
    return from_reply(read_raw(consumer._client, *args, "STREAMS", opts.stream, last))


def update_lag(consumer: TickConsumer, force: bool = False) -> None:
    """The group's lag gauge, at most once a second; a progress line every PROGRESS_SECONDS."""
    now = time.monotonic()
    if not force and now < consumer._next_lag_check:
        return
    consumer._next_lag_check = now + 1.0
    lag = claims.consistent_lag(consumer._client, consumer.options.stream, consumer.options.group)
    if lag is not None:
        consumer.metrics.lag.labels(consumer.options.stream).set(lag)
    if now >= consumer._next_progress:
        consumer._next_progress = now + PROGRESS_SECONDS
        log.info(
            "consumer %s: %d entries read, %d ticks landed, %d dead letters, lag %s",
            consumer.options.consumer,
            consumer.report.read,
            consumer.report.landed_total,
            consumer.report.dead_letters,
            "unknown" if lag is None else lag,
        )


def process(consumer: TickConsumer, delivery: Delivery, redelivered: bool, caught_up: bool | None = None) -> None:
    """``caught_up``: the read returned fewer entries than it asked for (by default: than ``batch``)."""
    caught_up = len(delivery) < consumer.options.batch if caught_up is None else caught_up
    consumer._land_due(consumer._accept(delivery, redelivered).dropped, caught_up)


def accept(consumer: TickConsumer, delivery: Delivery, redelivered: bool) -> Release:
    """An entry's own processing: dead-letter it with its reason, or check its seq and buffer its tick."""
    ids = delivery.ids
    consumer.report.read += len(ids)
    if redelivered:
        consumer.report.redelivered += len(ids)
    consumer._dead_letter(delivery)
    ticks = delivery.parsed.ticks  # with entry_id and ts_broker (see ingest.deliveries)
    if not ticks.empty:
        symbols, seqs = ticks["symbol"].to_numpy(), ticks["seq"].to_numpy(dtype=np.int64)
        entry_ids = ticks["entry_id"].to_numpy()
        # A read of new entries is one stretch of the stream; claimed and recovered ones have others' between them.
        contiguous = not redelivered
        guard, token = consumer._guard, next(consumer._side_tokens)
        consumer._unguarded[token] = (symbols, seqs, entry_ids, contiguous)

        def check() -> dict[str, GuardCounts]:
            try:
                return guard.check(symbols, seqs, redelivered, entry_ids, contiguous)
            except Exception:
                consumer._check_failed = True  # no later landing acks until a recovery has checked these again
                raise

        consumer._submit_side(check, partial(consumer._guarded, token))
    release = consumer._buffer.push(ticks.reset_index(drop=True))
    consumer.report.peak_buffered = max(consumer.report.peak_buffered, len(consumer._buffer))
    add_counts(consumer.report.reordered, release.reordered)
    for symbol, count in release.reordered.items():
        consumer.metrics.reordered.labels(symbol).inc(count)
    consumer._ready.append(release.released)
    if consumer._ready_since is None and not release.released.empty:
        consumer._ready_since = time.monotonic()
    return release


def submit_side(consumer: TickConsumer, call: Callable[[], Any], then: Callable[[Any], None]) -> None:
    consumer._side_work.append((consumer._side.submit(call), then))
    consumer._collect_side(wait=False)


def collect_side(consumer: TickConsumer, wait: bool) -> None:
    """Account finished guard/ack calls in submission order; raises what a call raised (e.g. lost Redis)."""
    while consumer._side_work and (wait or consumer._side_work[0][0].done()):
        future, then = consumer._side_work.pop(0)
        then(future.result())


def guarded(consumer: TickConsumer, token: int, found: dict[str, GuardCounts]) -> None:
    consumer._unguarded.pop(token, None)
    consumer._account_guard(found)


def confirm_gaps(consumer: TickConsumer) -> None:
    """At a drain's end, apply the group's batches that waited for earlier ones (see ingest.guard), once the side
    thread's checks are in: their counts must not wait for their symbols' next batches."""
    consumer._collect_side(wait=True)  # in order after the checks already submitted
    consumer._account_guard(consumer._guard.confirm())


def account_guard(consumer: TickConsumer, found: dict[str, GuardCounts]) -> None:
    for symbol, counts in found.items():
        add_counts(consumer.report.gaps, {symbol: counts.gaps})
        add_counts(consumer.report.duplicates, {symbol: counts.duplicates})
        add_counts(consumer.report.out_of_order, {symbol: counts.out_of_order})
        consumer.metrics.gaps.labels(symbol).inc(counts.gaps)
        consumer.metrics.duplicates.labels(symbol).inc(counts.duplicates)
        consumer.metrics.out_of_order.labels(symbol).inc(counts.out_of_order)
        consumer.metrics.missing.labels(symbol).set(counts.missing)
        if counts.gaps or counts.duplicates:
            log.warning(
                "sequence guard %s: %d seqs skipped, %d duplicates, %d out of order (%d missing now)",
                symbol,
                counts.gaps,
                counts.duplicates,
                counts.out_of_order,
                counts.missing,
            )
