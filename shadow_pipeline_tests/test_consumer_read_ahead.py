"""The consumer's read ahead (``ingest.consumer.read_ahead``) and its packed XACK, against a real Redis: a read
sent ahead is always received and landed, and ids are acked whatever the stream's name."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis

from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.consumer.read_ahead import has_entries
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.redis_io.raw_reply import read_raw, read_raw_strings
from shadow_pipeline_tests.ingest_helpers import landed, replay_synthetic


def test_a_consumer_stopped_while_reads_are_ahead_lands_and_acks_what_it_read(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=300)
    store = LandingStore(tmp_path)
    consumer = TickConsumer(store, IngestOptions(stream=stream, batch=200, block_ms=100), redis_url)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.serve, args=(stop,))
    worker.start()
    deadline = time.monotonic() + 60
    while consumer.report.read < 1000 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()  # mid-stream: a batch is read ahead and the read after it is sent
    worker.join(timeout=60)
    assert not worker.is_alive()
    ticks = landed(store)
    assert redis_client.xlen(stream) > consumer.report.read  # stopped before the end of the stream
    assert redis_client.xpending(stream, "shadow")["pending"] == 0  # every entry delivered was acked ...
    assert len(ticks) == consumer.report.read == consumer.report.landed_total
    assert max(landed_rows(tmp_path).values()) == 1  # ... and landed once (readers would hide a second copy)


def landed_rows(folder: Path) -> Counter[str]:
    """Rows per entry id over every landed file, as written: ``landed`` keeps one row per entry id."""
    rows: Counter[str] = Counter()
    for path in folder.rglob("*.parquet"):
        rows.update(pq.read_table(path, columns=["entry_id"]).column(0).to_pylist())
    return rows


def test_a_claim_never_lands_again_what_a_read_in_flight_brings(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    """Claiming every round with no idle time, the consumer claims its own entries of the read sent ahead, which
    its held entries cannot name yet: those are landed once, by the claim, and dropped from the read's reply."""
    entries = replay_synthetic(redis_client, stream, seconds=120).entries
    store = LandingStore(tmp_path)
    options = IngestOptions(stream=stream, batch=300, block_ms=100, claim_idle_ms=0, claim_every_ms=0)
    consumer = TickConsumer(store, options, redis_url)
    # Made here, not by the consumer's thread: polled below from the start, it must exist before that thread runs.
    redis_client.xgroup_create(stream, options.group, id=options.group_start_id)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.serve, args=(stop,))
    worker.start()
    deadline = time.monotonic() + 120
    while redis_client.xpending(stream, "shadow")["pending"] + len(landed_rows(tmp_path)) < entries:
        assert time.monotonic() < deadline, "the consumer did not take the stream within 120 s"
        time.sleep(0.2)
    stop.set()
    worker.join(timeout=60)
    rows = landed_rows(tmp_path)
    assert consumer.report.claimed > 0  # the claims did take entries of this consumer's own
    assert len(rows) == entries and max(rows.values()) == 1
    assert sum(consumer.report.duplicates.values()) == 0  # and the sequence guard saw each tick once


def test_entries_of_a_stream_and_group_named_in_any_script_are_acked(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    name = f"{stream}:tïcks-ß-株"
    replayed = replay_synthetic(redis_client, name, seconds=5)
    store = LandingStore(tmp_path)
    report = TickConsumer(store, IngestOptions(stream=name, group="grüppe"), redis_url).drain()
    assert report.landed == replayed.ticks_by_symbol
    assert redis_client.xpending(name, "grüppe")["pending"] == 0


def test_members_of_any_length_and_text_are_all_sent(redis_client: redis.Redis, stream: str) -> None:
    """Members are packed grouped by length (ids of 3 to 20 characters here, in no order) and non-ASCII text by
    its bytes: Redis gets each of them once."""
    ids = [f"{ms}-{seq}" for ms, seq in [(1, 1), (1, 12), (25, 3), (10**17, 7)]]
    for entry_id in ids:
        redis_client.xadd(stream, {"a": "1"}, id=entry_id)
    redis_client.xgroup_create(stream, "g", id="0")
    redis_client.xreadgroup("g", "c", {stream: ">"})
    assert bytes(read_raw_strings(redis_client, ["XACK", stream, "g"], [ids[2], ids[0], ids[3], ids[1]])) == b":4\r\n"
    members = ["ß", "株式", "ab", "c", "de"]
    key = f"{stream}:members"
    assert bytes(read_raw_strings(redis_client, ["SADD", key], members)) == b":5\r\n"
    assert redis_client.smembers(key) == set(members)
    redis_client.delete(key)


@pytest.mark.parametrize("protocol", [2, 3])
def test_has_entries_tells_a_delivery_from_no_entries_and_errors(redis_url: str, stream: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    client.xadd(stream, {"a": "1"})
    client.xgroup_create(stream, "g", id="0")

    def read(group: str, *block: str | int) -> bool:
        return has_entries(read_raw(client, "XREADGROUP", "GROUP", group, "c", *block, "STREAMS", stream, ">"))

    assert read("g")  # the entry
    assert not read("g")  # nothing new: nil
    assert not read("g", "BLOCK", 10)  # nothing within BLOCK: nil (RESP2), null (RESP3)
    assert not read("no-such-group")  # an error reply
    client.close()
