"""Export and dry-run validation through Dagster on the real Binance recordings (5-second windows)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
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
from shadow_pipeline.defs.shadow.assets import ShadowConfig, shadow_iterations, shadow_report
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.domain.validation.accuracy import FAIL, NO_DATA, NOT_JUDGED, PASS, SAME_MODEL, WARN
from shadow_pipeline.domain.validation.hftbacktest_engine import INSTALL_HINT, hftbacktest_available
from shadow_pipeline.redis_io.keys import fills_stream, kpi_stream, kpi_symbol_hash
from shadow_pipeline.redis_io.kpi_export import read_stream_records
from shadow_pipeline.reporting.accuracy import REPORT_JSON, REPORT_MD
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_binance
from shadow_pipeline_tests.instance_helpers import dagster_instance
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
QUEUE_LABEL = "queue (size_decrease_share 0 (risk-averse))"
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
    with dagster_instance() as instance:
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


needs_hftbacktest = pytest.mark.skipif(
    not hftbacktest_available(), reason="hftbacktest (the extra hbt) is not installed: pip install -e '.[hbt]'"
)


@needs_hftbacktest
def test_the_default_dry_run_holds_the_queue_shadow_against_hftbacktest(
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
        assert {r["fill_model"] for r in back} == {QUEUE_LABEL}
        assert redis_client.hget(kpi_symbol_hash(symbol), "partition") == partition
        report = _accuracy(tmp_path, symbol)
        assert report["compared"] == f"shadow {QUEUE_LABEL} against {report['reality']}"
        assert report["reality"].startswith("hftbacktest 2.4.4 (risk-averse queue")
        assert {row["kpi"] for row in report["kpis"]} == KPIS
        statuses = {row["kpi"]: row["status"] for row in report["kpis"]}
        # hftbacktest runs the shadow's own latency model: the latency KPI is not judged, and the report says why
        assert statuses.pop("p95_latency_ms") == NOT_JUDGED and report["not_judged"] == ["p95_latency_ms"]
        assert {row["note"] for row in report["kpis"] if row["kpi"] == "p95_latency_ms"} == {SAME_MODEL}
        assert set(statuses.values()) <= {PASS, WARN, FAIL, NO_DATA}
        judged = set(statuses.values()) - {NO_DATA}
        assert report["status"] == next((s for s in (FAIL, WARN, PASS) if s in judged), NO_DATA)
        assert report["no_data"] == [kpi for kpi, status in statuses.items() if status == NO_DATA]
        assert report["predictions"].startswith("69 records from shadow:kpi:stream:")
        # the acceptance: the default shadow predicts hftbacktest's fills within 0.8-1.25x on the shared hour
        assert 0.8 <= report["predicted_fills"] / report["actual_fills"] <= 1.25, report
        assert (tmp_path / "artifacts/dryrun" / HOUR / symbol / REPORT_MD).exists()
        gate = {e.check_name: e for e in result.get_asset_check_evaluations()}[checks.ACCURACY_GATE]
        fails = [row["kpi"] for row in report["kpis"] if row["status"] == FAIL]
        assert gate.passed == (not fails), (symbol, report["kpis"])
        warn = {e.check_name: e for e in result.get_asset_check_evaluations()}[checks.ACCURACY_WARN]
        assert warn.passed == (WARN not in judged)  # a KPI without data never fails the WARN check on its own
        assert warn.metadata["no_data"].value == (", ".join(report["no_data"]) or "none")
        assert warn.metadata["no_data_count"].value == len(report["no_data"])
        [done] = result.asset_materializations_for_node("dryrun_accuracy_report")
        assert done.metadata["no_data_count"].value == len(report["no_data"])
        assert result.success  # a FAIL is a verdict on the predictions: the run itself succeeded
    # Re-running the partitions exports nothing twice.
    _run(redis_url, binance_stream, tmp_path / "again", "accuracy-again", shadow_run_config(window_seconds=5))
    assert redis_client.xlen(kpi_stream("BTCUSDT")) == 69


@needs_hftbacktest
def test_the_dwell_proxy_without_dwell_fails_the_mape_gate_against_hftbacktest(
    redis_url: str, redis_client: redis.Redis, binance_stream: str, tmp_path: Path
) -> None:
    _clear_exports(redis_url)
    dwell = _profiles_with(tmp_path, fill={"model": "dwell"}, touch_dwell_ms=0)
    wrong = dg.RunConfig(
        ops={
            "shadow_iterations": ShadowConfig(window_seconds=5, profiles_file=dwell),
            "dryrun_accuracy_report": DryRunConfig(reality="hftbacktest"),
        }
    )
    results = _run(redis_url, binance_stream, tmp_path, "wrong-dwell", wrong)
    for symbol in SYMBOLS:
        report = _accuracy(tmp_path, symbol)
        assert report["compared"].startswith("shadow dwell (touch_dwell_ms 0) against hftbacktest")
        statuses = {row["kpi"]: row["status"] for row in report["kpis"]}
        assert statuses["total_fills"] == FAIL, report["kpis"]
        assert report["predicted_fills"] > 1.5 * report["actual_fills"]  # phantom fills at the touch
        assert results[symbol].success  # a verdict, not a crash
        gate = {e.check_name: e for e in results[symbol].get_asset_check_evaluations()}[checks.ACCURACY_GATE]
        assert not gate.passed and "total_fills" in str(gate.description)
        assert gate.severity == dg.AssetCheckSeverity.ERROR


def test_without_the_extra_the_default_reality_fails_with_the_install_hint(
    redis_url: str, binance_stream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "hftbacktest", None)  # as in an install without the hbt extra
    _clear_exports(redis_url)
    result = _run(redis_url, binance_stream, tmp_path, "no-extra", shadow_run_config(window_seconds=60))["ETHUSDT"]
    assert result.asset_materializations_for_node("exported_kpis")  # everything up to the dry-run still lands
    assert not result.success and not result.asset_materializations_for_node("dryrun_accuracy_report")
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None and INSTALL_HINT in error.message


def test_the_queue_model_is_never_its_own_reality(
    redis_url: str, redis_client: redis.Redis, binance_stream: str, tmp_path: Path
) -> None:
    _clear_exports(redis_url)
    config = dg.RunConfig(
        ops={
            "shadow_iterations": ShadowConfig(window_seconds=60),
            "dryrun_accuracy_report": DryRunConfig(reality="queue"),
        }
    )
    result = _run(redis_url, binance_stream, tmp_path, "self", config)["BTCUSDT"]
    assert result.asset_materializations_for_node("exported_kpis")
    assert not result.asset_materializations_for_node("dryrun_accuracy_report")
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None and "compare the model with itself" in error.message


def _validate_only(redis_url: str, stream: str, folder: Path, run_config: dg.RunConfig) -> dg.ExecuteInProcessResult:
    """dryrun_accuracy_report alone, on the stored upstream partitions of ``folder``."""
    with dagster_instance() as instance:
        return dg.materialize(
            ASSETS,
            selection=[dryrun_accuracy_report],
            partition_key=partition_key(HOUR, "BTCUSDT"),
            resources=pipeline_resources(redis_url, stream, folder, artifacts="bot"),
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )


def test_a_bots_fills_are_the_reality_and_the_queue_knob_is_fitted_to_them(
    redis_url: str, redis_client: redis.Redis, binance_stream: str, tmp_path: Path
) -> None:
    """The fills reality source: a bot whose queue sat further forward (share 0.75) and whose orders took twice
    the profile's latency reports its fills to dryrun:fills:{symbol}; the validator counts exactly those fills and
    the fit names the bot's share and latency, which the profile does not know."""
    _clear_exports(redis_url)
    _run(redis_url, binance_stream, tmp_path, "fills", shadow_run_config(window_seconds=5))  # upstream stored
    ticks = pd.read_parquet(tmp_path / "assets/normalized_ticks" / HOUR / "BTCUSDT.parquet")
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    bot = replace(params, size_decrease_share=0.75, order_entry_latency_ms=2 * params.order_entry_latency_ms)
    fills = simulate(ticks, bot).fills
    stream = fills_stream("BTCUSDT")
    redis_client.delete(stream)
    for fill in fills[["ts", "side", "price", "qty", "is_maker", "fee"]].to_dict(orient="records"):
        side = "buy" if fill["side"] > 0 else "sell"
        entry = {"ts": fill["ts"], "side": side, "price": fill["price"], "qty": fill["qty"], "fee": fill["fee"]}
        redis_client.xadd(stream, {**{k: str(v) for k, v in entry.items()}, "is_maker": int(fill["is_maker"])})
    config = dg.RunConfig(ops={"dryrun_accuracy_report": DryRunConfig(reality="fills")})
    try:
        done = _validate_only(redis_url, binance_stream, tmp_path, config)
        [report_event] = done.asset_materializations_for_node("dryrun_accuracy_report")
        metadata = report_event.metadata
        assert str(metadata["queue_fit"].value).startswith(
            f"size_decrease_share 0.75, order_entry_latency_ms {bot.order_entry_latency_ms:g} (fills WPE 0,"
        )
        report = json.loads((tmp_path / "bot/dryrun" / HOUR / "BTCUSDT" / REPORT_JSON).read_text())
        assert report["reality"] == f"{len(fills)} fills from {stream}"
        assert report["actual_fills"] == len(fills)  # every window of the hour holds its share of the bot's fills
        assert report["queue_fit"] == metadata["queue_fit"].value
        # against a bot's fills the latency KPI is the bot's own, so it is judged
        [latency] = [row for row in report["kpis"] if row["kpi"] == "p95_latency_ms"]
        assert report["not_judged"] == [] and latency["status"] in (PASS, WARN, FAIL) and latency["note"] == ""
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
