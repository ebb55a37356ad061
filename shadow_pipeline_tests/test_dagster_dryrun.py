"""Export and dry-run validation through Dagster on the real Binance recordings (5-second windows)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.dryrun import checks
from shadow_pipeline.defs.dryrun.assets import DryRunConfig, dryrun_accuracy_report
from shadow_pipeline.defs.export.assets import exported_kpis
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import shadow_iterations, shadow_report
from shadow_pipeline.domain.accuracy import FAIL, NO_DATA, PASS, WARN
from shadow_pipeline.domain.profiles import load_profiles, resolve
from shadow_pipeline.domain.queue_replay import queue_replay
from shadow_pipeline.redis_io.keys import fills_stream, kpi_stream, kpi_symbol_hash
from shadow_pipeline.redis_io.kpi_export import read_stream_records
from shadow_pipeline.reporting.accuracy import REPORT_JSON, REPORT_MD
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_binance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config

SYMBOLS = ("BTCUSDT", "ETHUSDT")
HOUR = "2024-08-08-23:00"
ASSETS = [
    landing_zone,
    raw_ticks,
    normalized_ticks,
    shadow_iterations,
    shadow_report,
    exported_kpis,
    dryrun_accuracy_report,
]
KPIS = {"maker_taker_ratio", "net_bps", "risk_ratio", "p95_latency_ms", "maker_count", "taker_count", "total_fills"}


@pytest.fixture(scope="module")
def binance_stream(redis_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url)
    key = "test:dryrun:binance:ticks"
    replay_binance(client, key, SYMBOLS)
    yield key
    for pattern in (f"{key}*", "shadow:kpi:*"):
        for name in client.scan_iter(match=pattern):
            client.delete(name)


def _clear_exports(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(match="shadow:kpi:*"):
        client.delete(name)


def _run(
    redis_url: str, stream: str, folder: Path, group: str, run_config: dg.RunConfig
) -> dict[str, dg.ExecuteInProcessResult]:
    resources_ = pipeline_resources(redis_url, stream, folder, group)
    results = {}
    with dg.instance_for_test() as instance:
        for symbol in SYMBOLS:
            results[symbol] = dg.materialize(
                ASSETS,
                partition_key=partition_key(HOUR, symbol),
                resources=resources_,
                run_config=run_config,
                instance=instance,
                raise_on_error=False,
            )
    return results


def _profiles_with(tmp_path: Path, **params: Any) -> str:
    data = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text())
    data["profiles"]["moderate"]["params"].update(params)
    data.pop("$schema", None)
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


def _accuracy(folder: Path, symbol: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((folder / "artifacts/dryrun" / HOUR / symbol / REPORT_JSON).read_text())
    return report


def test_export_read_back_and_accuracy_per_kpi_and_symbol(
    redis_url: str, redis_client: redis.Redis, binance_stream: str, tmp_path: Path
) -> None:
    _clear_exports(redis_url)
    results = _run(redis_url, binance_stream, tmp_path, "accuracy", shadow_run_config(window_seconds=5))
    for symbol in SYMBOLS:
        result = results[symbol]
        assert result.asset_materializations_for_node("exported_kpis"), symbol
        partition = f"{HOUR}|{symbol}"
        back = read_stream_records(redis_client, symbol, partition=partition, profile="moderate")
        assert len(back) == redis_client.xlen(kpi_stream(symbol)) == 69  # every 5 s window of the hour, once
        assert redis_client.hget(kpi_symbol_hash(symbol), "partition") == partition
        report = _accuracy(tmp_path, symbol)
        assert {row["kpi"] for row in report["kpis"]} == KPIS
        assert all(row["status"] in (PASS, WARN, FAIL, NO_DATA) for row in report["kpis"])
        assert report["predictions"].startswith("69 records from shadow:kpi:stream:")
        assert report["predicted_fills"] > 0 and report["actual_fills"] > 0
        assert (tmp_path / "artifacts/dryrun" / HOUR / symbol / REPORT_MD).exists()
        gate = {e.check_name: e for e in result.get_asset_check_evaluations()}[checks.ACCURACY_GATE]
        fails = [row["kpi"] for row in report["kpis"] if row["status"] == FAIL]
        assert gate.passed == (not fails), (symbol, report["kpis"])
        assert result.success  # a FAIL is a verdict on the predictions: the run itself succeeded
        total = next(row for row in report["kpis"] if row["kpi"] == "total_fills")
        assert total["median_actual"] <= total["median_predicted"]  # a queue never fills more than the touch
    # Re-running the partitions exports nothing twice.
    _run(redis_url, binance_stream, tmp_path / "again", "accuracy-again", shadow_run_config(window_seconds=5))
    assert redis_client.xlen(kpi_stream("BTCUSDT")) == 69


def test_a_dwell_of_zero_against_a_long_queue_fails_the_mape_gate(
    redis_url: str, redis_client: redis.Redis, binance_stream: str, tmp_path: Path
) -> None:
    _clear_exports(redis_url)
    wrong = shadow_run_config(window_seconds=5, profiles_file=_profiles_with(tmp_path, touch_dwell_ms=0))
    results = _run(redis_url, binance_stream, tmp_path, "wrong-dwell", wrong)
    for symbol in SYMBOLS:
        report = _accuracy(tmp_path, symbol)
        statuses = {row["kpi"]: row["status"] for row in report["kpis"]}
        assert statuses["total_fills"] == FAIL, report["kpis"]
        assert results[symbol].success  # a verdict, not a crash
        gate = {e.check_name: e for e in results[symbol].get_asset_check_evaluations()}[checks.ACCURACY_GATE]
        assert not gate.passed and "total_fills" in str(gate.description)
        assert gate.severity == dg.AssetCheckSeverity.ERROR


def _validate_only(redis_url: str, stream: str, folder: Path, run_config: dg.RunConfig) -> dg.ExecuteInProcessResult:
    """dryrun_accuracy_report alone, on the stored upstream partitions of ``folder``."""
    with dg.instance_for_test() as instance:
        return dg.materialize(
            ASSETS,
            selection=[dryrun_accuracy_report],
            partition_key=partition_key(HOUR, "BTCUSDT"),
            resources=pipeline_resources(redis_url, stream, folder, artifacts="bot"),
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )


def test_actual_fills_from_a_bot_stream_give_the_same_counts_as_the_replay_they_came_from(
    redis_url: str, redis_client: redis.Redis, binance_stream: str, tmp_path: Path
) -> None:
    """The fills reality source: a bot that got exactly the queue replay's fills reports them to
    dryrun:fills:{symbol}; the validator must then see the same fill counts as with the replay itself."""
    _clear_exports(redis_url)
    config = shadow_run_config(window_seconds=5)
    _run(redis_url, binance_stream, tmp_path, "fills", config)
    by_queue = {r["kpi"]: r for r in _accuracy(tmp_path, "BTCUSDT")["kpis"]}
    ticks = pd.read_parquet(tmp_path / "assets/normalized_ticks" / HOUR / "BTCUSDT.parquet")
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    fills = queue_replay(ticks, params).fills
    stream = fills_stream("BTCUSDT")
    redis_client.delete(stream)
    for fill in fills[["ts", "side", "price", "qty", "is_maker", "fee"]].to_dict(orient="records"):
        side = "buy" if fill["side"] > 0 else "sell"
        entry = {"ts": fill["ts"], "side": side, "price": fill["price"], "qty": fill["qty"], "fee": fill["fee"]}
        redis_client.xadd(stream, {**{k: str(v) for k, v in entry.items()}, "is_maker": int(fill["is_maker"])})
    config = dg.RunConfig(ops={"dryrun_accuracy_report": DryRunConfig(reality="fills")})
    try:
        assert _validate_only(redis_url, binance_stream, tmp_path, config).asset_materializations_for_node(
            "dryrun_accuracy_report"
        )
        report = json.loads((tmp_path / "bot/dryrun" / HOUR / "BTCUSDT" / REPORT_JSON).read_text())
        assert report["reality"] == f"{len(fills)} fills from {stream}"
        by_bot = {r["kpi"]: r for r in report["kpis"]}
        for kpi in ("maker_count", "taker_count", "total_fills"):
            assert by_bot[kpi]["wpe"] == by_queue[kpi]["wpe"], kpi
        # A malformed report from the bot fails the validation, naming the entry, rather than being skipped.
        bad = {"ts": "x", "side": "buy", "price": "1", "qty": "1", "is_maker": "1", "fee": "0"}
        bad_id = redis_client.xadd(stream, bad)  # type: ignore[arg-type]
        failed = _validate_only(redis_url, binance_stream, tmp_path, config)
        assert not failed.success
        failure = next(e for e in failed.all_events if e.is_step_failure)
        error = failure.step_failure_data.error
        assert error is not None and str(bad_id) in error.message
    finally:
        redis_client.delete(stream)
