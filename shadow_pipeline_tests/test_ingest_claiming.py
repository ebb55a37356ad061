"""Claiming and completeness against a real Redis: stable names, dead consumers, live holders, cleanup, landing
on time, and a lag Redis reports wrongly (docs/ingest.md, "Claiming and completeness")."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.ingest import claims
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer, default_consumer_name
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP
from shadow_pipeline.redis_io.raw_reply import read_raw
from shadow_pipeline.redis_io.streams import to_field_rows, xadd_rows
from shadow_pipeline.resources import LandingResource
from shadow_pipeline_tests.ingest_helpers import landed, replay_synthetic

GROUP = CONSUMER_GROUP


def _read_as(client: redis.Redis, stream: str, consumer: str, count: int = 100_000) -> int:
    """Deliver entries to ``consumer`` without acking them (a consumer that then dies or stalls)."""
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    reply = read_raw(client, "XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count, "STREAMS", stream, ">")
    assert chr(reply[0]) in "*%"  # RESP2 or RESP3
    return int(client.xpending(stream, GROUP)["pending"])


def _ticks(n: int, step_ns: int = 1_000_000) -> pd.DataFrame:
    ts = 1_723_161_600_000_000_000 + np.arange(n) * step_ns
    return pd.DataFrame(
        {
            "symbol": "BTCUSDT",
            "seq": np.arange(1, n + 1),
            "ts_server": ts,
            "ts_local": ts + 5_000_000,
            "bid": 60_000.0,
            "ask": 60_000.1,
            "bid_qty": 1.0,
            "ask_qty": 2.0,
            "last_px": "",
            "last_qty": 0.0,
            "last_side": "",
        }
    )


def _wait(condition: object, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_the_default_name_survives_a_restart_and_rereads_its_own_pending(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    other_process = subprocess.run(
        [sys.executable, "-c", "from shadow_pipeline.ingest.consumer import default_consumer_name as d; print(d())"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "SHADOW_INGEST_SLOT"},
    ).stdout.strip()
    assert other_process == default_consumer_name("0") and str(os.getpid()) not in other_process
    assert default_consumer_name("2") != default_consumer_name("0")
    replayed = replay_synthetic(redis_client, stream, seconds=10)
    pending = _read_as(redis_client, stream, default_consumer_name("0"))  # then killed before landing anything
    assert pending == redis_client.xlen(stream)
    store = LandingStore(tmp_path)
    report = TickConsumer(store, IngestOptions(stream=stream, consumer=default_consumer_name("0")), redis_url).drain()
    assert report.redelivered == pending and report.claimed == 0  # its own list, not a claim
    assert report.complete and redis_client.xpending(stream, GROUP)["pending"] == 0
    assert landed(store).groupby("symbol").size().to_dict() == replayed.ticks_by_symbol


def test_a_serving_consumer_claims_what_a_dead_consumer_owns(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replayed = replay_synthetic(redis_client, stream, seconds=10)
    pending = _read_as(redis_client, stream, "dead")
    store = LandingStore(tmp_path)
    options = IngestOptions(stream=stream, consumer="live", block_ms=100, dead_after_ms=600, claim_every_ms=100)
    consumer = TickConsumer(store, options, redis_url)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.serve, args=(stop,))
    worker.start()
    try:
        # All but the newest 40 ms per symbol (the reorder buffer holds them until SIGTERM) are landed and acked.
        assert _wait(lambda: consumer.report.claimed_from_dead == pending)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert redis_client.xpending(stream, GROUP)["pending"] == 0
    assert landed(store).groupby("symbol").size().to_dict() == replayed.ticks_by_symbol


def test_a_drain_claims_a_dead_consumers_entries_without_waiting_for_claim_idle(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replayed = replay_synthetic(redis_client, stream, seconds=10)
    pending = _read_as(redis_client, stream, "killed")  # killed just now: its idle starts at 0
    store = LandingStore(tmp_path)
    started = time.monotonic()
    options = IngestOptions(stream=stream, consumer="drain", dead_after_ms=1500, claim_idle_ms=600_000)
    report = TickConsumer(store, options, redis_url).drain()
    assert report.complete and report.claimed_from_dead == pending and report.held == {}
    assert 1.4 < time.monotonic() - started < 10  # waited for the evidence (1.5 s idle), not for claim_idle_ms
    assert redis_client.xpending(stream, GROUP)["pending"] == 0
    assert landed(store).groupby("symbol").size().to_dict() == replayed.ticks_by_symbol


def _serve_process(url: str, stream: str, landing: Path, consumer: str, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--stream", stream, "--landing", str(landing)]
    return subprocess.Popen(
        [*command, "--consumer", consumer, "--block-ms", "200", *extra],
        env={**os.environ, "REDIS_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_drain_is_not_complete_while_a_live_consumer_holds_old_entries(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replayed = replay_synthetic(redis_client, stream, seconds=5)
    landing = tmp_path / "landing"
    redis_client.xgroup_create(stream, GROUP, id="0")
    # A live consumer whose reorder buffer holds everything (a watermark of an hour, the most the option takes,
    # far beyond the 5 s replayed): it reads, never acks.
    holder = _serve_process(
        redis_url, stream, landing, "holder", "--watermark-ms", "3600000", "--dead-after-ms", "1500"
    )
    try:
        assert _wait(lambda: redis_client.xpending(stream, GROUP)["pending"] == redis_client.xlen(stream), 60)
        pending = redis_client.xlen(stream)
        command = [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--drain", "--stream", stream]
        command += ["--landing", str(landing), "--consumer", "drain", "--dead-after-ms", "1500"]
        command += ["--drain-wait-ms", "3000"]
        done = subprocess.run(
            command, env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 3, done.stderr
        assert "is not complete" in done.stderr and f"holder ({pending})" in done.stderr
        assert '"complete": false' in done.stdout
        assert redis_client.xpending(stream, GROUP)["pending"] == pending  # not stolen from a live consumer
        assert holder.poll() is None
    finally:
        holder.kill()  # SIGKILL: it lands nothing
        holder.wait()
    # Once the holder has stopped for dead_after_ms it is dead, and the next drain lands everything at once.
    done = subprocess.run(
        command, env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert redis_client.xpending(stream, GROUP)["pending"] == 0
    store = LandingResource(base_path=str(landing)).store(stream)
    assert landed(store).groupby("symbol").size().to_dict() == replayed.ticks_by_symbol


def test_idle_consumers_that_own_nothing_are_deleted_and_owners_never(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=2, symbols=("BTCUSDT",))
    _read_as(redis_client, stream, "owner")
    redis_client.execute_command("XGROUP", "CREATECONSUMER", stream, GROUP, "ghost")  # joins, never gets anything
    assert not claims.forget_consumer(redis_client, stream, GROUP, "owner")  # owns entries: kept
    time.sleep(0.4)
    options = IngestOptions(stream=stream, consumer="drain", dead_after_ms=1200, forget_after_ms=300)
    report = TickConsumer(LandingStore(tmp_path), options, redis_url).drain()
    assert report.complete and "ghost" in report.forgotten and "owner" in report.forgotten  # after its claim
    names = {c.name for c in claims.consumers(redis_client, stream, GROUP)}
    assert names == {"drain"}


def test_a_quiet_feed_does_not_hold_released_ticks(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    xadd_rows(redis_client, stream, to_field_rows(_ticks(1000)), maxlen=None)  # two full batches, then silence
    store = LandingStore(tmp_path)
    options = IngestOptions(stream=stream, batch=500, land_every=10**6, land_every_ms=300, block_ms=100)
    consumer = TickConsumer(store, options, redis_url)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.serve, args=(stop,))
    worker.start()
    try:
        # Released: everything but the newest 40 ms (the watermark) of the 1 s of exchange time.
        assert _wait(lambda: consumer.report.landed_total >= 950, seconds=15)
        assert len(landed(store)) == consumer.report.landed_total
        assert redis_client.xpending(stream, GROUP)["pending"] == 1000 - consumer.report.landed_total
    finally:
        stop.set()
        worker.join(timeout=30)


def test_lag_is_corrected_when_redis_reports_an_impossible_value(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=5)
    TickConsumer(LandingStore(tmp_path), IngestOptions(stream=stream), redis_url).drain()
    # What an AOF reload did once: everything delivered, but entries-read lost, so Redis reports a lag forever.
    redis_client.execute_command("XGROUP", "SETID", stream, GROUP, "$", "ENTRIESREAD", 0)
    assert int(redis_client.xinfo_groups(stream)[0]["lag"]) == redis_client.xlen(stream)
    metrics = IngestMetrics()
    TickConsumer(LandingStore(tmp_path), IngestOptions(stream=stream), redis_url, metrics).drain()
    assert metrics.registry.get_sample_value("shadow_ingest_lag_msgs", {"stream": stream}) == 0
    xadd_rows(redis_client, stream, to_field_rows(_ticks(3)), maxlen=None)  # three new, undelivered entries
    assert int(redis_client.xinfo_groups(stream)[0]["lag"]) > 3  # still wrong in Redis
    assert claims.consistent_lag(redis_client, stream, GROUP) == 3


def test_soak_short_kills_and_redis_restarts_lose_and_duplicate_nothing() -> None:
    from shadow_pipeline_tests import soak

    figures = soak.run("short", ticks=30_000, consumers=2, kills=3, redis_restarts=1, gap=0.8)
    assert figures.ok, figures


def test_soak_short_quiet_tail_dead_letters_no_valid_tick() -> None:
    """A quiet stream served with claims every second of entries idle 500 ms, then more kills than max_deliveries
    while its last ticks wait in the reorder buffer: every tick lands once, none is dead-lettered."""
    from shadow_pipeline_tests import soak

    figures = soak.run_quiet("short-quiet", 600, kills=3, quiet_seconds=4, claim_idle_ms=500, max_deliveries=2)
    assert figures.ok and figures.rows_landed_twice == 0 and figures.dead_letters == 0, figures
