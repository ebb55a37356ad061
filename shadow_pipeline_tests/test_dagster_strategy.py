"""A desk's own strategy (``example_strategy.py``, the one ``docs/strategies.md`` walks through) named by path in
a profiles file, and the packaged second strategy ``inventory_skew``, run through the shadow's Dagster assets on
the recorded BTCUSDT hour, their notes say so, and the dry-run holds each against hftbacktest running the same
strategy."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
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
from shadow_pipeline_tests.instance_helpers import dagster_instance
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
# Each strategy with one of its own parameters set away from its default, so that the notes show it arrived.
STRATEGIES: dict[str, dict[str, float]] = {EXAMPLE: {"fade_ticks": 3}, "inventory_skew": {"risk_aversion": 1e-3}}


def _profiles(tmp_path: Path, strategy: str, own: Mapping[str, float]) -> str:
    """The packaged profiles with moderate quoting through ``strategy`` with its parameters ``own``."""
    data: dict[str, Any] = json.loads(json.dumps(load_profiles().data))
    data.pop("$schema", None)
    data["profiles"]["moderate"]["params"].update(strategy=strategy, strategy_params=dict(own))
    path = tmp_path / "desk_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def recorded_stream(redis_url: str) -> Iterator[str]:
    """The recorded BTCUSDT day in a stream of this module, replayed once for every strategy."""
    client = redis.Redis.from_url(redis_url)
    stream = "test:strategy:binance:ticks"
    replay_binance(client, stream, (SYMBOL,))
    try:
        yield stream
    finally:
        client.delete(stream)
        client.close()


@pytest.mark.skipif(not hftbacktest_available(), reason="the dry-run's reality needs the hbt extra")
@pytest.mark.parametrize("strategy", list(STRATEGIES), ids=["desk-strategy-by-path", "inventory-skew"])
def test_a_strategy_runs_through_the_shadow_export_and_dryrun_assets(
    redis_url: str, recorded_stream: str, tmp_path: Path, strategy: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    own = STRATEGIES[strategy]
    group = "strategy-" + strategy.rpartition(":")[2].lower()  # a consumer group per run: each ingests the hour
    try:
        with dagster_instance() as instance:
            result = dg.materialize(
                ASSETS,
                partition_key=partition_key(HOUR, SYMBOL),
                resources=pipeline_resources(redis_url, recorded_stream, tmp_path, group),
                run_config=shadow_run_config(window_seconds=5, profiles_file=_profiles(tmp_path, strategy, own)),
                instance=instance,
            )
    finally:
        for name in client.scan_iter(match="shadow:kpi:*"):
            client.delete(name)
        client.close()
    assert result.success
    stored = read_frame(str(tmp_path / "assets/shadow_iterations" / HOUR / f"{SYMBOL}.parquet"))
    notes = run_notes(stored)
    assert (notes.params.strategy, notes.params.strategy_params) == (strategy, own)
    snapshot = json.loads((tmp_path / "artifacts/shadow" / HOUR / SYMBOL / SNAPSHOT_FILE).read_text())
    assert snapshot["params_digest"] == notes.params_digest
    # the stored windows are this strategy's, and differ from the packaged quoter's on the same ticks
    ticks = read_frame(str(tmp_path / "assets/normalized_ticks" / HOUR / f"{SYMBOL}.parquet"))
    ours = iteration_kpis(ticks, simulate(ticks, notes.params), notes.params, notes.thresholds, 5.0)
    assert ours["total_fills"].tolist() == stored["total_fills"].tolist()
    packaged = replace(notes.params, strategy="touch_offset", strategy_params={})
    theirs = iteration_kpis(ticks, simulate(ticks, packaged), packaged, notes.thresholds, 5.0)
    assert 0 < stored["total_fills"].sum() != theirs["total_fills"].sum()
    # the dry-run: hftbacktest ran the same strategy, and the queue shadow predicts its fills
    report = json.loads((tmp_path / "artifacts/dryrun" / HOUR / SYMBOL / REPORT_JSON).read_text())
    assert report["reality"].startswith("hftbacktest 2.4.4") and report["reality"].endswith(f"quoting {strategy}")
    assert report["strategy"] == strategy
    [dryrun] = result.asset_materializations_for_node(dryrun_accuracy_report.key.path[-1])
    assert dryrun.metadata["strategy"].value == strategy
    assert 0.8 <= report["predicted_fills"] / report["actual_fills"] <= 1.25, report
