"""The tick consumer against a real Redis: exactly-once landing, guards, crash recovery, backpressure, outages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from shadow_pipeline.domain.kpis.per_window import BROKER_UNTIMED, latency_legs
from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.domain.market.quality import normalize
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.deliveries import from_field_maps
from shadow_pipeline.ingest.landing import Kind, LandingStore
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.redis_io.server import RedisServer, start_server
from shadow_pipeline.redis_io.streams import to_field_rows, xadd_rows
from shadow_pipeline.resources import LandingResource
from shadow_pipeline_tests.ingest_helpers import landed, replay_synthetic

_CLI = (sys.executable, "-m", "shadow_pipeline.cli")


def _consumer(url: str, store: LandingStore, stream: str, **options: object) -> TickConsumer:
    return TickConsumer(store, IngestOptions(stream=stream, **options), url)  # type: ignore[arg-type]


def _seq_bounds(ticks: pd.DataFrame) -> pd.DataFrame:
    return ticks.groupby("symbol")["seq"].agg(["min", "max"])


def test_clean_stream_lands_every_tick_once_and_acks_all(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replayed = replay_synthetic(redis_client, stream, seconds=60)
    metrics = IngestMetrics()
    store = LandingStore(tmp_path)
    report = TickConsumer(store, IngestOptions(stream=stream), redis_url, metrics).drain()
    ticks = landed(store)
    assert report.landed == replayed.ticks_by_symbol
    assert ticks.groupby("symbol").size().to_dict() == replayed.ticks_by_symbol
    assert not ticks.duplicated(["symbol", "seq"]).any()
    assert redis_client.xpending(stream, "shadow")["pending"] == 0
    assert report.gaps == {} and report.duplicates == {} and report.dead_letters == 0
    # A second drain finds nothing new and lands nothing twice.
    again = TickConsumer(store, IngestOptions(stream=stream), redis_url).drain()
    assert again.read == 0 and len(landed(store)) == len(ticks)
    assert metrics.registry.get_sample_value("shadow_ingest_ticks_total", {"symbol": "BTCUSDT"}) == len(
        ticks[ticks.symbol == "BTCUSDT"]
    )
    assert metrics.registry.get_sample_value("shadow_ingest_lag_msgs", {"stream": stream}) == 0
    # The broker's clock rides along as a number: the id's milliseconds in ns, typed through landing and normalize.
    broker_ms = ticks["entry_id"].str.split("-").str[0].astype("int64")
    assert ticks["ts_broker"].dtype == np.int64 and (ticks["ts_broker"] == broker_ms * 1_000_000).all()
    hour, symbol = store.partitions()[0]
    assert normalize(store.read(Kind.TICKS, hour, symbol))["ts_broker"].dtype == np.int64


def test_files_landed_before_broker_times_read_as_missing_and_leave_the_broker_leg_unmeasured(tmp_path: Path) -> None:
    start_ms = 1_723_161_600_000  # 2024-08-09 00:00 UTC; received 1 ms after the exchange, at Redis 2 ms later
    quote = {"symbol": "BTCUSDT", "bid": "100.0", "ask": "100.1", "bid_qty": "1", "ask_qty": "1"}
    entries = [
        (
            f"{start_ms + i + 3}-0",
            {
                **quote,
                "seq": str(i + 1),
                "ts_server": str((start_ms + i) * 1_000_000),
                "ts_local": str((start_ms + i + 1) * 1_000_000),
                "last_px": "",
                "last_qty": "0",
                "last_side": "",
            },
        )
        for i in range(6)
    ]
    ticks = from_field_maps(entries).parsed.ticks
    store = LandingStore(tmp_path)
    store.write(Kind.TICKS, ticks.iloc[:3].drop(columns="ts_broker"), "before")  # an older ingest's files
    store.write(Kind.TICKS, ticks.iloc[3:], "after")
    hour, symbol = store.partitions()[0]
    received = store.read(Kind.TICKS, hour, symbol)
    assert received["entry_id"].tolist() == ticks["entry_id"].tolist()
    assert received["ts_broker"].isna().tolist() == [True] * 3 + [False] * 3
    assert latency_legs(normalize(received)).note == BROKER_UNTIMED
    assert latency_legs(normalize(received.drop(columns="ts_broker"))).note == BROKER_UNTIMED  # all files older


def test_faults_are_counted_exactly_as_injected(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    spec = FaultSpec(drop=0.01, duplicate=0.01, reorder=0.02, jitter_ms=30, malformed=0.004, seed=5)
    replayed = replay_synthetic(redis_client, stream, seconds=60, faults=spec)
    injected = replayed.faults
    assert injected.dropped and injected.duplicated and injected.reordered and injected.malformed
    metrics = IngestMetrics()
    report = TickConsumer(LandingStore(tmp_path), IngestOptions(stream=stream), redis_url, metrics).drain()
    ticks = landed(LandingStore(tmp_path))
    bounds = _seq_bounds(ticks)
    for symbol, generated in replayed.ticks_by_symbol.items():
        # Drops before the first or after the last arrival cannot be seen by anyone: exclude them.
        first, last = bounds.loc[symbol].to_numpy(dtype=int)
        unseen = (first - 1) + (generated - last)
        missing = metrics.registry.get_sample_value("shadow_seq_missing", {"symbol": symbol})
        assert missing == injected.dropped_by_symbol.get(symbol, 0) - unseen
    assert sum(report.duplicates.values()) == injected.duplicated
    assert sum(report.out_of_order.values()) == injected.reordered
    assert report.dead_letters == injected.malformed == redis_client.xlen(f"{stream}:dlq")
    gaps_total = sum(
        metrics.registry.get_sample_value("shadow_seq_gaps_total", {"symbol": s}) or 0 for s in replayed.ticks_by_symbol
    )
    assert gaps_total == sum(report.gaps.values())
    # Every entry is accounted for: landed (duplicates included, as received), or dead-lettered.
    assert report.landed_total + report.dead_letters == redis_client.xlen(stream)
    assert redis_client.xpending(stream, "shadow")["pending"] == 0
    letter = dict(redis_client.xrange(f"{stream}:dlq", count=1)[0][1])  # type: ignore[index, arg-type]
    assert {"orig_id", "stream", "reason", "partition", "fields", "original"} <= set(letter)
    assert redis_client.xrange(stream, min=letter["orig_id"], max=letter["orig_id"])  # the original id is real


def test_backpressure_drops_exactly_the_overflow_and_memory_stays_bounded(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    burst = 5_000
    capacity = 300
    ts = 1_723_161_600_000_000_000 + np.arange(burst) * 1_000  # 5 ms of exchange time: all inside the watermark
    frame = pd.DataFrame(
        {
            "symbol": "BTCUSDT",
            "seq": np.arange(1, burst + 1),
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
    xadd_rows(redis_client, stream, to_field_rows(frame), maxlen=None)
    store = LandingStore(tmp_path)
    report = _consumer(redis_url, store, stream, buffer_capacity=capacity, batch=700).drain()
    assert report.dropped == {"BTCUSDT": burst - capacity}
    assert report.landed == {"BTCUSDT": capacity}
    assert report.peak_buffered <= capacity
    drops = landed(store, Kind.DROPS)
    assert len(drops) == burst - capacity and drops["seq"].max() == burst - capacity  # the oldest went
    assert landed(store)["seq"].tolist() == list(range(burst - capacity + 1, burst + 1))
    assert redis_client.xpending(stream, "shadow")["pending"] == 0


def test_two_consumers_share_the_stream_without_loss_or_overlap(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replayed = replay_synthetic(redis_client, stream, seconds=60)
    store = LandingStore(tmp_path)
    consumers = [_consumer(redis_url, store, stream, consumer=f"c{i}", batch=300) for i in (1, 2)]
    reports = []
    threads = [threading.Thread(target=lambda c=c: reports.append(c.drain())) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r.landed_total > 0 for r in reports), "both consumers must get a share"
    assert sum(r.landed_total for r in reports) == sum(replayed.ticks_by_symbol.values())
    files = list(tmp_path.rglob("*.parquet"))
    entry_ids = pd.concat([pd.read_parquet(f, columns=["entry_id"]) for f in files])["entry_id"]
    assert not entry_ids.duplicated().any(), "disjoint shares: no entry landed by both"
    assert landed(store).groupby("symbol").size().to_dict() == replayed.ticks_by_symbol


def _ingest_process(url: str, stream: str, landing: Path, consumer: str, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--drain", "--stream", stream]
    command += ["--landing", str(landing), "--consumer", consumer, "--batch", "400", *extra]
    return subprocess.Popen(
        command, env={**os.environ, "REDIS_URL": url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.mark.parametrize("recovery", ["restart", "claim"])
def test_consumer_killed_mid_batch_recovers_to_identical_landing(
    recovery: str, redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=120, faults=FaultSpec(duplicate=0.01, malformed=0.002, seed=3))
    clean_store = LandingStore(tmp_path / "clean")
    TickConsumer(clean_store, IngestOptions(stream=stream, group="clean"), redis_url).drain()

    landing = tmp_path / "crashed"
    victim = _ingest_process(redis_url, stream, landing, "victim")
    deadline = time.monotonic() + 60
    while not list(landing.rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    pending = redis_client.xpending(stream, "shadow")["pending"]
    undelivered = redis_client.xinfo_groups(stream)[0]["lag"]
    assert pending + undelivered > 0, "the kill must interrupt the consumer before it finished"

    if recovery == "restart":
        survivor = _ingest_process(redis_url, stream, landing, "victim")
    else:
        time.sleep(0.3)
        survivor = _ingest_process(redis_url, stream, landing, "rescuer", "--claim-idle-ms", "200")
    _, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err.decode()
    assert redis_client.xpending(stream, "shadow")["pending"] == 0
    crashed = landed(LandingResource(base_path=str(landing)).store(stream))  # --landing is the zone's base
    clean = landed(clean_store)
    pd.testing.assert_frame_equal(crashed, clean)


def test_redis_down_at_start_is_a_clear_error_with_nonzero_exit(tmp_path: Path) -> None:
    url = "redis://shadow:s3cret@127.0.0.1:1/0"
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--drain", "--landing", str(tmp_path)],
        env={**os.environ, "REDIS_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "cannot reach Redis at redis://shadow:***@127.0.0.1:1/0" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


@pytest.fixture
def persistent_server() -> Iterator[RedisServer]:
    server = start_server(["--appendonly", "yes", "--appendfsync", "always"])
    yield server
    server.stop()


def test_redis_restart_mid_drain_recovers(persistent_server: RedisServer, tmp_path: Path) -> None:
    url = persistent_server.url
    client = redis.Redis.from_url(url, decode_responses=True)
    replayed = replay_synthetic(client, "lob:ticks", seconds=180)
    store = LandingStore(tmp_path)
    metrics = IngestMetrics()
    consumer = TickConsumer(store, IngestOptions(batch=500, land_every=2000), url, metrics)
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(consumer.drain()))
    worker.start()
    deadline = time.monotonic() + 60
    while consumer.report.read < 10_000 and time.monotonic() < deadline:
        time.sleep(0.005)
    persistent_server.restart(keep_data=True)
    worker.join(timeout=120)
    report = outcome[0]
    assert report.reconnects >= 1  # type: ignore[attr-defined]
    assert landed(store).groupby("symbol").size().to_dict() == replayed.ticks_by_symbol
    client = redis.Redis.from_url(url, decode_responses=True)
    assert client.xpending("lob:ticks", "shadow")["pending"] == 0
    for symbol in replayed.ticks_by_symbol:  # entries in flight at the restart were guarded once recovered
        assert metrics.registry.get_sample_value("shadow_seq_missing", {"symbol": symbol}) == 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_service_serves_metrics_and_stops_cleanly_on_sigterm(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replayed = replay_synthetic(redis_client, stream, seconds=30, faults=FaultSpec(malformed=0.01, seed=2))
    port = _free_port()
    command = [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--stream", stream, "--landing", str(tmp_path)]
    service = subprocess.Popen(
        [*command, "--metrics-port", str(port), "--block-ms", "200"],
        env={**os.environ, "REDIS_URL": redis_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    expected = sum(replayed.ticks_by_symbol.values())
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        try:
            text = _scrape(port)
        except OSError:
            time.sleep(0.1)
            continue
        # Everything delivered; the newest 40 ms of each symbol wait in the reorder buffer until SIGTERM.
        if (
            f'shadow_ingest_lag_msgs{{stream="{stream}"}} 0.0' in text
            and 'shadow_ingest_ticks_total{symbol="BTCUSDT"}' in text
        ):
            break
        time.sleep(0.1)
    assert f'shadow_dead_letters_total{{stream="{stream}"}}' in text
    assert service.poll() is None, "a service keeps running once the stream is drained"
    service.send_signal(signal.SIGTERM)
    out, err = service.communicate(timeout=60)
    assert service.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["landed_total"] == expected and summary["dead_letters"] == replayed.faults.malformed
    assert redis_client.xpending(stream, "shadow")["pending"] == 0
    assert len(landed(LandingResource(base_path=str(tmp_path)).store(stream))) == expected


def test_drain_writes_a_metrics_textfile(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replayed = replay_synthetic(redis_client, stream, seconds=10, symbols=("ETHUSDT",))
    textfile = tmp_path / "ingest.prom"
    done = subprocess.run(
        [*_CLI, "ingest", "--drain", "--stream", stream, "--landing", str(tmp_path), "--textfile", str(textfile)],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f'shadow_ingest_ticks_total{{symbol="ETHUSDT"}} {float(replayed.ticks_by_symbol["ETHUSDT"])}' in (
        textfile.read_text()
    )


def test_stream_deleted_and_recreated_is_survived(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = replay_synthetic(redis_client, stream, seconds=5, symbols=("BTCUSDT",))
    store = LandingStore(tmp_path)
    consumer = _consumer(redis_url, store, stream, block_ms=100)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.serve, args=(stop,))
    worker.start()
    deadline = time.monotonic() + 60
    total = sum(first.ticks_by_symbol.values())
    while consumer.report.read < total and time.monotonic() < deadline:  # the newest 40 ms stay buffered
        time.sleep(0.05)
    redis_client.delete(stream)  # the feed handler's stream is dropped and recreated: NOGROUP for the consumer
    second = replay_synthetic(redis_client, stream, seconds=5, symbols=("ETHUSDT",))
    total += sum(second.ticks_by_symbol.values())
    while consumer.report.read < total and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join(timeout=30)
    assert "is gone" in caplog.text and "recreating the group" in caplog.text
    assert landed(store).groupby("symbol").size().to_dict() == {**first.ticks_by_symbol, **second.ticks_by_symbol}
