"""The tick consumer: XREADGROUP in batches, guard, reorder, land durably, then XACK.

Start-up order (so that nothing a crashed consumer held is lost): re-read this consumer's own pending
entries (the default name is stable across restarts: host and slot, no PID), claim what dead consumers own and
what any consumer left idle too long, then read new ones; while serving, claiming goes on periodically, and a
drain is complete only once nothing delivered before its end is pending (docs/ingest.md, "Claiming and
completeness"). An entry is
acked only once the tick it carries is landed (or dropped by backpressure and landed as a drop record, or
written to the dead-letter stream in the same MULTI/EXEC as its XACK). Landing dedups by entry id, so a
redelivery after a crash between landing and ack never duplicates a tick.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.domain.market.reorder import Release, ReorderBuffer
from shadow_pipeline.domain.market.ticks import ParsedBatch
from shadow_pipeline.ingest import claims, dead_letters
from shadow_pipeline.ingest.attempts import FailedAttempts
from shadow_pipeline.ingest.deliveries import Delivery, from_claim_reply, from_range_reply, from_reply
from shadow_pipeline.ingest.guard import GuardCounts, SequenceGuard
from shadow_pipeline.ingest.landing import Kind, LandingStore
from shadow_pipeline.ingest.landing_faults import LandingAttempts
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.ingest.options import IngestOptions, default_consumer_name
from shadow_pipeline.redis_io.connect import RedisRefused, RedisUnavailable, connect
from shadow_pipeline.redis_io.raw_reply import read_raw
from shadow_pipeline.redis_io.url import redact

__all__ = [
    "IncompleteDrain",
    "IngestOptions",
    "IngestReport",
    "TickConsumer",
    "default_consumer_name",
    "incomplete_message",
]

log = logging.getLogger(__name__)
_REFUSED = (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError, RedisRefused)
# Not OSError: a landing write that fails (disk full, permissions) is not a lost Redis and must not be retried as one.
_CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError)
PROGRESS_SECONDS = 10.0


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
    claimed: int = 0  # entries taken over from other consumers (included in read and redelivered)
    claimed_from_dead: int = 0  # ... of them from consumers found dead (idle past dead_after_ms)
    over_delivered: int = 0  # entries dead-lettered as poison: processing failed max_deliveries times (in dead_letters)
    forgotten: list[str] = field(default_factory=list)  # idle consumers without entries, deleted from the group
    complete: bool | None = None  # a drain: True once nothing delivered before its end is pending in the group
    held: dict[str, int] = field(default_factory=dict)  # a drain: entries live consumers still held at its end
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


class IncompleteDrain(RuntimeError):
    """A drain ended while live consumers still held entries delivered before it ended."""


def _subset(delivery: Delivery, keep: np.ndarray) -> Delivery:
    """The entries at positions ``keep`` (sorted), renumbered."""
    ticks, rejects = delivery.parsed.ticks, delivery.parsed.rejects
    ticks = ticks[ticks.index.isin(keep)]
    rejects = rejects[rejects.index.isin(keep)]
    parsed = ParsedBatch(
        ticks.set_axis(np.searchsorted(keep, ticks.index.to_numpy())),
        rejects.set_axis(np.searchsorted(keep, rejects.index.to_numpy())),
    )
    return Delivery(delivery.ids[keep], parsed, lambda p: delivery.original(int(keep[p])))


def _without(delivery: Delivery, ids: set[str]) -> Delivery:
    if not ids:
        return delivery
    return _subset(delivery, np.array([p for p, i in enumerate(delivery.ids) if i not in ids], dtype=np.int64))


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
        self._landing_attempts = LandingAttempts(str(landing.root), self.metrics)  # a batch's; serve() waits
        self._next_progress = time.monotonic() + PROGRESS_SECONDS
        self._next_claim = time.monotonic() + self.options.claim_every_seconds
        self._claim_cursor = "0-0"  # XAUTOCLAIM's cursor, kept across rounds while serving
        self._ready: list[pd.DataFrame] = []  # released, not yet landed (their entries are still pending)
        self._ready_since: float | None = None  # when the oldest released tick not yet landed was released
        # One read ahead: while a batch is processed, Redis already serializes the next one (see _read_new).
        # Guard updates and XACKs go to Redis in order on another thread, overlapping the next batch's parse;
        # an XACK is only submitted once its ticks are landed, so the at-least-once contract is unchanged.
        # Both single-thread pools live for one run (see _run).
        self._reader: ThreadPoolExecutor
        self._side: ThreadPoolExecutor
        self._prefetched: Future[Delivery] | None = None
        self._side_work: list[tuple[Future[Any], Callable[[Any], None]]] = []
        # Side calls not confirmed yet, redone after a reconnect: XACKs of landed entries (acked again rather than
        # re-read, so that a lost connection never lands and counts an entry twice) and sequence-guard checks.
        self._unacked: dict[int, list[str]] = {}
        self._unguarded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._side_tokens = itertools.count()
        self._marked: list[str] = []  # entries whose processing is marked as under way (ingest.attempts)
        self._client = self._connect()  # fails fast, with a clear message, when Redis is down at start
        self._guard = SequenceGuard(self._client, self.options.stream, self.options.group)
        self._attempts = FailedAttempts(self._client, self.options.stream, self.options.group)

    def _connect(self) -> redis.Redis:
        return self._client_factory(decode_responses=True, socket_timeout=max(5.0, self.options.block_ms / 1000 + 5))

    # -- public ---------------------------------------------------------------------------------------------

    def drain(self) -> IngestReport:
        """Land everything the stream holds for this group now, flush the reorder buffer, and return.

        Entries other consumers hold are claimed when their owner is dead (or they are idle past
        ``claim_idle_ms``); the report says ``complete`` only once nothing delivered before the drain's end is
        pending in the group (``held``: what live consumers still held when ``drain_wait_ms`` ran out).
        """
        return self._run(stop=None)

    def drain_completely(self) -> IngestReport:
        """:meth:`drain`, raising :class:`IncompleteDrain` when it was not complete."""
        report = self.drain()
        if not report.complete:
            raise IncompleteDrain(incomplete_message(self.options, report))
        return report

    def serve(self, stop: threading.Event) -> IngestReport:
        """Run until ``stop`` is set (SIGTERM in the CLI); the current batch finishes and the buffer is flushed.
        A full landing zone is waited out (ingest.landing_faults); a drain stops on it instead."""
        self._landing_attempts = LandingAttempts(str(self.landing.root), self.metrics, stop)
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
                if stop is not None:
                    self._with_reconnect(self._maintain)
                elif not got:
                    break  # drained: nothing new for this group
            self._with_reconnect(self._process_prefetched)  # delivered to us already: land it before leaving
            self._with_reconnect(self._flush)
            self._with_reconnect(lambda: self._collect_side(wait=True))
            if stop is None:
                self._with_reconnect(self._settle)
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
                self._unmark()
                self._ensure_group()
            except _REFUSED:
                raise  # wrong credentials or no permission: retrying for reconnect_seconds would not change that
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
        self._ready_since = None
        self._client = self._connect()
        self._guard = SequenceGuard(self._client, self.options.stream, self.options.group)
        self._attempts = FailedAttempts(self._client, self.options.stream, self.options.group)
        self._unmark()  # a lost connection is no failure of the entries in processing
        for ids in self._unacked.values():  # landed before the connection was lost: ack, do not land again
            self._ack(self._client, ids)
        self._unacked.clear()
        for symbols, seqs in self._unguarded.values():  # as redeliveries: a check that did run counts nothing twice
            self._account_guard(self._guard.check(symbols, seqs, redelivered=True))
        self._unguarded.clear()
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
        """Own pending entries first, then what dead consumers own and what others left idle too long."""
        self._ensure_group()
        held = self._held_ids()  # e.g. re-read by a recovery already: processing them again would land them twice
        last = "0"
        while True:
            delivery = self._xreadgroup(last, block=None)
            if not len(delivery):
                break
            last = delivery.ids[-1]
            self._take(_without(delivery, held))
        self._claim(full=True)

    # -- claiming -------------------------------------------------------------------------------------------

    def _maintain(self) -> None:
        """While serving, between reads: land on time, and claim every ``claim_every_ms``."""
        now = time.monotonic()
        if self._ready_since is not None and now - self._ready_since >= self.options.land_every_ms / 1000:
            self._land_ready()
        if now >= self._next_claim:
            self._next_claim = now + self.options.claim_every_seconds
            self._heartbeat()
            self._claim(full=False)

    def _heartbeat(self) -> None:
        """Refresh this consumer's ``idle`` while it holds entries, so that others see it alive.

        Redis < 7.2 counts only reads that deliver something as activity: a serving consumer on a quiet stream
        would look dead while its reorder buffer holds the newest ticks. XCLAIM ... JUSTID of its own oldest
        pending entry refreshes it without counting a delivery. Done by the serving loop itself, so a consumer
        stuck in processing does not look alive.
        """
        opts = self.options
        own = claims.pending_entries(self._client, opts.stream, opts.group, 1, consumer=opts.consumer)
        if own:
            reply = read_raw(self._client, "XCLAIM", opts.stream, opts.group, opts.consumer, 0, own[0].id, "JUSTID")
            if reply[0] == ord("-"):
                raise claims.error_of(reply)

    def _claim(self, full: bool) -> int:
        """Take over what dead consumers own, then entries idle past ``claim_idle_ms`` (XAUTOCLAIM, resuming
        from the last cursor; ``full``: through the whole pending list), and forget long-idle empty consumers.

        A consumer is dead when it has not read or claimed for ``dead_after_ms`` (XINFO CONSUMERS ``idle``) while
        owning entries: a serving consumer reads at least every ``block_ms``. Its entries are claimed with
        XCLAIM's min-idle at ``dead_after_ms``, so an entry it re-read meanwhile (it came back) stays its own.
        """
        opts = self.options
        taken = 0
        for facts in claims.consumers(self._client, opts.stream, opts.group):
            if facts.name == opts.consumer:
                continue
            if facts.pending and facts.idle_ms >= opts.dead_after_ms:
                got = self._claim_from_dead(facts)
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
                self._forget(facts)
        pages = 0
        while True:
            reply = read_raw(
                self._client,
                "XAUTOCLAIM",
                opts.stream,
                opts.group,
                opts.consumer,
                opts.claim_idle_ms,
                self._claim_cursor,
                "COUNT",
                opts.batch,
            )
            # Entries trimmed from the stream while pending come back as TRIMMED rejects: dead letters.
            delivery = from_claim_reply(reply)
            self._claim_cursor = delivery.cursor
            if len(delivery):
                # XAUTOCLAIM takes this consumer's own idle entries too: those it holds are in processing already.
                delivery = _without(delivery, self._held_ids())
            if len(delivery):
                log.info("claimed %d entries idle > %d ms from other consumers", len(delivery), opts.claim_idle_ms)
                self.report.claimed += len(delivery)
                taken += len(delivery)
                self._take(delivery)
            pages += 1
            if self._claim_cursor == "0-0" or (not full and pages >= 10):
                return taken

    def _forget(self, facts: claims.ConsumerFacts) -> None:
        """Delete a consumer idle past ``forget_after_ms`` that owns nothing (checked again, atomically)."""
        opts = self.options
        if facts.name == opts.consumer or facts.pending or facts.idle_ms < opts.forget_after_ms:
            return
        if claims.forget_consumer(self._client, opts.stream, opts.group, facts.name):
            self.report.forgotten.append(facts.name)
            log.info("consumer %s: deleted idle consumer %s from the group", opts.consumer, facts.name)

    def _claim_from_dead(self, owner: claims.ConsumerFacts) -> int:
        opts = self.options
        taken, start = 0, "-"
        while True:
            rows = claims.pending_entries(
                self._client,
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
            reply = read_raw(self._client, "XCLAIM", opts.stream, opts.group, opts.consumer, opts.dead_after_ms, *ids)
            delivery = from_range_reply(reply)  # XCLAIM replies with entries, as XRANGE does
            missing = set(ids).difference(delivery.ids.tolist())
            if missing:  # XCLAIM drops entries deleted from the stream from the group without saying so
                self._dead_letter_trimmed(sorted(missing, key=claims.id_key))
            self.report.claimed += len(delivery)
            self.report.claimed_from_dead += len(delivery)
            taken += len(delivery)
            self._take(delivery)
            if len(rows) < opts.batch:
                return taken
            start = f"({ids[-1]}"

    def _dead_letter_trimmed(self, ids: list[str]) -> None:
        """Of entries a claim did not return: those no longer pending and gone from the stream were trimmed."""
        opts = self.options
        gone = []
        for entry_id in ids:
            still_pending = claims.pending_entries(
                self._client, opts.stream, opts.group, 1, start=entry_id, end=entry_id
            )
            exists = self._client.execute_command("XRANGE", opts.stream, entry_id, entry_id, NEVER_DECODE=True)
            if not still_pending and not exists:
                gone.append(entry_id)
        if gone:
            self._process(claims.trimmed(gone), redelivered=True)

    def _take(self, delivery: Delivery) -> None:
        """Process redelivered entries (re-read after a restart or reconnect, or claimed), counting failures.

        An entry whose processing failed ``max_deliveries`` times before (``ingest.attempts``: not Redis's
        delivery count, which also counts re-reads of valid ticks) is dead-lettered. One that failed fewer times
        is processed alone, so that a poison entry's failures are its own and not its batch-mates'.
        """
        if not len(delivery):
            return
        opts = self.options
        failures = self._attempts.counts(delivery.ids.tolist())
        poison = np.flatnonzero(failures >= opts.max_deliveries)
        if len(poison):
            reasons = [f"processing failed {n} times (max_deliveries {opts.max_deliveries})" for n in failures[poison]]
            self._dead_letter(_subset(delivery, poison), pd.Series(reasons, index=range(len(poison)), dtype=object))
            self._attempts.end(delivery.ids[poison].tolist())
            self.report.over_delivered += len(poison)
        unsuspected = np.flatnonzero(failures == 0)
        if len(unsuspected):
            self._attempt(_subset(delivery, unsuspected))
        for position in np.flatnonzero((failures > 0) & (failures < opts.max_deliveries)):
            self._attempt(_subset(delivery, np.array([position])))

    def _attempt(self, delivery: Delivery) -> None:
        """Process redelivered entries between marking them and unmarking them (``ingest.attempts``)."""
        self._marked = delivery.ids.tolist()
        self._attempts.begin(self._marked)
        release = self._accept(delivery, redelivered=True)
        self._unmark()
        self._land_due(release, len(delivery))

    def _unmark(self) -> None:
        if self._marked:
            self._attempts.end(self._marked)
            self._marked = []

    def _held_ids(self) -> set[str]:
        """Entries this consumer holds in memory (buffered, released, or landed with their XACK under way)."""
        held = set(self._buffer.held().get("entry_id", pd.Series(dtype=object)).tolist())
        for frame in self._ready:
            held.update(frame.get("entry_id", pd.Series(dtype=object)).tolist())
        for ids in self._unacked.values():
            held.update(ids)
        return held

    # -- the end of a drain ---------------------------------------------------------------------------------

    def _settle(self) -> None:
        """A drain is complete once no entry delivered before it finished reading is pending in the group.

        Waits up to ``drain_wait_ms`` for live consumers to ack what they hold, claiming meanwhile from
        consumers that turn out dead and entries idle past ``claim_idle_ms``; what live consumers still hold
        then is reported (``held``) and the drain is not complete.
        """
        opts = self.options
        group = next((g for g in self._client.xinfo_groups(opts.stream) if g.get("name") == opts.group), None)
        boundary = str(group["last-delivered-id"]) if group else "0-0"
        deadline = time.monotonic() + opts.drain_wait_ms / 1000
        while True:
            self._claim(full=True)
            self._flush()
            self._collect_side(wait=True)
            held: dict[str, int] = {}
            for row in claims.pending_entries(self._client, opts.stream, opts.group, 10_000, end=boundary):
                held[row.consumer] = held.get(row.consumer, 0) + 1
            self.report.held = held
            self.report.complete = not held
            if not held or time.monotonic() >= deadline:
                break
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        if held:
            log.warning("%s", incomplete_message(opts, self.report))
        for facts in claims.consumers(self._client, opts.stream, opts.group):  # owners emptied by the claims above
            if facts.name not in self.report.forgotten:
                self._forget(facts)

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
        side_work, self._side_work = self._side_work, []
        for call, then in [*side_work, *([(future, None)] if future is not None else [])]:
            try:
                result = call.result(timeout=self.options.block_ms / 1000 + 10)
            except Exception:  # its XACK or guard check is redone by the recovery (_unacked, _unguarded)
                log.debug("call in flight failed during recovery", exc_info=True)
            else:
                if then is not None:
                    then(result)

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
        lag = claims.consistent_lag(self._client, self.options.stream, self.options.group)
        if lag is not None:
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
        self._land_due(self._accept(delivery, redelivered), len(delivery))

    def _accept(self, delivery: Delivery, redelivered: bool) -> Release:
        """An entry's own processing: dead-letter it with its reason, or check its seq and buffer its tick."""
        ids = delivery.ids
        self.report.read += len(ids)
        if redelivered:
            self.report.redelivered += len(ids)
        self._dead_letter(delivery)
        ticks = delivery.parsed.ticks  # with entry_id and ts_broker (see ingest.deliveries)
        if not ticks.empty:
            symbols, seqs = ticks["symbol"].to_numpy(), ticks["seq"].to_numpy(dtype=np.int64)
            guard, token = self._guard, next(self._side_tokens)
            self._unguarded[token] = (symbols, seqs)
            self._submit_side(lambda: guard.check(symbols, seqs, redelivered), partial(self._guarded, token))
        release = self._buffer.push(ticks.reset_index(drop=True))
        self.report.peak_buffered = max(self.report.peak_buffered, len(self._buffer))
        _add(self.report.reordered, release.reordered)
        for symbol, count in release.reordered.items():
            self.metrics.reordered.labels(symbol).inc(count)
        self._ready.append(release.released)
        if self._ready_since is None and not release.released.empty:
            self._ready_since = time.monotonic()
        return release

    def _land_due(self, release: Release, entries: int) -> None:
        """Land what is released when enough waits, the batch was short (a quiet feed) or it waited too long."""
        if not release.dropped.empty:
            self._land_ready()
            self._land(release.released.iloc[0:0], release.dropped)
        elif (
            sum(len(r) for r in self._ready) >= self.options.land_every
            or entries < self.options.batch
            or (
                self._ready_since is not None
                and time.monotonic() - self._ready_since >= self.options.land_every_ms / 1000
            )
        ):
            self._land_ready()

    def _land_ready(self) -> None:
        ready = [r for r in self._ready if not r.empty]
        self._ready = []
        self._ready_since = None
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

    def _guarded(self, token: int, found: dict[str, GuardCounts]) -> None:
        self._unguarded.pop(token, None)
        self._account_guard(found)

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
        # A refused write raises LandingError (or, serving, waits for space) before anything below is acked.
        self.landing.write(Kind.TICKS, released, self.options.consumer, self._landing_attempts)
        self.landing.write(Kind.DROPS, dropped, self.options.consumer, self._landing_attempts)
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
            token, chunk = next(self._side_tokens), ids[start : start + 10_000]
            self._unacked[token] = chunk
            self._submit_side(partial(self._ack, self._client, chunk), partial(self._acked, token))

    def _acked(self, token: int, _: int) -> None:
        self._unacked.pop(token, None)

    def _ack(self, client: redis.Redis, ids: list[str]) -> int:
        return int(client.xack(self.options.stream, self.options.group, *ids))

    def _dead_letter(self, delivery: Delivery, extra: pd.Series | None = None) -> None:
        """Dead-letter the delivery's rejects, and ``extra`` (position -> reason: entries to dead-letter for a reason
        of the caller's, e.g. poison ones whose processing failed too often; the caller then lands none of their
        ticks), each record with the entry's original bytes (``ingest.dead_letters.record``), with their XACKs in
        one MULTI/EXEC."""
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
            "dead-lettered %d entries to %s (first: %s: %s)",
            len(rejects),
            opts.dead_letter_stream,
            ids[0],
            rejects.iloc[0],
        )

    def _flush(self) -> None:
        self._ready.append(self._buffer.flush())
        self._land_ready()


def incomplete_message(options: IngestOptions, report: IngestReport) -> str:
    owners = ", ".join(f"{name} ({count})" for name, count in sorted(report.held.items()))
    return (
        f"drain of {options.stream} (group {options.group}) is not complete: live consumers still hold "
        f"{sum(report.held.values())} entries delivered before it ended, after waiting {options.drain_wait_ms} ms: "
        f"{owners}. They are claimed once their owner stops reading for {options.dead_after_ms} ms or once idle "
        f"for {options.claim_idle_ms} ms; run the drain again then."
    )
