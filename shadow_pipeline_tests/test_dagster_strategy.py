"""A desk's own strategy (``example_strategy.py``, the one ``docs/strategies.md`` walks through) named by path in
a profiles file runs through the shadow's Dagster assets on the recorded BTCUSDT hour, its notes say so, and the
dry-run holds it against hftbacktest running the same strategy."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import redis

from shadow_pipeline.defs.dryrun.assets import dryrun_accuracy_report
from shadow_pipeline.defs.export.assets import exported_kpis
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import live_ready_profile, shadow_iterations, shadow_report
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.profiles import load_profiles
from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_available
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.reporting.accuracy import REPORT_JSON
from shadow_pipeline.reporting.snapshot import SNAPSHOT_FILE
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_binance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config

HOUR, SYMBOL = "2024-08-08-23:00", "BTCUSDT"
ASSETS = [
    landing_zone,
    raw_ticks,
    normalized_ticks,
    shadow_iterations,
    shadow_report,
    live_ready_profile,
    exported_kpis,
    dryrun_accuracy_report,
]
EXAMPLE = "shadow_pipeline_tests.example_strategy:TRADE_FADE"


def _profiles(tmp_path: Path) -> str:
    """The packaged profiles with moderate quoting through the example strategy, its fade set to 3 ticks."""
    data: dict[str, Any] = json.loads(json.dumps(load_profiles().data))
    data.pop("$schema", None)
    data["profiles"]["moderate"]["params"].update(strategy=EXAMPLE, strategy_params={"fade_ticks": 3})
    path = tmp_path / "desk_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.skipif(not hftbacktest_available(), reason="the dry-run's reality needs the hbt extra")
def test_a_desk_strategy_named_by_path_runs_through_the_shadow_assets(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    stream = "test:strategy:binance:ticks"
    replay_binance(client, stream, (SYMBOL,))
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                ASSETS,
                partition_key=partition_key(HOUR, SYMBOL),
                resources=pipeline_resources(redis_url, stream, tmp_path, "desk-strategy"),
                run_config=shadow_run_config(window_seconds=5, profiles_file=_profiles(tmp_path)),
                instance=instance,
            )
    finally:
        for name in [stream, *client.scan_iter(match="shadow:kpi:*")]:
            client.delete(name)
    assert result.success
    stored = read_frame(str(tmp_path / "assets/shadow_iterations" / HOUR / f"{SYMBOL}.parquet"))
    notes = run_notes(stored)
    assert (notes.params.strategy, notes.params.strategy_params) == (EXAMPLE, {"fade_ticks": 3})
    snapshot = json.loads((tmp_path / "artifacts/shadow" / HOUR / SYMBOL / SNAPSHOT_FILE).read_text())
    assert snapshot["params_digest"] == notes.params_digest
    # the stored windows are the example strategy's, and differ from the packaged quoter's on the same ticks
    ticks = read_frame(str(tmp_path / "assets/normalized_ticks" / HOUR / f"{SYMBOL}.parquet"))
    ours = iteration_kpis(ticks, simulate(ticks, notes.params), notes.params, notes.thresholds, 5.0)
    assert ours["total_fills"].tolist() == stored["total_fills"].tolist()
    packaged = replace(notes.params, strategy="touch_offset", strategy_params={})
    theirs = iteration_kpis(ticks, simulate(ticks, packaged), packaged, notes.thresholds, 5.0)
    assert 0 < stored["total_fills"].sum() != theirs["total_fills"].sum()
    # the dry-run: hftbacktest ran the same strategy, and the queue shadow predicts its fills
    report = json.loads((tmp_path / "artifacts/dryrun" / HOUR / SYMBOL / REPORT_JSON).read_text())
    assert report["reality"].startswith("hftbacktest 2.4.4")
    assert 0.8 <= report["predicted_fills"] / report["actual_fills"] <= 1.25, report
