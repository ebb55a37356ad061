"""The consumer itself: its state, one run's loop, and its duties (sibling modules) bound as its methods."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.domain.market.reorder import ReorderBuffer
from shadow_pipeline.ingest.attempts import FailedAttempts
from shadow_pipeline.ingest.consumer import claiming, reading, reconnecting, settling
from shadow_pipeline.ingest.consumer.read_ahead import ReadAhead
from shadow_pipeline.ingest.consumer.reading import PROGRESS_SECONDS, Read
from shadow_pipeline.ingest.consumer.report import IncompleteDrain, IngestReport, incomplete_message
from shadow_pipeline.ingest.guard import SequenceGuard
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.ingest.landing_faults import LandingAttempts
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.ingest.options import IngestOptions
from shadow_pipeline.redis_io.connect import connect

log = logging.getLogger(__name__)


class TickConsumer:
    """One consumer of the group; its duties live in sibling modules, bound here as methods so that a subclass
    can override any of them (tests inject failures through ``_accept`` and ``_claim``)."""

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
        self.metrics.consuming(self.options.stream)
        self.report = IngestReport()
        self._url = url
        self._client_factory = client_factory or (lambda **kw: connect(url, **kw))
        self._buffer = ReorderBuffer(int(self.options.watermark_ms * 1e6), self.options.buffer_capacity)
        # The first lag check waits a second like the others: counting the lag runs a script that blocks Redis
        # (up to 1,000 entries, 5-20 ms), which at the start of a run only delays the first read; a drain's end
        # sets the gauge anyway.
        self._next_lag_check = time.monotonic() + 1.0
        self._landing_attempts = LandingAttempts(str(landing.root), self.metrics)  # a batch's; serve() waits
        self._next_progress = time.monotonic() + PROGRESS_SECONDS
        self._next_claim = time.monotonic() + self.options.claim_every_seconds
        self._claim_cursor = "0-0"  # XAUTOCLAIM's cursor, kept across rounds while serving
        self._ready: list[pd.DataFrame] = []  # released, not yet landed (their entries are still pending)
        self._ready_since: float | None = None  # when the oldest released tick not yet landed was released
        # Reads ahead: while a batch is processed, the next one is parsed and Redis serializes the one after it
        # (see _read_new and consumer.read_ahead).
        # Guard updates, landings and their XACKs run in order on another thread, overlapping the next batches;
        # a batch's XACK follows its own durable landing in the same job, so the exactly-once contract holds.
        # Both single-thread pools live for one run (see _run).
        self._reader: ThreadPoolExecutor
        self._side: ThreadPoolExecutor
        self._prefetched: Future[Read] | None = None
        self._read_ahead: ReadAhead | None = None  # the reader thread's own connection, with a read sent ahead
        self._side_work: list[tuple[Future[Any], Callable[[Any], None]]] = []
        # Side calls not confirmed yet, redone after a reconnect: XACKs of landed entries (acked again rather than
        # re-read, so that a lost connection never lands and counts an entry twice) and sequence-guard checks.
        self._unacked: dict[int, list[str]] = {}
        # ... and what they landed, counted once acked: by ``_landed``, or by the recovery when the ack was lost.
        self._unaccounted: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self._generation = 0  # bumped when a recovery abandons the side calls still running (drop_prefetched)
        self._landing: dict[int, list[str]] = {}  # handed to the side thread to land and ack, not done yet
        self._unguarded: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = {}
        self._check_failed = False  # a guard check raised: landings ack nothing until a recovery re-checks
        self._side_tokens = itertools.count()
        self._marked: list[str] = []  # entries whose processing is marked as under way (ingest.attempts)
        self._claimed_recent: set[str] = set()  # claimed from this consumer's own reads in flight, maybe
        self._claimed_reads_left = 0  # reads to take before _claimed_recent can hold nothing they bring
        self._client = self._connect()  # fails fast, with a clear message, when Redis is down at start
        self._guard = SequenceGuard(self._client, self.options.stream, self.options.group)
        self._attempts = FailedAttempts(self._client, self.options.stream, self.options.group)

    def _connect(self) -> redis.Redis:
        return self._client_factory(decode_responses=True, socket_timeout=max(5.0, self.options.block_ms / 1000 + 5))

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

    def _run(self, stop: threading.Event | None) -> IngestReport:
        started = time.perf_counter()
        opts = self.options
        log.info("consumer %s of group %s on %s: start", opts.consumer, opts.group, opts.stream)
        try:
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
                self._with_reconnect(self._confirm_gaps)
                self._with_reconnect(lambda: self._update_lag(force=True))
        finally:
            self._close_read_ahead()  # the reader thread has stopped
        self.report.seconds = time.perf_counter() - started
        log.info("consumer %s: done: %s", opts.consumer, self.report.as_dict())
        return self.report

    # -- the duties -----------------------------------------------------------------------------------------

    _read_new = reading.read_new
    _process_prefetched = reading.process_prefetched
    _drop_prefetched = reading.drop_prefetched
    _close_read_ahead = reading.close_read_ahead
    _xreadgroup = reading.xreadgroup
    _update_lag = reading.update_lag
    _process = reading.process
    _accept = reading.accept
    _submit_side = reading.submit_side
    _collect_side = reading.collect_side
    _guarded = reading.guarded
    _account_guard = reading.account_guard
    _confirm_gaps = reading.confirm_gaps

    _land_due = settling.land_due
    _land_ready = settling.land_ready
    _land = settling.land
    _landed = settling.landed
    _ack = settling.ack
    _dead_letter = settling.dead_letter
    _flush = settling.flush
    _settle = settling.settle

    _recover_pending = claiming.recover_pending
    _maintain = claiming.maintain
    _heartbeat = claiming.heartbeat
    _claim = claiming.claim
    _forget = claiming.forget
    _claim_from_dead = claiming.claim_from_dead
    _dead_letter_trimmed = claiming.dead_letter_trimmed
    _take = claiming.take
    _attempt = claiming.attempt
    _unmark = claiming.unmark
    _held_ids = claiming.held_ids

    _with_reconnect = reconnecting.with_reconnect
    _recover_after_reconnect = reconnecting.recover_after_reconnect
    _ensure_group = reconnecting.ensure_group
