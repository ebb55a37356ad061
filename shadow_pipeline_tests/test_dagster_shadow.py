"""Shadow Mode through Dagster on the real Binance recordings: ingest, simulate, KPIs per window, gates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pydantic
import pytest
import redis

from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow import checks
from shadow_pipeline.domain.kpis.run_notes import RunNotes, run_notes
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.launch import definitions
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.reporting.audit import audit
from shadow_pipeline.reporting.snapshot import SNAPSHOT_FILE
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_binance
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import SHADOW_ASSETS, loose_profiles, shadow_run_config

SYMBOLS = ("BTCUSDT", "ETHUSDT")
HOURS = ("2024-08-08-23:00", "2024-08-09-00:00")  # the recordings cross midnight UTC (exchange time)
PARTITIONS = tuple((hour, symbol) for hour in HOURS for symbol in SYMBOLS)
BTC_HOUR = (HOURS[0], "BTCUSDT")  # the recorded hour with most of the market: one partition where one suffices


@pytest.fixture(scope="module")
def binance_stream(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url)
    key = "test:shadow:binance:ticks"
    replay_binance(client, key, SYMBOLS)
    yield key
    for name in client.scan_iter(match=f"{key}*"):
        client.delete(name)


def _run(
    redis_url: str,
    stream: str,
    folder: Path,
    group: str,
    run_config: dg.RunConfig,
    partitions: Sequence[tuple[str, str]] = PARTITIONS,
) -> dict[tuple[str, str], dg.ExecuteInProcessResult]:
    resources = pipeline_resources(redis_url, stream, folder, group)
    results = {}
    with dagster_instance() as instance:
        for hour, symbol in partitions:
            results[(hour, symbol)] = dg.materialize(
                SHADOW_ASSETS,
                partition_key=partition_key(hour, symbol),
                resources=resources,
                run_config=run_config,
                instance=instance,
                raise_on_error=False,
            )
    return results


def _iterations(folder: Path, symbol: str) -> tuple[pd.DataFrame, list[RunNotes]]:
    parts = [read_frame(str(folder / "assets/shadow_iterations" / hour / f"{symbol}.parquet")) for hour in HOURS]
    return pd.concat(parts, ignore_index=True), [run_notes(part) for part in parts]


def test_default_gates_give_the_honest_verdict_with_reasons(
    redis_url: str, binance_stream: str, tmp_path: Path
) -> None:
    results = _run(redis_url, binance_stream, tmp_path, "default", shadow_run_config(window_seconds=5))
    for symbol in SYMBOLS:
        iterations, notes = _iterations(tmp_path, symbol)
        # 345 s of recording in 5 s windows over the two hourly partitions: 69 full windows plus the partial
        # window the recording starts in (its first ticks arrive at 23:54:16.3 exchange time); a window is valid
        # with enough ticks and a fill, and the queue model leaves a few windows without one
        assert len(iterations) == 70
        rule = (iterations["ticks"] >= 50) & (iterations["total_fills"] >= 1)
        assert iterations["valid"].tolist() == rule.tolist() and 55 <= int(iterations["valid"].sum()) <= 69
        assert iterations["total_fills"].sum() > 0
        assert all(n.fill_model == "queue (size_decrease_share 0 (risk-averse))" for n in notes)
        assert [n.partition for n in notes] == [f"{hour}|{symbol}" for hour in HOURS]  # one typed note each
        assert all(n.ingest.startswith("seq_gaps=0 ") and n.profile == "moderate" and n.commit for n in notes)
        assert "params" not in iterations and "thresholds" not in iterations  # not stamped on every row
    for (hour, symbol), result in results.items():
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) >= {checks.MIN_VALID_WINDOWS, checks.KPI_THRESHOLDS}, (hour, symbol)
        snapshot = json.loads((tmp_path / "artifacts/shadow" / hour / symbol / SNAPSHOT_FILE).read_text())
        failed = [g["kpi"] for g in snapshot["gates"] if not g["passed"]]
        assert (snapshot["verdict"] == "GO") == (not failed), (hour, symbol, snapshot["reasons"])
        assert result.success  # a No-Go is a verdict: the run itself succeeded
        assert bool(result.asset_materializations_for_node("live_ready_profile")) == (not failed)
        assert len(snapshot["reasons"]) == len(failed)
        assert snapshot["fill_model"] == notes[0].fill_model
        # the verdict at the bounds of the queue knob: share 0 is the chosen value; putting every unexplained
        # decrease ahead of us (share 1) moves our queue forward sooner (298 -> 580 fills on the BTCUSDT hour)
        bounds = {row["assumption"]: row for row in snapshot["sensitivity"]}
        assert [bounds[a]["value"] for a in ("lower bound", "chosen", "upper bound")] == [0.0, 0.0, 1.0]
        assert bounds["chosen"]["verdict"] == snapshot["verdict"]
        assert bounds["chosen"]["total_fills"] == snapshot["kpis"]["total_fills"]
        assert bounds["upper bound"]["total_fills"] >= bounds["chosen"]["total_fills"]
        kpi_check = evaluations[checks.KPI_THRESHOLDS]
        for kpi in failed:
            if kpi != "valid_windows":
                assert kpi in str(kpi_check.metadata["failed"].value)
        # a No-Go says by how much each gate missed
        for reason in snapshot["reasons"]:
            assert " by " in reason or "unknown" in reason
    # The midnight partition holds about one window: too few for a verdict, and the min-windows gate says so.
    midnight = json.loads((tmp_path / "artifacts/shadow" / HOURS[1] / "BTCUSDT" / SNAPSHOT_FILE).read_text())
    assert midnight["verdict"] == "NO-GO" and any(r.startswith("valid_windows") for r in midnight["reasons"])
    # shadow-audit reads the same files and agrees with the runs
    table = audit([tmp_path / "artifacts"])
    assert len(table) == 4 and (table["verdict"] == table["was"]).all()


def test_loosened_thresholds_give_go(redis_url: str, binance_stream: str, tmp_path: Path) -> None:
    config = shadow_run_config(window_seconds=5, profiles_file=loose_profiles(tmp_path))
    results = _run(redis_url, binance_stream, tmp_path, "loose", config)
    for symbol in SYMBOLS:
        result = results[(HOURS[0], symbol)]
        assert result.success
        report = result.asset_materializations_for_node("shadow_report")[0].metadata
        assert report["verdict"].value == "GO"
        assert float(str(report["valid_windows"].value)) >= 48
        gates = [e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey("shadow_report")]
        assert len(gates) == 2 and all(e.passed for e in gates)
        assert "data:image/png;base64," in str(report["kpi_plot"].value)
        assert (tmp_path / "artifacts/shadow" / HOURS[0] / symbol / "SHADOW_REPORT.md").exists()
        # A Go promotes the parameters as a profiles file that resolves to exactly the parameters that ran.
        promoted = result.asset_materializations_for_node("live_ready_profile")[0].metadata["profiles_file"].value
        ran = run_notes(read_frame(str(tmp_path / "assets/shadow_iterations" / HOURS[0] / f"{symbol}.parquet")))
        assert resolve(load_profiles(str(promoted)), "moderate", symbol) == (ran.params, ran.thresholds)
    # The same partitions judged again with the default gates: No-Go, and the earlier promotion is withdrawn.
    judged_again = _run(redis_url, binance_stream, tmp_path, "strict", shadow_run_config(window_seconds=5))
    for symbol in SYMBOLS:
        assert judged_again[(HOURS[0], symbol)].success
        assert not judged_again[(HOURS[0], symbol)].asset_materializations_for_node("live_ready_profile")
        assert not (tmp_path / "artifacts/shadow" / HOURS[0] / symbol / "LIVE_READY_PROFILE.json").exists()


def test_a_bad_profile_fails_the_run_with_the_reason(redis_url: str, binance_stream: str, tmp_path: Path) -> None:
    config = shadow_run_config(profile="reckless", window_seconds=5)
    result = _run(redis_url, binance_stream, tmp_path, "bad", config)[(HOURS[0], "BTCUSDT")]
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.message  # type: ignore[union-attr]
    assert "unknown profile 'reckless'" in message and "moderate" in message


def _dwell_profiles(tmp_path: Path) -> str:
    """The packaged profiles with moderate on the dwell fill model (its touch_dwell_ms 500 then applies)."""
    data = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text())
    data["profiles"]["moderate"]["params"]["fill"] = {"model": "dwell"}
    data.pop("$schema", None)
    path = tmp_path / "dwell_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


def _ran(
    redis_url: str, stream: str, folder: Path, group: str, run_config: dg.RunConfig
) -> tuple[dg.ExecuteInProcessResult, pd.DataFrame, RunNotes, dict[str, Any]]:
    """The BTCUSDT hour under ``run_config``: the result, the stored windows, their notes and the snapshot."""
    result = _run(redis_url, stream, folder, group, run_config, [BTC_HOUR])[BTC_HOUR]
    assert result.success
    hour, symbol = BTC_HOUR
    iterations = read_frame(str(folder / "assets/shadow_iterations" / hour / f"{symbol}.parquet"))
    snapshot = json.loads((folder / "artifacts/shadow" / hour / symbol / SNAPSHOT_FILE).read_text())
    return result, iterations, run_notes(iterations), snapshot


def test_a_min_lot_override_quotes_the_new_size(redis_url: str, binance_stream: str, tmp_path: Path) -> None:
    _, base, base_notes, base_snapshot = _ran(
        redis_url, binance_stream, tmp_path / "base", "lot-base", shadow_run_config(window_seconds=5)
    )
    config = shadow_run_config(window_seconds=5, min_lot=0.004)
    result, lots, notes, snapshot = _ran(redis_url, binance_stream, tmp_path / "lot", "lot-override", config)
    # the run notes (what the report, the snapshot's digest and a promotion read) carry the override and only it
    assert base_notes.params.min_lot == 0.002 and notes.params.min_lot == 0.004
    assert replace(notes.params, min_lot=0.002) == base_notes.params and notes.thresholds == base_notes.thresholds
    assert snapshot["params_digest"] == notes.params_digest != base_snapshot["params_digest"]
    metadata = result.asset_materializations_for_node("shadow_iterations")[0].metadata
    assert metadata["parameters"] == dg.MetadataValue.json(notes.params.__dict__)  # what the run's page shows
    # twice the order size: each maker fill trades about twice the notional (partial fills keep it below 2x)
    per_fill = [float(f["maker_notional"].sum() / f["maker_count"].sum()) for f in (base, lots)]
    assert 1.5 < per_fill[1] / per_fill[0] <= 2.0 + 1e-9, per_fill
    assert snapshot["kpis"] != base_snapshot["kpis"]


def test_a_touch_dwell_override_on_a_dwell_profile(redis_url: str, binance_stream: str, tmp_path: Path) -> None:
    dwell = _dwell_profiles(tmp_path)
    config = shadow_run_config(window_seconds=5, profiles_file=dwell)
    _, base, base_notes, _ = _ran(redis_url, binance_stream, tmp_path / "base", "dwell-base", config)
    config = shadow_run_config(window_seconds=5, profiles_file=dwell, touch_dwell_ms=2000)
    _, longer, notes, snapshot = _ran(redis_url, binance_stream, tmp_path / "dwell", "dwell-override", config)
    assert base_notes.fill_model == "dwell (touch_dwell_ms 500)"
    assert notes.fill_model == snapshot["fill_model"] == "dwell (touch_dwell_ms 2000)"
    assert replace(notes.params, touch_dwell_ms=500) == base_notes.params
    chosen = next(row for row in snapshot["sensitivity"] if row["assumption"] == "chosen")
    assert chosen["value"] == 2000 and chosen["total_fills"] == snapshot["kpis"]["total_fills"]
    # a quote that must stand four times as long at its price before it may fill fills less often
    assert longer["total_fills"].sum() < base["total_fills"].sum()


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"touch_dwell_ms": 100}, "touch_dwell_ms applies to the dwell fill model only (this profile's is queue)"),
        ({"min_lot": 0.0025}, "min_lot: 0.0025 is not a positive multiple of BTCUSDT's lot_step 0.001"),
    ],
)
def test_an_override_the_profile_cannot_take_fails_the_run_with_the_reason(
    redis_url: str, binance_stream: str, tmp_path: Path, override: dict[str, float], reason: str
) -> None:
    config = shadow_run_config(window_seconds=5, **override)
    result = _run(redis_url, binance_stream, tmp_path, f"bad-override-{tmp_path.name}", config, [BTC_HOUR])
    assert not result[BTC_HOUR].success
    failure = next(e for e in result[BTC_HOUR].all_events if e.is_step_failure)
    message = failure.event_specific_data.error.message  # type: ignore[union-attr]
    assert "override of profile 'moderate' for BTCUSDT: " in message and reason in message, message
    assert not (tmp_path / "assets/shadow_iterations" / BTC_HOUR[0] / "BTCUSDT.parquet").exists()


def test_an_override_out_of_range_is_refused_before_any_run() -> None:
    """The schema's bounds are the run config's: a value out of range never reaches a run."""
    with pytest.raises(pydantic.ValidationError, match="min_lot"):
        shadow_run_config(window_seconds=5, min_lot=0.0)


def _fields(config_type: Any) -> dict[str, Any]:
    """A config Shape's fields (``ConfigType`` does not declare them)."""
    fields: dict[str, Any] = config_type.fields
    return fields


def test_the_launchpad_offers_the_overrides() -> None:
    job = definitions().resolve_job_def("shadow_job")
    ops = _fields(job.run_config_schema.config_type)["ops"].config_type
    fields = _fields(_fields(_fields(ops)["shadow_iterations"].config_type)["config"].config_type)
    for name in ("touch_dwell_ms", "min_lot"):
        assert not fields[name].is_required, name
        assert fields[name].description.startswith("Override the profile's ")
        assert fields[name].description.endswith("for this run; default: the profile's.")
