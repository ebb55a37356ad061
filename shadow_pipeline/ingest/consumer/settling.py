"""Settling: what ends an entry's life in the group, and what ends a drain.

An entry is acked only once the tick it carries is landed (or dropped by backpressure and landed as a drop
record, or written to the dead-letter stream in the same MULTI/EXEC as its XACK); a drain is complete only once
nothing delivered before its end is pending in the group (docs/ingest.md, "Claiming and completeness")."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.ingest import claims, dead_letters
from shadow_pipeline.ingest.consumer.report import add_counts, incomplete_message
from shadow_pipeline.ingest.deliveries import Delivery
from shadow_pipeline.ingest.landing import Kind
from shadow_pipeline.redis_io.raw_reply import error_of, read_raw_strings

if TYPE_CHECKING:
    from shadow_pipeline.ingest.consumer.tick_consumer import TickConsumer

log = logging.getLogger(__name__)
# A drain waiting for the group's other consumers runs a full round (claims, and the pending entries listed, up to
# 10,000 rows) every SETTLE_POLL_SECONDS; in between it looks at XPENDING's summary, one cheap reply, first after
# SETTLE_FIRST_POLL_SECONDS, then twice as long each time. The others usually ack within milliseconds of this one's
# end (their last landing), and a fixed 50 ms sleep was a sixth of a 155,000-entry drain.
SETTLE_FIRST_POLL_SECONDS = 0.002
SETTLE_POLL_SECONDS = 0.05
LANDINGS_IN_FLIGHT = 2  # landing batches (``land_every`` ticks each) handed to the side thread, not yet acked


def land_due(consumer: TickConsumer, dropped: pd.DataFrame, caught_up: bool) -> None:
    """Land what is released when enough waits, the read caught up (a quiet feed) or it waited too long;
    ticks dropped by backpressure at once, as drop records."""
    if not dropped.empty:
        consumer._land_ready()
        consumer._land(dropped.iloc[0:0], dropped)
    elif (
        sum(len(r) for r in consumer._ready) >= consumer.options.land_every
        or caught_up
        or (
            consumer._ready_since is not None
            and time.monotonic() - consumer._ready_since >= consumer.options.land_every_ms / 1000
        )
    ):
        consumer._land_ready()


def land_ready(consumer: TickConsumer) -> None:
    ready = [r for r in consumer._ready if not r.empty]
    consumer._ready = []
    consumer._ready_since = None
    if ready:  # one release (a landing per read, the default) is landed as it is: concat would copy it
        released = ready[0].reset_index(drop=True) if len(ready) == 1 else pd.concat(ready, ignore_index=True)
        consumer._land(released, released.iloc[0:0])


def land(consumer: TickConsumer, released: pd.DataFrame, dropped: pd.DataFrame) -> None:
    """Land and then ack on the side thread, in order with the guard checks, while this thread reads on: the
    Parquet write and its fsyncs were half of the main thread's time. At most ``LANDINGS_IN_FLIGHT`` wait there,
    so that memory stays bounded when the landing zone is slow (or full, and waited out)."""
    if released.empty and dropped.empty:
        return
    landed = [frame["entry_id"].to_numpy(dtype=object) for frame in (released, dropped) if not frame.empty]
    token, ids = next(consumer._side_tokens), np.concatenate(landed).tolist()
    consumer._landing[token] = ids  # held (``held_ids``) until landed and acked, or recovered as pending
    consumer._submit_side(
        partial(_land_then_ack, consumer, token, consumer._generation, released, dropped),
        partial(consumer._landed, token, released, dropped),
    )
    while len(consumer._landing) >= LANDINGS_IN_FLIGHT and consumer._side_work:
        future, then = consumer._side_work.pop(0)
        then(future.result())


def _land_then_ack(
    consumer: TickConsumer, token: int, generation: int, released: pd.DataFrame, dropped: pd.DataFrame
) -> None:
    """On the side thread. A refused write raises LandingError (or, serving, waits for space) before anything is
    acked; once written, the ids are ``_unacked`` (acked again after a reconnect, never landed twice). The ids are
    taken first: a recovery that gave up waiting for this write (a full disk) has cleared ``_landing`` meanwhile.
    Such an abandoned write (``generation`` is no longer the consumer's) registers and acks nothing: the recovery
    re-read its entries as pending, and their new landing acks and counts them."""
    ids = consumer._landing[token]
    consumer.landing.write(Kind.TICKS, released, consumer.options.consumer, consumer._landing_attempts)
    consumer.landing.write(Kind.DROPS, dropped, consumer.options.consumer, consumer._landing_attempts)
    if generation != consumer._generation:
        return
    consumer._unaccounted[token] = (released, dropped)  # first: a recovery that sees the ids finds them
    consumer._unacked[token] = ids
    if consumer._check_failed:
        # Acked entries count as checked for the group's guard: a check of them (or of earlier entries) that
        # failed must run again first, which the recovery does before it acks these.
        raise redis.ConnectionError("a sequence guard check failed before this landing's ack")
    for start in range(0, len(ids), 10_000):
        consumer._ack(consumer._client, ids[start : start + 10_000])


def landed(consumer: TickConsumer, token: int, released: pd.DataFrame, dropped: pd.DataFrame, _: None) -> None:
    consumer._unacked.pop(token, None)
    consumer._unaccounted.pop(token, None)
    consumer._landing.pop(token, None)
    for frame, counter, total in (
        (released, consumer.metrics.ticks, consumer.report.landed),
        (dropped, consumer.metrics.drops, consumer.report.dropped),
    ):
        if frame.empty:
            continue
        counts = frame["symbol"].value_counts()
        add_counts(total, {str(k): int(v) for k, v in counts.items()})
        for symbol, count in counts.items():
            counter.labels(symbol).inc(int(count))
    if not dropped.empty:
        log.warning("backpressure: reorder buffer full, dropped %d ticks (kept as drop records)", len(dropped))


def ack(consumer: TickConsumer, client: redis.Redis, ids: list[str]) -> int:
    reply = read_raw_strings(client, ["XACK", consumer.options.stream, consumer.options.group], ids)
    if reply[0] == ord("-"):
        raise error_of(reply)
    return int(bytes(reply[1:-2]))


def dead_letter(consumer: TickConsumer, delivery: Delivery, extra: pd.Series | None = None) -> None:
    """Dead-letter the delivery's rejects, and ``extra`` (position -> reason: entries to dead-letter for a reason
    of the caller's, e.g. poison ones whose processing failed too often; the caller then lands none of their
    ticks), each record with the entry's original bytes (``ingest.dead_letters.record``), with their XACKs in
    one MULTI/EXEC."""
    rejects = delivery.parsed.rejects
    if extra is not None and len(extra):
        rejects = pd.concat([rejects, extra[~extra.index.isin(rejects.index)]]).sort_index()
    if rejects.empty:
        return
    opts = consumer.options
    positions = rejects.index.to_numpy(dtype=int)
    ids = delivery.ids[positions].tolist()
    pipe = consumer._client.pipeline(transaction=True)  # the dead letters and their XACKs, or none of them
    for position, entry_id, reason in zip(positions, ids, rejects.to_numpy(), strict=True):
        letter = dead_letters.record(entry_id, opts.stream, str(reason), delivery.original(int(position)))
        pipe.xadd(opts.dead_letter_stream, letter)  # type: ignore[arg-type]
    pipe.xack(opts.stream, opts.group, *ids)
    pipe.hdel(consumer._attempts.key, *ids)  # a dead letter's failures are settled with it
    pipe.execute()
    consumer.report.dead_letters += len(rejects)
    consumer.metrics.dead_letters.labels(consumer.options.stream).inc(len(rejects))
    log.warning(
        "dead-lettered %d entries to %s (first: %s: %s)",
        len(rejects),
        opts.dead_letter_stream,
        ids[0],
        rejects.iloc[0],
    )


def flush(consumer: TickConsumer) -> None:
    consumer._ready.append(consumer._buffer.flush())
    consumer._land_ready()


def settle(consumer: TickConsumer) -> None:
    """A drain is complete once no entry delivered before it finished reading is pending in the group.

    Waits up to ``drain_wait_ms`` for live consumers to ack what they hold, claiming meanwhile from
    consumers that turn out dead and entries idle past ``claim_idle_ms``; what live consumers still hold
    then is reported (``held``) and the drain is not complete.
    """
    opts = consumer.options
    group = next((g for g in consumer._client.xinfo_groups(opts.stream) if g.get("name") == opts.group), None)
    boundary = str(group["last-delivered-id"]) if group else "0-0"
    deadline = time.monotonic() + opts.drain_wait_ms / 1000
    while True:
        _wait_for_acks(consumer, boundary, min(deadline, time.monotonic() + SETTLE_POLL_SECONDS))
        consumer._claim(full=True)
        consumer._flush()
        consumer._collect_side(wait=True)
        held: dict[str, int] = {}
        for row in claims.pending_entries(consumer._client, opts.stream, opts.group, 10_000, end=boundary):
            held[row.consumer] = held.get(row.consumer, 0) + 1
        consumer.report.held = held
        consumer.report.complete = not held
        if not held or time.monotonic() >= deadline:
            break
    if held:
        log.warning("%s", incomplete_message(opts, consumer.report))
    for facts in claims.consumers(consumer._client, opts.stream, opts.group):  # owners emptied by the claims above
        if facts.name not in consumer.report.forgotten:
            consumer._forget(facts)


def _wait_for_acks(consumer: TickConsumer, boundary: str, until: float) -> None:
    """Until ``until``, or until XPENDING's summary shows nothing pending up to ``boundary`` (its oldest pending
    entry is later, or there is none), which the full round then confirms. A dead consumer's entries wait for that
    round at most SETTLE_POLL_SECONDS more: it is found dead only after ``dead_after_ms`` anyway."""
    poll = SETTLE_FIRST_POLL_SECONDS
    while True:
        summary = consumer._client.xpending(consumer.options.stream, consumer.options.group)
        if not summary["pending"] or _id_parts(str(summary["min"])) > _id_parts(boundary):
            return
        if (left := until - time.monotonic()) <= 0:
            return
        time.sleep(min(poll, left))
        poll *= 2


def _id_parts(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
