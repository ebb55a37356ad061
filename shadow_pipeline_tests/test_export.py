"""KPI export against a real Redis: hash fields and TTL, stream entries, schema rejection, no duplicates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shadow_pipeline.domain.kpis.records import KpiRecordError, iteration_records
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.redis_io.keys import KPI_ALL_HASH, kpi_stream, kpi_symbol_hash
from shadow_pipeline.redis_io.kpi_export import export_partition, read_stream_records
from shadow_pipeline.redis_io.server import RedisServer
from shadow_pipeline_tests.shadow_helpers import partition_of, synthetic_iterations, synthetic_report


@pytest.fixture
def client(own_server: RedisServer) -> Iterator[redis.Redis]:
    """A private server: the export keys are fixed names that other tests must not see."""
    connection = redis.Redis.from_url(own_server.url, decode_responses=True)
    yield connection
    connection.close()


def test_hash_export_writes_typed_fields_with_a_ttl(client: redis.Redis) -> None:
    iterations = synthetic_iterations()
    partition = partition_of(iterations)
    [result] = export_partition(
        client, iterations, synthetic_report(iterations), "hash", per_symbol=True, ttl_seconds=120
    )
    assert result.keys == [KPI_ALL_HASH, kpi_symbol_hash("BTCUSDT")]
    fields = client.hgetall(kpi_symbol_hash("BTCUSDT"))
    assert set(fields) == {
        "timestamp", "symbol", "instrument", "venue", "maker_taker_ratio", "net_bps", "p95_latency_ms", "risk_ratio",
        "maker_count", "taker_count", "total_fills", "partition", "profile", "window_seconds", "params_digest",
        "fill_model", "scope", "verdict", "reasons",
    }  # fmt: skip
    report = synthetic_report(iterations)
    assert fields["verdict"] == report["verdict"] and json.loads(fields["reasons"]) == json.loads(report["reasons"])
    assert (fields["instrument"], fields["venue"]) == ("BTCUSDT.binance-usdm", "binance-usdm")
    assert fields["fill_model"] == "queue (size_decrease_share 0 (risk-averse))"  # the packaged profiles' model
    valid = iterations[iterations["valid"]]
    assert int(fields["total_fills"]) == int(valid["total_fills"].sum()) > 0
    assert fields["partition"] == partition and fields["scope"] == "partition" and fields["profile"] == "moderate"
    maker = valid["maker_notional"].sum() / valid["traded_notional"].sum()
    assert float(fields["maker_taker_ratio"]) == pytest.approx(maker, rel=1e-12)
    assert 0 < client.ttl(kpi_symbol_hash("BTCUSDT")) <= 120 and 0 < client.ttl(KPI_ALL_HASH) <= 120
    latest = json.loads(client.hget(KPI_ALL_HASH, "BTCUSDT") or "{}")
    assert latest["total_fills"] == int(fields["total_fills"]) and latest["timestamp"] == fields["timestamp"]
    assert latest["verdict"] == fields["verdict"] and latest["reasons"] == json.loads(fields["reasons"])


def test_stream_export_is_exact_and_never_duplicates(client: redis.Redis) -> None:
    iterations = synthetic_iterations(gap_s=(40.0, 70.0))  # windows without ticks, so without fills
    partition = partition_of(iterations)
    report = synthetic_report(iterations)
    [first] = export_partition(client, iterations, report, "stream")
    [again] = export_partition(client, iterations, report, "stream")
    assert (first.written, first.skipped) == (len(iterations), 0)
    assert (again.written, again.skipped) == (0, len(iterations))
    assert client.xlen(kpi_stream("BTCUSDT")) == len(iterations)
    back = read_stream_records(client, "BTCUSDT", partition=partition, profile="moderate")
    judged = {"verdict": report["verdict"], "reasons": json.loads(report["reasons"])}
    assert back == iteration_records(iterations, run_notes(iterations), judged)  # floats exact, nulls null
    assert judged["verdict"] == "NO-GO" and judged["reasons"]  # two minutes of windows: too few for a Go
    assert any(r["maker_taker_ratio"] is None for r in back)  # windows without fills stay null, not 1.0


def test_an_invalid_record_is_an_error_and_nothing_is_written(client: redis.Redis) -> None:
    iterations = synthetic_iterations()
    iterations.loc[iterations.index[3], "maker_taker_ratio"] = 1.5  # a share above 1
    with pytest.raises(KpiRecordError, match=r"record 3 .* maker_taker_ratio: 1.5 is greater than the maximum"):
        export_partition(client, iterations, synthetic_report(iterations), "both", per_symbol=True)
    assert client.keys("*") == []


def test_cli_exports_a_snapshot_to_the_hashes_only(own_server: RedisServer, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": own_server.url}
    command = [sys.executable, "-m", "shadow_pipeline.cli", "export", "--src", str(tmp_path / "x.json")]
    bad = subprocess.run([*command, "--mode", "stream"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "use --mode hash" in bad.stderr and "Traceback" not in bad.stderr


def test_other_windows_or_parameters_are_new_records_and_a_deleted_stream_is_written_again(client: redis.Redis) -> None:
    iterations = synthetic_iterations()
    partition = partition_of(iterations)
    export_partition(client, iterations, synthetic_report(iterations), "stream")
    shorter = synthetic_iterations(window_s=5)
    [again] = export_partition(client, shorter, synthetic_report(shorter), "stream")
    assert again.written == len(shorter)  # 5 s windows are other predictions, not duplicates of the 10 s ones
    assert len(read_stream_records(client, "BTCUSDT", partition=partition, window_seconds=10.0)) == len(iterations)
    client.delete(kpi_stream("BTCUSDT"))  # deleted (or trimmed): the index must not make a re-export a no-op
    [rewritten] = export_partition(client, iterations, synthetic_report(iterations), "stream")
    assert rewritten.written == len(iterations) == client.xlen(kpi_stream("BTCUSDT"))
