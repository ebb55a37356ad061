"""A draining consumer's settling against a real Redis: it waits for a live consumer's acks (polling XPENDING's
summary between full rounds), and entries delivered after its reading ended never hold it back (the summary's
oldest pending id is compared with the drain's boundary)."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP
from shadow_pipeline_tests.ingest_helpers import replay_synthetic

PATIENT = {"drain_wait_ms": 120_000, "dead_after_ms": 60_000, "claim_idle_ms": 600_000}  # the holders stay live


class LateEntryConsumer(TickConsumer):
    """At its settle's first claim round (its boundary is set by then): a new entry, delivered to ``late`` and
    left pending; and, a moment later, the ``holder``'s entries acked."""

    def __init__(self, *args: object, holder_ids: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.holder_ids = holder_ids
        self.settling = False
        self.timer: threading.Timer | None = None

    def _settle(self) -> None:
        self.settling = True
        super()._settle()

    def _claim(self, full: bool) -> int:
        if self.settling and self.timer is None:
            opts, client = self.options, self._client
            client.xadd(opts.stream, {"symbol": "BTCUSDT"})
            client.xreadgroup(opts.group, "late", {opts.stream: ">"})
            self.timer = threading.Timer(0.2, lambda: client.xack(opts.stream, opts.group, *self.holder_ids))
            self.timer.start()
        return super()._claim(full)


def test_a_drain_is_complete_once_a_live_holder_acks_and_entries_delivered_after_it_do_not_count(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=5)
    redis_client.xgroup_create(stream, CONSUMER_GROUP, id="0")
    held = redis_client.xreadgroup(CONSUMER_GROUP, "holder", {stream: ">"}, count=50)
    holder_ids = [str(entry[0]) for entry in held[0][1]]  # type: ignore[index]
    options = IngestOptions(stream=stream, consumer="drainer", **PATIENT)  # type: ignore[arg-type]
    consumer = LateEntryConsumer(LandingStore(tmp_path), options, redis_url, holder_ids=holder_ids)
    report = consumer.drain()
    assert consumer.timer is not None
    consumer.timer.join()
    assert report.complete and report.held == {}
    pending = redis_client.xpending(stream, CONSUMER_GROUP)
    assert pending["pending"] == 1 and pending["consumers"] == [{"name": "late", "pending": 1}]
