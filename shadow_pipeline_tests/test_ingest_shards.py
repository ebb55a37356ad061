"""Sharded tick streams (docs/ingest.md, "Shards"): the shard function and key names, producers writing each tick
to its instrument's shard, consumers per shard killed and restarted with every tick landed once, the Dagster
drain and the closed-window sensor over all shards, and hostile values of $SHADOW_STREAM_SHARDS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis
from redis.crc import key_slot

from shadow_pipeline import settings
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.pipeline import sensors
from shadow_pipeline.defs.pipeline.sensors import closed_window_sensor
from shadow_pipeline.defs.run_queue import STREAM_TAG
from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.shards import MAX_SHARDS, shard_of, shard_stream, shard_streams
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.feed.replay import ReplayOptions, ReplayResult, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.redis_io.feed_publisher import FeedPublisher
from shadow_pipeline.redis_io.keys import (
    CONSUMER_GROUP,
    TICK_STREAM,
    dead_letter_stream,
    failed_attempts_hash,
    feed_seq_key,
    guard_group_keys,
    guard_keys,
    live_kpi_stream,
    live_position_hash,
)
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline.resources import LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.ingest_helpers import landed
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.live_helpers import clear_live_keys

VENUE = "bybit-linear"  # on it the synthetic BTC, ETH and SOL fall in three different shards of three
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture
def sharded(redis_client: redis.Redis, stream: str) -> Iterator[str]:
    """``stream`` as a sharded base; removes what the conftest's patterns miss (the shards' guard and seq keys)."""
    yield stream
    for pattern in (f"shadow:guard:{stream}:*", f"feed:seq:{stream}:*"):
        for name in redis_client.scan_iter(match=pattern):
            redis_client.delete(name)


def test_the_shard_function_is_a_pinned_crc32_and_one_shard_keeps_the_old_names() -> None:
    # Pinned: a change would move instruments between shards under running consumers.
    assert [shard_of(s, 3) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")] == [0, 0, 2, 2]
    assert [shard_of(instrument_key(s, VENUE), 3) for s in SYMBOLS] == [0, 2, 1]
    assert {shard_of(s, 1) for s in ("BTCUSDT", "x", "")} == {0}
    assert shard_streams(TICK_STREAM, 1) == [TICK_STREAM]
    assert guard_keys(TICK_STREAM, CONSUMER_GROUP, "BTCUSDT")[0] == "shadow:guard:{lob:ticks}:shadow:BTCUSDT:state"
    assert feed_seq_key(TICK_STREAM, "BTCUSDT") == "feed:seq:{lob:ticks}:BTCUSDT"
    assert shard_streams(TICK_STREAM, 3) == ["lob:ticks:{s0}", "lob:ticks:{s1}", "lob:ticks:{s2}"]
    assert shard_streams(TICK_STREAM, MAX_SHARDS)[-1] == "lob:ticks:{s1023}"


@pytest.mark.parametrize("shards", [2, 3, 16])
def test_every_key_of_a_shard_shares_the_shards_cluster_slot(shards: int) -> None:
    """redis-py's own key_slot (CRC16 of the hash tag, as Redis Cluster computes it)."""
    slots = set()
    for number in range(shards):
        stream = shard_stream(TICK_STREAM, number, shards)
        keys = [
            stream,
            dead_letter_stream(stream),
            failed_attempts_hash(stream, CONSUMER_GROUP),
            *guard_keys(stream, CONSUMER_GROUP, "BTCUSDT.bybit-linear"),
            *guard_group_keys(stream, CONSUMER_GROUP),
            feed_seq_key(stream, "ETHUSDT"),
        ]
        assert len({key_slot(key.encode()) for key in keys}) == 1, keys
        slots.add(key_slot(stream.encode()))
    assert len(slots) == shards  # and the shards themselves spread over slots


def _produced(client: redis.Redis, streams: list[str]) -> Counter:
    """What the producers wrote, per (hour, instrument key), read back from every shard."""
    counts: Counter = Counter()
    for stream in streams:
        for _, fields in read_entries(client, stream):
            hour = str(hour_keys(np.array([int(fields["ts_server"])]))[0])
            counts[(hour, instrument_key(fields["symbol"], fields.get("venue")))] += 1
    return counts


def _replay(
    client: redis.Redis,
    stream: str,
    shards: int,
    seconds: float,
    start: str,
    symbols: tuple[str, ...],
    venue: str | None,
) -> ReplayResult:
    source = open_source("synthetic", symbols=symbols, seconds=seconds, seed=5, start=pd.Timestamp(start), venue=venue)
    return replay(client, source.chunks, ReplayOptions(stream=stream, maxlen=None, progress=False, shards=shards))


def test_producers_write_each_instrument_to_its_shard_only(redis_client: redis.Redis, sharded: str) -> None:
    result = _replay(redis_client, sharded, 3, 20, "2024-08-09T00:00:00Z", SYMBOLS, VENUE)
    FeedPublisher(redis_client, sharded, None, 3).publish(
        [(instrument_key("SOLUSDT", VENUE), ["symbol", "SOLUSDT", "venue", VENUE, "ts_server", "1"])]
    )
    streams = shard_streams(sharded, 3)
    assert redis_client.exists(sharded) == 0  # the base name is no stream of its own
    for number, name in enumerate(streams):
        keys = {instrument_key(f["symbol"], f.get("venue")) for _, f in read_entries(redis_client, name)}
        assert keys and {shard_of(key, 3) for key in keys} == {number}
    assert redis_client.get(feed_seq_key(streams[1], instrument_key("SOLUSDT", VENUE))) == "1"
    assert result.stream is not None and result.stream.length == result.entries == sum(result.ticks_by_symbol.values())


def test_one_processs_metrics_keep_each_shards_lag_and_dead_letters_apart(
    redis_url: str, redis_client: redis.Redis, sharded: str, tmp_path: Path
) -> None:
    _replay(redis_client, sharded, 2, 5, "2024-08-09T00:00:00Z", ("BTCUSDT", "ETHUSDT"), None)
    streams = shard_streams(sharded, 2)
    redis_client.xadd(streams[1], {"symbol": "BTCUSDT", "seq": "not a number"})
    metrics = IngestMetrics()  # as `shadow-pipeline ingest` shares one between its shards' consumers
    for name in streams:
        TickConsumer(LandingStore(tmp_path), IngestOptions(stream=name), redis_url, metrics).drain()
    sample = metrics.registry.get_sample_value
    assert [sample("shadow_ingest_lag_msgs", {"stream": name}) for name in streams] == [0, 0]
    assert [sample("shadow_dead_letters_total", {"stream": name}) for name in streams] == [0, 1]


def _ingest(url: str, stream: str, landing: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--drain", "--stream", stream]
    command += ["--landing", str(landing), "--batch", "400", "--land-every", "500"]
    command += ["--dead-after-ms", "2000", "--drain-wait-ms", "3000"]
    command += [*extra]
    env = {**os.environ, "REDIS_URL": url, settings.STREAM_SHARDS_ENV: "3"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_three_shards_two_consumers_each_killed_and_restarted_land_everything_once(
    redis_url: str, redis_client: redis.Redis, sharded: str, tmp_path: Path
) -> None:
    """Six consumer processes (3 shards x 2 of each shard's group): the first of each shard is SIGKILLed mid-drain
    (alone on its shard until then, so it must hold entries) and started again under its name beside the second;
    at the end every produced tick is landed once, per (hour, symbol)."""
    _replay(redis_client, sharded, 3, 150, "2024-08-09T00:59:00Z", SYMBOLS, VENUE)
    streams = shard_streams(sharded, 3)
    produced = _produced(redis_client, streams)
    assert {shard_of(key, 3) for _, key in produced} == {0, 1, 2} and {h for h, _ in produced} == {
        "2024-08-09-00:00",
        "2024-08-09-01:00",
    }
    landing = tmp_path / "landing"
    workers = {
        (shard, 0): _ingest(redis_url, sharded, landing, "--shard", str(shard), "--consumer", "c0")
        for shard in range(3)
    }
    try:
        _kill_restart_and_finish(redis_client, sharded, landing, workers, redis_url)
    finally:
        for worker in workers.values():  # a failed assertion leaves no consumer behind
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    rows = landed(LandingResource(base_path=str(landing)).store(sharded))
    assert not rows.duplicated(["symbol", "seq"]).any(), "a tick landed twice"
    got = Counter(zip(hour_keys(rows["ts_server"].to_numpy(dtype=np.int64)).tolist(), rows["symbol"], strict=True))
    assert got == produced


def _kill_restart_and_finish(
    redis_client: redis.Redis,
    sharded: str,
    landing: Path,
    workers: dict[tuple[int, int], subprocess.Popen[bytes]],
    redis_url: str,
) -> None:
    streams = shard_streams(sharded, 3)
    victims = {f"c0-s{shard}": (streams[shard], workers[(shard, 0)]) for shard in range(3)}
    assert _kill_holding_entries(redis_client, victims) == set(victims), "each kill must interrupt a drain"
    for shard in range(3):  # the same name: it re-reads its own pending entries first
        workers[(shard, 0)] = _ingest(redis_url, sharded, landing, "--shard", str(shard), "--consumer", "c0")
        workers[(shard, 1)] = _ingest(redis_url, sharded, landing, "--shard", str(shard), "--consumer", "c1")
    for (shard, member), worker in workers.items():
        out, err = worker.communicate(timeout=180)
        assert worker.returncode in (0, 3), err.decode()  # 3: a peer still held entries when its wait ended
        [line] = out.decode().splitlines()
        assert json.loads(line)["consumer"] == f"c{member}-s{shard}"
    final = _ingest(redis_url, sharded, landing, "--consumer", "final")  # every shard, one consumer each
    out, err = final.communicate(timeout=180)
    assert final.returncode == 0, err.decode()
    assert [json.loads(line)["stream"] for line in out.decode().splitlines()] == streams
    assert sum(redis_client.xpending(s, CONSUMER_GROUP)["pending"] for s in streams) == 0


def _kill_holding_entries(client: redis.Redis, victims: dict[str, tuple[str, subprocess.Popen[bytes]]]) -> set[str]:
    """SIGKILL each consumer (name -> its stream and process) at a moment it holds entries delivered and not
    acknowledged, whatever the machine's speed: one seen holding entries is stopped (SIGSTOP) and looked at again,
    then killed, or continued (SIGCONT) when it acknowledged them meanwhile. Returns the consumers killed holding
    entries."""
    held: set[str] = set()
    while any(name not in held and worker.poll() is None for name, (_, worker) in victims.items()):
        for consumer, (stream, worker) in victims.items():
            if consumer in held:
                continue
            if worker.poll() is not None:
                continue  # finished before it was caught: the caller's assertion names it
            if not _holds_entries(client, stream, consumer):
                continue
            worker.send_signal(signal.SIGSTOP)
            state = ""
            while state not in ("T", "Z"):  # stopped (or just exited): it acknowledges nothing more
                stat = Path(f"/proc/{worker.pid}/stat").read_text()
                state = stat[stat.rindex(")") + 2]
            if _holds_entries(client, stream, consumer):
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                held.add(consumer)
            else:
                worker.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    return held


def _holds_entries(client: redis.Redis, stream: str, consumer: str) -> bool:
    try:
        return bool(client.xpending_range(stream, CONSUMER_GROUP, "-", "+", 1, consumername=consumer))
    except redis.ResponseError as error:  # NOGROUP: no consumer has created the group yet
        if "NOGROUP" not in str(error):
            raise
        return False


def _resources(redis_url: str, stream: str, tmp_path: Path, shards: int) -> dict[str, object]:
    return {
        "redis": RedisResource(url=redis_url),
        "tick_stream": TickStreamResource(stream=stream, shards=shards),
        "landing": LandingResource(base_path=str(tmp_path / "landing")),
        "io_manager": ParquetIOManager(base_path=str(tmp_path / "assets")),
    }


def test_the_dagster_drain_lands_every_shard_and_each_partition_exactly(
    redis_url: str, redis_client: redis.Redis, sharded: str, tmp_path: Path
) -> None:
    _replay(redis_client, sharded, 2, 60, "2024-08-09T00:30:00Z", ("BTCUSDT", "ETHUSDT"), None)
    produced = _produced(redis_client, shard_streams(sharded, 2))
    resources = _resources(redis_url, sharded, tmp_path, 2)
    for symbol in ("BTCUSDT", "ETHUSDT"):  # one on each shard (shard_of: 1 and 0)
        with dagster_instance() as instance:
            result = dg.materialize(
                [landing_zone, raw_ticks, normalized_ticks],
                partition_key=partition_key("2024-08-09-00:00", symbol),
                resources=resources,
                instance=instance,
            )
        events = {
            e.materialization.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert events["raw_ticks"]["dagster/row_count"].value == produced[("2024-08-09-00:00", symbol)]
        # A partition's run drains its instrument's shard alone, so runs of other shards drain beside it.
        assert events["landing_zone"]["entries_read"].value == produced[("2024-08-09-00:00", symbol)]
        assert all(e.passed for e in result.get_asset_check_evaluations())


def _sense(instance: dg.DagsterInstance, resources: dict[str, object], cursor: str | None) -> dg.SensorResult:
    result = closed_window_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    assert isinstance(result, dg.SensorResult)
    return result


def _keys(result: dg.SensorResult) -> list[str]:
    return sorted(str(r.run_key) for r in result.run_requests or [])


def test_the_sensor_closes_each_shards_hours_by_that_shards_own_event_time(
    redis_url: str, redis_client: redis.Redis, sharded: str, tmp_path: Path
) -> None:
    resources = _resources(redis_url, sharded, tmp_path, 2)
    _replay(redis_client, sharded, 2, 240, "2024-08-09T00:58:00Z", ("BTCUSDT", "ETHUSDT"), None)
    with dagster_instance() as instance:
        first = _sense(instance, resources, None)
        assert _keys(first) == ["pipeline:2024-08-09-00:00:BTCUSDT", "pipeline:2024-08-09-00:00:ETHUSDT"]
        # Tagged with their own shard: the instance's one-drain-per-stream limit lets the two shards run at once.
        by_symbol = {str(r.run_key).rsplit(":", 1)[1]: r.tags[STREAM_TAG] for r in first.run_requests or []}
        assert by_symbol == {"BTCUSDT": shard_streams(sharded, 2)[1], "ETHUSDT": shard_streams(sharded, 2)[0]}
        cursor = json.loads(str(first.cursor))
        assert sorted(cursor["streams"]) == shard_streams(sharded, 2)
        # Only BTCUSDT's shard moves past 02:00: its hour 01 closes, ETHUSDT's (the other shard) stays open.
        _replay(redis_client, sharded, 2, 30, "2024-08-09T02:00:01Z", ("BTCUSDT",), None)
        second = _sense(instance, resources, first.cursor)
        assert _keys(second) == ["pipeline:2024-08-09-01:00:BTCUSDT"]
        assert ["2024-08-09-01:00", "ETHUSDT"] in json.loads(str(second.cursor))["open"]
        assert _keys(_sense(instance, resources, second.cursor)) == []
        _replay(redis_client, sharded, 2, 30, "2024-08-09T02:00:01Z", ("ETHUSDT",), None)
        assert _keys(_sense(instance, resources, second.cursor)) == ["pipeline:2024-08-09-01:00:ETHUSDT"]


def test_one_tick_reads_at_most_the_scan_budget_over_all_shards(
    redis_url: str, redis_client: redis.Redis, sharded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog on both shards: a tick reads MAX_SCAN_PER_TICK entries in all (not per shard), each shard its share
    and the later shard what the earlier left; the next tick continues each shard from its cursor."""
    monkeypatch.setattr(sensors, "MAX_SCAN_PER_TICK", 1000)
    monkeypatch.setattr(sensors, "SCAN_CHUNK", 300)
    resources = _resources(redis_url, sharded, tmp_path, 2)
    _replay(redis_client, sharded, 2, 30, "2024-08-09T00:58:00Z", ("BTCUSDT",), None)  # shard 1
    _replay(redis_client, sharded, 2, 1, "2024-08-09T00:58:00Z", ("ETHUSDT",), None)  # shard 0: under its share
    streams = shard_streams(sharded, 2)
    small, large = (redis_client.xlen(stream) for stream in streams)
    assert 0 < small < 500 and large > 2000

    def read(result: dg.SensorResult) -> list[int]:
        """Entries up to each shard's cursor."""
        positions = json.loads(str(result.cursor))["streams"]
        return [len(redis_client.xrange(s, "-", positions[s]["last_id"]) or []) for s in streams]

    with dagster_instance() as instance:
        first = _sense(instance, resources, None)
        assert read(first) == [small, 1000 - small]
        assert read(_sense(instance, resources, first.cursor)) == [small, 2000 - small]


def test_the_sensor_reads_a_cursor_of_the_single_stream_form(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    resources = _resources(redis_url, stream, tmp_path, 1)
    _replay(redis_client, stream, 1, 240, "2024-08-09T00:58:00Z", ("BTCUSDT",), None)
    [(last_id, fields)] = read_entries(redis_client, stream, count=1, newest=True)
    newest = int(fields["ts_server"])  # 01:02, past hour 00 and its watermark
    old = {"last_id": last_id, "newest": newest, "open": [["2024-08-09-00:00", "ETHUSDT"]]}
    with dagster_instance() as instance:
        result = _sense(instance, resources, json.dumps(old))
    # Nothing after last_id is read again (BTCUSDT's hours are not requested); the open pair closes on the
    # stream's newest time as the old cursor recorded it.
    assert _keys(result) == ["pipeline:2024-08-09-00:00:ETHUSDT"]
    cursor = json.loads(str(result.cursor))
    assert cursor == {"streams": {stream: {"last_id": last_id, "newest": newest}}, "open": []}


@pytest.mark.parametrize("value", ["0", "-1", "x", str(10**9), "nan", "1.5", "3 3", "٣", "9" * 5000])
def test_a_hostile_shard_count_is_one_error_line(value: str, tmp_path: Path) -> None:
    env = {**os.environ, settings.STREAM_SHARDS_ENV: value}
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--drain", "--landing", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: $SHADOW_STREAM_SHARDS=") and "from 1 to 1024" in line and len(line) < 200


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--shard", "3", "--shard 3"),  # past the 3 shards of the setting (0..2)
        ("--shard", "-1", "--shard"),
        ("--shard", "x", "--shard"),
        ("--shard", "nan", "--shard"),
        ("--shard", str(10**30), "--shard"),
        ("--shard", "", "--shard"),
        ("--consumers-per-shard", "0", "--consumers-per-shard"),
        ("--consumers-per-shard", "65", "--consumers-per-shard"),
        ("--consumers-per-shard", "inf", "--consumers-per-shard"),
        ("--consumers-per-shard", "\u00e9", "--consumers-per-shard"),
    ],
)
def test_a_hostile_shard_option_is_one_error_line(option: str, value: str, says: str, tmp_path: Path) -> None:
    env = {**os.environ, settings.STREAM_SHARDS_ENV: "3"}
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--drain", "--landing", str(tmp_path), option, value],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1 and says in errors[0], done.stderr


def test_an_empty_shard_count_is_unset_like_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.STREAM_SHARDS_ENV, "")
    assert settings.stream_shards() == 1
    monkeypatch.setenv(settings.STREAM_SHARDS_ENV, " 4 ")
    assert settings.stream_shards() == 4
    assert TickStreamResource(stream="s").streams == shard_streams("s", 4)


def test_the_live_shadow_reads_every_shard_of_its_instruments(
    redis_url: str, redis_client: redis.Redis, sharded: str
) -> None:
    """One loop per shard (BTCUSDT and ETHUSDT are in different shards of two): each instrument's windows are
    published as from one stream, and each shard keeps its own read position."""
    symbols = ("BTCUSDT", "ETHUSDT")
    streams = shard_streams(sharded, 2)
    for stream in streams:
        clear_live_keys(redis_client, stream, symbols)
    _replay(redis_client, sharded, 2, 120, "2024-08-09T00:00:00Z", symbols, None)
    command = [sys.executable, "-m", "shadow_pipeline.cli_live", "--redis-url", redis_url, "--stream", sharded]
    command += ["--window-seconds", "10", "--until-idle", "0.5"]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, settings.STREAM_SHARDS_ENV: "2"},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "22 windows published (0 published before)" in done.stdout  # 11 closed windows of each
        assert [redis_client.xlen(live_kpi_stream(symbol)) for symbol in symbols] == [11, 11]
        assert all(redis_client.exists(live_position_hash(stream)) for stream in streams)
    finally:
        for stream in streams:
            clear_live_keys(redis_client, stream, symbols)
