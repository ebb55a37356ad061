"""Ingest through Dagster: partitions materialized with real Redis and Parquet on a temp dir; sensor; CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.ingest import checks
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.pipeline.sensors import closed_window_sensor
from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.resources import LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.ingest_helpers import replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance, project_home

BINANCE_COUNTS = {"BTCUSDT": 87_402, "ETHUSDT": 68_068}  # messages in usdm/*_20240808.gz (see test_replay)


def _resources(redis_url: str, stream: str, tmp_path: Path) -> dict[str, object]:
    return {
        "redis": RedisResource(url=redis_url),
        "tick_stream": TickStreamResource(stream=stream),
        "landing": LandingResource(base_path=str(tmp_path / "landing")),
        "io_manager": ParquetIOManager(base_path=str(tmp_path / "assets")),
    }


def _materialize(resources: dict[str, object], hour: str, symbol: str) -> dg.ExecuteInProcessResult:
    with dagster_instance() as instance:  # a bare ephemeral() can be collected mid-run
        return dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks],
            partition_key=partition_key(hour, symbol),
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    """The metadata of ``asset``'s materialization (normalized_ticks and tick_quality share one step)."""
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _stored(tmp_path: Path, asset: str, hour: str, symbol: str) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "assets" / asset / hour / f"{symbol}.parquet")


def test_binance_recordings_ingest_to_exact_counts_in_order(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    files = [market_file(f"binance_hftbacktest/usdm/{s.lower()}_20240808.gz") for s in BINANCE_COUNTS]
    source = open_source("binance", files=files)
    replay(redis_client, source.chunks, ReplayOptions(stream=stream, maxlen=None, progress=False))
    resources = _resources(redis_url, stream, tmp_path)
    for symbol, expected in BINANCE_COUNTS.items():
        rows = 0
        for hour in ("2024-08-08-23:00", "2024-08-09-00:00"):  # the recordings cross midnight UTC
            result = _materialize(resources, hour, symbol)
            assert result.success
            raw, normalized = _metadata(result, "raw_ticks"), _metadata(result, "normalized_ticks")
            quality = _metadata(result, "tick_quality")
            assert raw["dagster/row_count"] == normalized["dagster/row_count"]
            assert quality["gaps"] == quality["duplicates"] == quality["drops"] == 0
            assert "| symbol" in str(normalized["preview"]) and normalized["span_seconds"] is not None
            passed = _checks(result)
            assert passed[checks.NON_EMPTY] and passed[checks.NO_SEQUENCE_GAPS] and passed[checks.NO_BACKPRESSURE_DROPS]
            stored = _stored(tmp_path, "normalized_ticks", hour, symbol)
            assert stored["ts_server"].is_monotonic_increasing
            assert (stored["symbol"] == symbol).all() and not stored["seq"].duplicated().any()
            rows += len(stored)
        assert rows == expected


def test_injected_faults_are_counted_exactly_per_partition(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    # 6 minutes from 23:57: two hourly partitions, so the hour boundary is exercised too.
    spec = FaultSpec(drop=0.01, duplicate=0.01, reorder=0.02, jitter_ms=30, malformed=0.004, seed=9)
    replayed = replay_synthetic(
        redis_client, stream, seconds=6 * 60, symbols=("ETHUSDT",), faults=spec, start="2024-08-08T23:57:00Z"
    )
    resources = _resources(redis_url, stream, tmp_path)
    totals = {"gaps": 0, "duplicates": 0, "out_of_order": 0, "dead_letters": 0, "rows": 0}
    seqs = []
    for hour in ("2024-08-08-23:00", "2024-08-09-00:00"):
        result = _materialize(resources, hour, "ETHUSDT")
        assert result.success
        meta = _metadata(result, "tick_quality")
        for key in ("gaps", "duplicates", "out_of_order", "dead_letters"):
            totals[key] += int(meta[key])  # type: ignore[call-overload]
        totals["rows"] += int(_metadata(result, "normalized_ticks")["dagster/row_count"])  # type: ignore[call-overload]
        seqs.append(_stored(tmp_path, "normalized_ticks", hour, "ETHUSDT")["seq"])
        assert _checks(result)[checks.NO_SEQUENCE_GAPS] is (meta["gaps"] == 0)
    all_seqs = pd.concat(seqs)
    unseen = (all_seqs.min() - 1) + (replayed.ticks_by_symbol["ETHUSDT"] - all_seqs.max())
    injected = replayed.faults
    assert totals["gaps"] == injected.dropped - unseen > 0
    assert totals["duplicates"] == injected.duplicated > 0
    assert totals["out_of_order"] == injected.reordered > 0
    assert totals["dead_letters"] == injected.malformed > 0
    assert totals["rows"] == replayed.ticks_by_symbol["ETHUSDT"] - injected.dropped


def test_empty_partition_fails_the_blocking_check_and_stops_normalized(
    redis_url: str, stream: str, tmp_path: Path
) -> None:
    result = _materialize(_resources(redis_url, stream, tmp_path), "2024-08-10-05:00", "BTCUSDT")
    assert not result.success
    assert _checks(result)[checks.NON_EMPTY] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    assert materialized == {"landing_zone", "raw_ticks"}  # the drain ran; nothing after the empty partition


def test_backpressure_drops_fail_the_blocking_check(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=30, symbols=("BTCUSDT",))
    resources = _resources(redis_url, stream, tmp_path)
    resources["tick_stream"] = TickStreamResource(stream=stream, buffer_capacity=5, watermark_ms=5_000)
    result = _materialize(resources, "2024-08-09-00:00", "BTCUSDT")
    assert not result.success
    meta = _metadata(result, "tick_quality")
    assert int(meta["drops"]) > 0  # type: ignore[call-overload]
    assert _checks(result)[checks.NO_BACKPRESSURE_DROPS] is False


def _evaluate(instance: dg.DagsterInstance, resources: dict[str, object], cursor: str | None) -> dg.SensorResult:
    result = closed_window_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    assert isinstance(result, dg.SensorResult)
    return result


def _run_keys(result: dg.SensorResult) -> list[str]:
    return sorted(str(r.run_key) for r in result.run_requests or [])


def test_sensor_requests_one_run_per_closed_partition(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    resources = _resources(redis_url, stream, tmp_path)
    # 00:58 to 01:02: hour 00 closes, hour 01 stays open.
    replay_synthetic(redis_client, stream, seconds=4 * 60, start="2024-08-09T00:58:00Z")
    with dagster_instance() as instance:
        first = _evaluate(instance, resources, None)
        keys = _run_keys(first)
        assert keys == ["pipeline:2024-08-09-00:00:BTCUSDT", "pipeline:2024-08-09-00:00:ETHUSDT"]
        assert {str(r.partition_key) for r in first.run_requests or []} == {
            "2024-08-09-00:00|BTCUSDT",
            "2024-08-09-00:00|ETHUSDT",
        }
        cursor = json.loads(str(first.cursor))
        assert sorted(map(tuple, cursor["open"])) == [("2024-08-09-01:00", "BTCUSDT"), ("2024-08-09-01:00", "ETHUSDT")]
        second = _evaluate(instance, resources, first.cursor)
        assert _run_keys(second) == []
        # One tick past 02:00 plus the watermark closes hour 01, for both symbols, exactly once.
        replay_synthetic(redis_client, stream, seconds=30, symbols=("BTCUSDT",), start="2024-08-09T02:00:01Z")
        third = _evaluate(instance, resources, second.cursor)
        assert _run_keys(third) == [
            "pipeline:2024-08-09-01:00:BTCUSDT",
            "pipeline:2024-08-09-01:00:ETHUSDT",
        ]
        fourth = _evaluate(instance, resources, third.cursor)
        assert _run_keys(fourth) == []


def test_dagster_job_execute_ingests_one_partition_from_the_cli(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=120, symbols=("BTCUSDT",))
    run_config = tmp_path / "run.yaml"
    run_config.write_text(json.dumps({"resources": {"tick_stream": {"config": {"stream": stream}}}}))
    tags = {
        "dagster/partition": "2024-08-09-00:00|BTCUSDT",
        "dagster/partition/hour": "2024-08-09-00:00",
        "dagster/partition/symbol": "BTCUSDT",
    }
    command = [sys.executable, "-m", "dagster", "job", "execute", "-m", "shadow_pipeline.definitions"]
    command += ["-j", "ingest_job", "-c", str(run_config), "--tags", json.dumps(tags)]
    # The project's instance file: on PostgreSQL when $SHADOW_DAGSTER_PG_URL is set.
    with project_home(tmp_path / "home") as home_env:
        env = {**os.environ, **home_env, "REDIS_URL": redis_url, "SHADOW_DATA_DIR": str(tmp_path / "data")}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stored = pd.read_parquet(tmp_path / "data/assets/normalized_ticks/2024-08-09-00:00/BTCUSDT.parquet")
    landed = LandingResource(base_path=str(tmp_path / "data/landing")).store(stream)
    assert landed.partitions() == [("2024-08-09-00:00", "BTCUSDT")]
    assert len(stored) == redis_client.xlen(stream)
    assert np.all(np.diff(stored["ts_server"].to_numpy()) >= 0)


@pytest.mark.parametrize("key", ["2024-08-09-00:00|BTCUSDT"])
def test_partition_key_strings_parse(key: str) -> None:
    from shadow_pipeline.defs.partitions import hour_and_symbol

    assert hour_and_symbol(key) == ("2024-08-09-00:00", "BTCUSDT")


def test_schedule_requests_the_previous_hour_for_every_symbol() -> None:
    from datetime import UTC, datetime

    from shadow_pipeline.launch import definitions

    schedule = definitions().resolve_schedule_def("pipeline_job_schedule")
    with dagster_instance() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2024, 8, 9, 1, 5, tzinfo=UTC)
        )
        requests = schedule.evaluate_tick(context).run_requests or []
    assert sorted(str(r.partition_key) for r in requests) == ["2024-08-09-00:00|BTCUSDT", "2024-08-09-00:00|ETHUSDT"]


def test_sensor_ignores_hours_before_the_first_partition(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    replay_synthetic(redis_client, stream, seconds=3 * 60, symbols=("BTCUSDT",), start="2023-12-31T22:59:00Z")
    with dagster_instance() as instance:
        result = _evaluate(instance, _resources(redis_url, stream, tmp_path), None)
    assert _run_keys(result) == []  # 2023-12-31 22:00 closed, but it is before the first partition
