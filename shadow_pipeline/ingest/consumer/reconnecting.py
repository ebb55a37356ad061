"""Reconnecting: a lost connection or a deleted stream is retried and recovered from what Redis knows,
so that nothing is landed or counted twice."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import redis

from shadow_pipeline.domain.market.reorder import ReorderBuffer
from shadow_pipeline.ingest.attempts import FailedAttempts
from shadow_pipeline.ingest.guard import SequenceGuard
from shadow_pipeline.redis_io.connect import RedisRefused, RedisUnavailable
from shadow_pipeline.redis_io.url import redact

if TYPE_CHECKING:
    from shadow_pipeline.ingest.consumer.tick_consumer import TickConsumer

log = logging.getLogger(__name__)
_REFUSED = (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError, RedisRefused)
# Not OSError: a landing write that fails (disk full, permissions) is not a lost Redis and must not be retried as one.
_CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError)


def with_reconnect(consumer: TickConsumer, step: Any) -> Any:
    """Run ``step``; on a lost connection reconnect with backoff and recover before trying it again."""
    deadline = time.monotonic() + consumer.options.reconnect_seconds
    wait = 0.1
    recovering = False
    while True:
        try:
            if recovering:
                consumer._recover_after_reconnect()
                recovering = False
            return step()
        except redis.exceptions.ResponseError as exc:
            # NOGROUP: the stream or group was deleted; UNBLOCKED: deleted under a blocked read; "no such key":
            # deleted under XINFO. All three: recreate the group and read on.
            if not (str(exc).startswith(("NOGROUP", "UNBLOCKED")) or "no such key" in str(exc)):
                raise
            log.warning(
                "stream %s or group %s is gone (%s): recreating the group",
                consumer.options.stream,
                consumer.options.group,
                str(exc).split(" ", 1)[0],
            )
            consumer._drop_prefetched()
            consumer._marked = []
            consumer._attempts.forget_all()  # marks of the group that is gone
            consumer._ensure_group()
        except _REFUSED:
            raise  # wrong credentials or no permission: retrying for reconnect_seconds would not change that
        except _CONNECTION_ERRORS as exc:
            if time.monotonic() > deadline:
                raise RedisUnavailable(
                    f"lost Redis at {redact(consumer._url) if consumer._url else 'the configured URL'} and could not "
                    f"reconnect within {consumer.options.reconnect_seconds}s: {exc}"
                ) from None
            log.warning("Redis connection lost (%s); retrying in %.1fs", exc, wait)
            time.sleep(wait)
            wait = min(wait * 2, 5.0)
            consumer.report.reconnects += 1
            recovering = True


def recover_after_reconnect(consumer: TickConsumer) -> None:
    """Start over from what Redis knows: every entry not yet acked is still pending for this consumer.

    Ticks held in memory (reorder buffer, not yet landed) belong to unacked entries, so they are dropped
    here and come back with the pending entries; landing dedups by entry id what was landed but not acked.
    """
    consumer._drop_prefetched()
    consumer._buffer = ReorderBuffer(int(consumer.options.watermark_ms * 1e6), consumer.options.buffer_capacity)
    consumer._ready = []
    consumer._ready_since = None
    consumer._client = consumer._connect()
    consumer._guard = SequenceGuard(consumer._client, consumer.options.stream, consumer.options.group)
    consumer._attempts = FailedAttempts(consumer._client, consumer.options.stream, consumer.options.group)
    consumer._unmark()  # a lost connection is no failure of the entries in processing
    # Checks first: an acked entry counts as checked for the group's guard. One that ran counts nothing twice.
    for symbols, seqs, entry_ids, contiguous in consumer._unguarded.values():
        consumer._account_guard(consumer._guard.check(symbols, seqs, True, entry_ids, contiguous))
    consumer._unguarded.clear()
    consumer._check_failed = False
    for token, ids in list(consumer._unacked.items()):  # landed before the connection was lost: ack, not land again
        consumer._ack(consumer._client, ids)
        landed = consumer._unaccounted.pop(token, None)
        if landed is not None:  # and count: its own accounting never ran
            consumer._landed(token, *landed, None)
    consumer._unacked.clear()
    consumer._unaccounted.clear()
    consumer._landing.clear()  # not landed (their writes failed or never ran): pending, re-read below
    consumer._recover_pending()
    log.info("consumer %s: reconnected and recovered its pending entries", consumer.options.consumer)


def ensure_group(consumer: TickConsumer) -> None:
    try:
        consumer._client.xgroup_create(
            consumer.options.stream, consumer.options.group, id=consumer.options.group_start_id, mkstream=True
        )
        log.info(
            "created consumer group %s on %s at %s",
            consumer.options.group,
            consumer.options.stream,
            consumer.options.group_start_id,
        )
    except redis.exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
