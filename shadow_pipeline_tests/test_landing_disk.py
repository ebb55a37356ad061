"""A landing zone that refuses writes: a full disk (a small tmpfs of the test's own) and a read-only mount.

Nothing landed may be lost and nothing unlanded acked, whatever the disk does: a drain stops with one line, a
service waits for space, and no temporary file is left behind. The mounts need root; without it these skip.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.ingest.assets import landing_zone
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.deliveries import from_field_maps
from shadow_pipeline.ingest.landing import TEMPORARY_FOLDER, Kind, LandingStore
from shadow_pipeline.ingest.landing_faults import LandingError
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.resources import LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.ingest_helpers import landed, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance

_CLI = (sys.executable, "-m", "shadow_pipeline.cli")


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {done.stderr.strip()}")


def _unmount(point: Path) -> None:
    if subprocess.run(["umount", str(point)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)  # still busy: detach it anyway


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs or a read-only bind mount needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: a file system that really fills up (ENOSPC), unlike a mocked write."""
    _needs_root()
    point = tmp_path / "disk"
    point.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point))
    try:
        yield point
    finally:
        _unmount(point)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A read-only bind mount of an empty folder (root writes anywhere else, so permissions would not do)."""
    _needs_root()
    source, point = tmp_path / "source", tmp_path / "read-only"
    source.mkdir()
    point.mkdir()
    _mount("--bind", str(source), str(point))
    try:
        _mount("-o", "remount,bind,ro", str(point))
        yield point
    finally:
        _unmount(point)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; deleting the returned file frees the space again."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _drain(url: str, stream: str, landing: Path) -> subprocess.CompletedProcess[str]:
    command = [*_CLI, "ingest", "--drain", "--stream", stream, "--landing", str(landing), "--batch", "500"]
    return subprocess.run(command, env={**os.environ, "REDIS_URL": url}, capture_output=True, text=True, timeout=180)


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def _temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp") if p.is_file()]


def _stream_ids(client: redis.Redis, stream: str) -> set[str]:
    return {str(entry_id) for entry_id, _ in client.xrange(stream) or []}


def _pending_ids(client: redis.Redis, stream: str) -> set[str]:
    return {str(row["message_id"]) for row in client.xpending_range(stream, "shadow", "-", "+", 1_000_000)}


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


def _landed_ids(store: LandingStore) -> set[str]:
    ticks = landed(store)
    return set(ticks["entry_id"]) if len(ticks) else set()


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_drain_into_a_full_disk_stops_with_one_line_and_a_redrain_lands_everything_once(
    redis_url: str, redis_client: redis.Redis, stream: str, small_disk: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=180)  # about 2.3 MB of Parquet: more than the disk holds
    landing = small_disk / "landing"
    store = LandingResource(base_path=str(landing)).store(stream)

    done = _drain(redis_url, stream, landing)
    assert done.returncode == 2, done.stderr
    line = _one_error_line(done.stderr)
    assert f"landing zone {store.root} is full" in line and "No space left on device" in line
    assert f"free space under {store.root}" in line and "run the drain again" in line
    assert not _temporary_files(small_disk)
    pending = _pending_ids(redis_client, stream)
    assert pending, "the disk filled before the drain ended: some entries are still pending"
    last_delivered = _id_key(redis_client.xinfo_groups(stream)[0]["last-delivered-id"])
    acked = {i for i in _stream_ids(redis_client, stream) if _id_key(i) <= last_delivered} - pending
    assert acked <= _landed_ids(store), "an entry was acked whose tick was not landed"

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    again = _drain(redis_url, stream, landing)
    assert again.returncode == 0, again.stderr
    ticks = landed(store)
    assert set(ticks["entry_id"]) == _stream_ids(redis_client, stream) and not ticks["entry_id"].duplicated().any()
    assert not _pending_ids(redis_client, stream)
    assert not _temporary_files(small_disk)


def test_serving_consumer_waits_for_space_then_resumes_by_itself(
    redis_url: str, redis_client: redis.Redis, stream: str, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    replayed = replay_synthetic(redis_client, stream, seconds=20)
    filler = _fill(small_disk)
    metrics = IngestMetrics()
    store = LandingStore(small_disk / "landing")
    consumer = TickConsumer(store, IngestOptions(stream=stream, block_ms=100), redis_url, metrics)
    stop = threading.Event()
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(consumer.serve(stop)))
    worker.start()

    def failures() -> float:
        return metrics.registry.get_sample_value("shadow_ingest_landing_errors_total", {"errno": "ENOSPC"}) or 0

    total = sum(replayed.ticks_by_symbol.values())
    try:
        _wait_for(lambda: failures() >= 2, 30, "two failed landing attempts")  # it retries, it does not die
        assert worker.is_alive()
        assert metrics.registry.get_sample_value("shadow_ingest_landing_blocked") == 1
        assert not _landed_ids(store)
        assert len(_pending_ids(redis_client, stream)) == len(_stream_ids(redis_client, stream))  # nothing acked
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "full" in r.getMessage()]
        assert warned and str(store.root) in warned[0] and "free" in warned[0]

        filler.unlink()
        # Everything but the newest 40 ms of each symbol, which wait in the reorder buffer until the stop.
        _wait_for(lambda: len(_landed_ids(store)) > total - 100, 60, "landing after space is freed")
        assert metrics.registry.get_sample_value("shadow_ingest_landing_blocked") == 0
    finally:
        stop.set()
        worker.join(timeout=60)
    assert outcome, "serve ended without a report"
    assert len(landed(store)) == total and not _pending_ids(redis_client, stream)
    assert not _temporary_files(small_disk)


@pytest.mark.parametrize("mode", ["drain", "serve"])
def test_read_only_landing_zone_stops_with_one_line_and_acks_nothing(
    mode: str, redis_url: str, redis_client: redis.Redis, stream: str, read_only: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=5)
    command = [*_CLI, "ingest", "--stream", stream, "--landing", str(read_only), "--block-ms", "100"]
    done = subprocess.run(
        [*command, "--drain"] if mode == "drain" else command,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,  # a service that waited on a read-only disk instead of stopping would time out here
    )
    assert done.returncode == 2, done.stderr
    line = _one_error_line(done.stderr)
    assert "read-only file system" in line and str(read_only) in line
    assert len(_pending_ids(redis_client, stream)) == len(_stream_ids(redis_client, stream))


def test_landing_zone_asset_fails_with_the_reason_not_a_traceback(
    redis_url: str, redis_client: redis.Redis, stream: str, read_only: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=5)
    with dagster_instance() as instance:  # the project's pattern: an instance that outlives the run
        result = dg.materialize(
            [landing_zone],
            resources={
                "redis": RedisResource(url=redis_url),
                "tick_stream": TickStreamResource(stream=stream),
                "landing": LandingResource(base_path=str(read_only)),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    data = failure.step_failure_data
    assert data.user_failure_data is not None, "a dg.Failure, not an unhandled OSError"
    assert "read-only file system" in str(data.user_failure_data.description)
    assert len(_pending_ids(redis_client, stream)) == len(_stream_ids(redis_client, stream))


def _ticks(count: int) -> pd.DataFrame:
    start_ms = 1_723_161_600_000  # 2024-08-09 00:00 UTC
    quote = {"symbol": "BTCUSDT", "bid": "100.0", "ask": "100.1", "bid_qty": "1", "ask_qty": "1"}
    trade = {"last_px": "", "last_qty": "0", "last_side": ""}
    times = [str((start_ms + i) * 1_000_000) for i in range(count)]
    entries = [
        (f"{start_ms + i}-0", {**quote, **trade, "seq": str(i + 1), "ts_server": t, "ts_local": t})
        for i, t in enumerate(times)
    ]
    return from_field_maps(entries).parsed.ticks


def test_a_writer_sweeps_its_own_and_stale_temporary_files_but_not_a_live_writers(tmp_path: Path) -> None:
    store = LandingStore(tmp_path)
    temporary = tmp_path / TEMPORARY_FOLDER
    temporary.mkdir()
    mine = temporary / "1-0_me_abc123.parquet.tmp"  # a write of this consumer's, killed mid-file
    live = temporary / "1-0_other_abc123.parquet.tmp"  # another consumer's write in progress
    stale = temporary / "1-0_gone_abc123.parquet.tmp"  # another consumer's, killed long ago
    for path in (mine, live, stale):
        path.write_bytes(b"PAR1 partial")
    os.utime(stale, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    ticks = _ticks(3)
    store.write(Kind.TICKS, ticks, "me")
    assert not mine.exists() and not stale.exists() and live.exists()
    hour, symbol = store.partitions()[0]
    assert store.read(Kind.TICKS, hour, symbol)["entry_id"].tolist() == ticks["entry_id"].tolist()


def test_stopping_a_consumer_that_waits_for_space_acks_nothing_and_says_why(
    redis_url: str, redis_client: redis.Redis, stream: str, small_disk: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=5)
    _fill(small_disk)
    metrics = IngestMetrics()
    consumer = TickConsumer(
        LandingStore(small_disk / "landing"), IngestOptions(stream=stream, block_ms=100), redis_url, metrics
    )
    stop = threading.Event()
    raised: list[BaseException] = []

    def serve() -> None:
        try:
            consumer.serve(stop)
        except LandingError as exc:
            raised.append(exc)

    worker = threading.Thread(target=serve)
    worker.start()
    _wait_for(lambda: metrics.registry.get_sample_value("shadow_ingest_landing_blocked") == 1, 30, "a blocked write")
    stop.set()  # SIGTERM in the CLI: it must not wait for space any longer, nor ack what it could not land
    worker.join(timeout=30)
    assert not worker.is_alive() and raised and "start the consumer again" in str(raised[0])
    assert len(_pending_ids(redis_client, stream)) == len(_stream_ids(redis_client, stream))
    assert metrics.registry.get_sample_value("shadow_ingest_landing_blocked") == 0
    assert not _temporary_files(small_disk)
