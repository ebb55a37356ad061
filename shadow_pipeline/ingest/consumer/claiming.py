"""Claiming: this consumer's own pending entries at start, what dead consumers own, what any consumer left idle
too long, and redelivered entries processed with their failures counted (``ingest.attempts``)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shadow_pipeline.ingest import claims
from shadow_pipeline.ingest.deliveries import Delivery, from_claim_reply, from_range_reply, subset, without
from shadow_pipeline.redis_io.raw_reply import read_raw

if TYPE_CHECKING:
    from shadow_pipeline.ingest.consumer.tick_consumer import TickConsumer

log = logging.getLogger(__name__)


def recover_pending(consumer: TickConsumer) -> None:
    """Own pending entries first, then what dead consumers own and what others left idle too long."""
    consumer._ensure_group()
    held = consumer._held_ids()  # e.g. re-read by a recovery already: processing them again would land them twice
    last = "0"
    while True:
        delivery = consumer._xreadgroup(last, block=None)
        if not len(delivery):
            break
        last = delivery.ids[-1]
        consumer._take(without(delivery, held))
    consumer._claim(full=True)


def maintain(consumer: TickConsumer) -> None:
    """While serving, between reads: account finished side work (a refused landing stops the consumer), land on
    time, and claim every ``claim_every_ms``."""
    consumer._collect_side(wait=False)
    now = time.monotonic()
    if consumer._ready_since is not None and now - consumer._ready_since >= consumer.options.land_every_ms / 1000:
        consumer._land_ready()
    if now >= consumer._next_claim:
        consumer._next_claim = now + consumer.options.claim_every_seconds
        consumer._heartbeat()
        consumer._claim(full=False)
        consumer._account_guard(consumer._guard.confirm())


def heartbeat(consumer: TickConsumer) -> None:
    """Refresh this consumer's ``idle`` while it holds entries, so that others see it alive.

    Redis < 7.2 counts only reads that deliver something as activity: a serving consumer on a quiet stream
    would look dead while its reorder buffer holds the newest ticks. XCLAIM ... JUSTID of its own oldest
    pending entry refreshes it without counting a delivery. Done by the serving loop itself, so a consumer
    stuck in processing does not look alive.
    """
    opts = consumer.options
    own = claims.pending_entries(consumer._client, opts.stream, opts.group, 1, consumer=opts.consumer)
    if own:
        reply = read_raw(consumer._client, "XCLAIM", opts.stream, opts.group, opts.consumer, 0, own[0].id, "JUSTID")
        if reply[0] == ord("-"):
            raise claims.error_of(reply)


def claim(consumer: TickConsumer, full: bool) -> int:
    """Take over what dead consumers own, then entries idle past ``claim_idle_ms`` (XAUTOCLAIM, resuming
    from the last cursor; ``full``: through the whole pending list), and forget long-idle empty consumers.

    A consumer is dead when it has not read or claimed for ``dead_after_ms`` (XINFO CONSUMERS ``idle``) while
    owning entries: a serving consumer reads at least every ``block_ms``. Its entries are claimed with
    XCLAIM's min-idle at ``dead_after_ms``, so an entry it re-read meanwhile (it came back) stays its own.
    """
    opts = consumer.options
    taken = 0
    for facts in claims.consumers(consumer._client, opts.stream, opts.group):
        if facts.name == opts.consumer:
            continue
        if facts.pending and facts.idle_ms >= opts.dead_after_ms:
            got = consumer._claim_from_dead(facts)
            if got:
                log.info(
                    "consumer %s: claimed %d entries of consumer %s (idle %d ms: dead)",
                    opts.consumer,
                    got,
                    facts.name,
                    facts.idle_ms,
                )
            taken += got
        elif not facts.pending:
            consumer._forget(facts)
    pages = 0
    while True:
        reply = read_raw(
            consumer._client,
            "XAUTOCLAIM",
            opts.stream,
            opts.group,
            opts.consumer,
            opts.claim_idle_ms,
            consumer._claim_cursor,
            "COUNT",
            opts.batch,
        )
        # Entries trimmed from the stream while pending come back as TRIMMED rejects: dead letters.
        delivery = from_claim_reply(reply)
        consumer._claim_cursor = delivery.cursor
        if len(delivery):
            # XAUTOCLAIM takes this consumer's own idle entries too: those it holds are in processing already.
            delivery = without(delivery, consumer._held_ids())
        if len(delivery):
            consumer._claimed_recent.update(delivery.ids.tolist())  # a read in flight may bring them again
            consumer._claimed_reads_left = 2
            log.info("claimed %d entries idle > %d ms from other consumers", len(delivery), opts.claim_idle_ms)
            consumer.report.claimed += len(delivery)
            taken += len(delivery)
            consumer._take(delivery)
        pages += 1
        if consumer._claim_cursor == "0-0" or (not full and pages >= 10):
            return taken


def forget(consumer: TickConsumer, facts: claims.ConsumerFacts) -> None:
    """Delete a consumer idle past ``forget_after_ms`` that owns nothing (checked again, atomically)."""
    opts = consumer.options
    if facts.name == opts.consumer or facts.pending or facts.idle_ms < opts.forget_after_ms:
        return
    if claims.forget_consumer(consumer._client, opts.stream, opts.group, facts.name):
        consumer.report.forgotten.append(facts.name)
        log.info("consumer %s: deleted idle consumer %s from the group", opts.consumer, facts.name)


def claim_from_dead(consumer: TickConsumer, owner: claims.ConsumerFacts) -> int:
    opts = consumer.options
    taken, start = 0, "-"
    while True:
        rows = claims.pending_entries(
            consumer._client,
            opts.stream,
            opts.group,
            opts.batch,
            consumer=owner.name,
            min_idle_ms=opts.dead_after_ms,
            start=start,
        )
        if not rows:
            return taken
        ids = [r.id for r in rows]
        reply = read_raw(consumer._client, "XCLAIM", opts.stream, opts.group, opts.consumer, opts.dead_after_ms, *ids)
        delivery = from_range_reply(reply)  # XCLAIM replies with entries, as XRANGE does
        missing = set(ids).difference(delivery.ids.tolist())
        if missing:  # XCLAIM drops entries deleted from the stream from the group without saying so
            consumer._dead_letter_trimmed(sorted(missing, key=claims.id_key))
        consumer.report.claimed += len(delivery)
        consumer.report.claimed_from_dead += len(delivery)
        taken += len(delivery)
        consumer._take(delivery)
        if len(rows) < opts.batch:
            return taken
        start = f"({ids[-1]}"


def dead_letter_trimmed(consumer: TickConsumer, ids: list[str]) -> None:
    """Of entries a claim did not return: those no longer pending and gone from the stream were trimmed."""
    opts = consumer.options
    gone = []
    for entry_id in ids:
        still_pending = claims.pending_entries(
            consumer._client, opts.stream, opts.group, 1, start=entry_id, end=entry_id
        )
        exists = consumer._client.execute_command("XRANGE", opts.stream, entry_id, entry_id, NEVER_DECODE=True)
        if not still_pending and not exists:
            gone.append(entry_id)
    if gone:
        consumer._process(claims.trimmed(gone), redelivered=True)


def take(consumer: TickConsumer, delivery: Delivery) -> None:
    """Process redelivered entries (re-read after a restart or reconnect, or claimed), counting failures.

    Redis's delivery count also counts re-reads of valid ticks, so failures are counted here
    (``ingest.attempts``). An entry whose batch failed becomes a suspect and is then processed alone; one
    whose processing alone failed ``max_deliveries`` times is dead-lettered. A kill that merely happens
    while a batch is processed makes its entries suspects, nothing more: a valid tick would need
    ``max_deliveries`` kills inside its own, millisecond-long, solo processing.
    """
    if not len(delivery):
        return
    opts = consumer.options
    failures = consumer._attempts.counts(delivery.ids.tolist())
    alone = np.maximum(failures - 1, 0)  # the first marked failure was its batch's
    poison = np.flatnonzero(alone >= opts.max_deliveries)
    if len(poison):
        reasons = [
            f"processing it alone failed {n} times (max_deliveries {opts.max_deliveries})" for n in alone[poison]
        ]
        consumer._dead_letter(subset(delivery, poison), pd.Series(reasons, index=range(len(poison)), dtype=object))
        consumer.report.over_delivered += len(poison)
    dropped = []
    unsuspected = np.flatnonzero(failures == 0)
    if len(unsuspected):
        dropped.append(consumer._attempt(subset(delivery, unsuspected)))
    for position in np.flatnonzero((failures > 0) & (alone < opts.max_deliveries)):
        dropped.append(consumer._attempt(subset(delivery, np.array([position]))))
    dropped_frame = pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame()
    consumer._land_due(dropped_frame, len(delivery) < opts.batch)


def attempt(consumer: TickConsumer, delivery: Delivery) -> pd.DataFrame:
    """Process redelivered entries between marking and unmarking them; returns the backpressure drops."""
    consumer._marked = delivery.ids.tolist()
    consumer._attempts.begin(consumer._marked)
    release = consumer._accept(delivery, redelivered=True)
    consumer._unmark()
    return release.dropped


def unmark(consumer: TickConsumer) -> None:
    if consumer._marked:
        consumer._attempts.end(consumer._marked)
        consumer._marked = []


def held_ids(consumer: TickConsumer) -> set[str]:
    """Entries this consumer holds in memory (buffered, released, or landed with their XACK under way)."""
    held = set(consumer._buffer.held().get("entry_id", pd.Series(dtype=object)).tolist())
    for frame in consumer._ready:
        held.update(frame.get("entry_id", pd.Series(dtype=object)).tolist())
    for ids in [*consumer._landing.values(), *consumer._unacked.values()]:  # copied at once: the side thread adds
        held.update(ids)
    prefetched = consumer._prefetched
    if prefetched is not None and prefetched.done() and prefetched.exception() is None:
        held.update(prefetched.result()[0].ids.tolist())  # read ahead, delivered to this consumer, not processed yet
    return held
