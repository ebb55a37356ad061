"""The hftbacktest reality on full depth, on the shared Binance USD-M recordings (skipped without them): the books
published with the replayer into a real Redis and read back, hftbacktest on full depth against top of book for
the packaged default profile (fills printed: run with ``-s`` to see them), and the dry-run through Dagster saying
which input its reality ran on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis

pytest.importorskip("hftbacktest", reason="hftbacktest (the hbt extra) is not installed: pip install -e '.[hbt]'")

from shadow_pipeline.defs.dryrun.assets import DryRunConfig, dryrun_accuracy_report
from shadow_pipeline.defs.export.assets import exported_kpis
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import ShadowConfig, shadow_iterations, shadow_report
from shadow_pipeline.domain.market.windows import hour_bounds
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.domain.validation.depth_events import depth_events
from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_replay
from shadow_pipeline.feed.replay import replay_depth
from shadow_pipeline.feed.sources import open_depth
from shadow_pipeline.redis_io.depth_stream import DepthRead, read_depth
from shadow_pipeline.redis_io.keys import depth_stream
from shadow_pipeline.reporting.accuracy import REPORT_JSON, REPORT_MD
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_binance
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.kpis_golden import CASES, generated_ticks

HOUR = "2024-08-08-23:00"
PROFILE = "moderate"  # the packaged default (ShadowConfig.profile)
RECORDING = {case.symbol: case for case in (CASES[0], CASES[2])}  # BTCUSDT, ETHUSDT
ASSETS = [landing_zone, raw_ticks, normalized_ticks, shadow_iterations, shadow_report, exported_kpis]


@pytest.fixture(scope="module")
def books(redis_url: str) -> Iterator[dict[str, DepthRead]]:
    """Both recordings' books published as ``shadow-pipeline replay --depth`` does, read back for the hour."""
    client = redis.Redis.from_url(redis_url)
    files = {symbol: market_file(str(case.recording)) for symbol, case in RECORDING.items()}
    for symbol in files:
        client.delete(depth_stream(symbol))
    try:
        written = replay_depth(client, open_depth(list(files.values())))
        assert written == {depth_stream("BTCUSDT"): 6548, depth_stream("ETHUSDT"): 6582}
        start, end = hour_bounds(HOUR)
        # the recordings run past the hour in exchange time (the recorder's clock is 1.27 s behind): both hours
        reads = {symbol: read_depth(client, symbol, start, end + 3600 * 10**9) for symbol in files}
        yield {symbol: read for symbol, read in reads.items() if read is not None}
    finally:
        for symbol in files:
            client.delete(depth_stream(symbol))


def test_the_published_books_read_back_whole(books: dict[str, DepthRead]) -> None:
    # the README's 6,551 and 6,586 diffs less those before the snapshot's lastUpdateId (Binance's rule)
    assert books["BTCUSDT"].describe() == "full depth: lob:depth:BTCUSDT, 1 snapshot (1000x1000 levels), 6,547 diffs"
    assert books["ETHUSDT"].describe() == "full depth: lob:depth:ETHUSDT, 1 snapshot (1000x1000 levels), 6,581 diffs"


@pytest.mark.parametrize("symbol", list(RECORDING))
def test_full_depth_against_top_of_book(books: dict[str, DepthRead], symbol: str) -> None:
    """Both run the profile's strategy on every row; the fills of each are printed, not asserted to a number: the
    two books are different markets behind the touch (docs/hftbacktest-reality.md, "Full depth")."""
    ticks = generated_ticks(RECORDING[symbol])
    params, _ = resolve(load_profiles(), PROFILE, symbol)
    top = hftbacktest_replay(ticks, params)
    full = hftbacktest_replay(ticks, params, depth=depth_events(books[symbol].levels, ticks, params))
    print(
        f"\n{symbol} {len(ticks):,} ticks, {PROFILE}: hftbacktest risk-averse fills top of book {len(top.fills)}, "
        f"full depth {len(full.fills)} (top/full {len(top.fills) / len(full.fills):.3f})"
    )
    assert len(top.inventory) == len(full.inventory) == len(ticks)  # one decision per row on either book
    assert list(full.fills.columns) == list(top.fills.columns)
    assert len(top.fills) > 0 and len(full.fills) > 0
    assert full.fills["tick"].is_monotonic_increasing and full.fills["tick"].max() < len(ticks)


def _materialize(
    redis_url: str, stream: str, folder: Path, config: DryRunConfig, upstream: bool
) -> dg.ExecuteInProcessResult:
    shadow = {"shadow_iterations": ShadowConfig(window_seconds=5)} if upstream else {}
    run_config = dg.RunConfig(ops={**shadow, "dryrun_accuracy_report": config})
    with dagster_instance() as instance:
        return dg.materialize(
            [*ASSETS, dryrun_accuracy_report],
            selection=None if upstream else [dryrun_accuracy_report],
            partition_key=partition_key(HOUR, "BTCUSDT"),
            resources=pipeline_resources(redis_url, stream, folder, "depth"),
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )


def test_the_dry_run_says_its_reality_ran_on_full_depth(
    redis_url: str, redis_client: redis.Redis, books: dict[str, DepthRead], tmp_path: Path
) -> None:
    stream = "test:dryrun:depth:ticks"
    replay_binance(redis_client, stream, ("BTCUSDT",))
    try:
        result = _materialize(redis_url, stream, tmp_path, DryRunConfig(depth="required"), upstream=True)
        assert result.success
        [event] = result.asset_materializations_for_node("dryrun_accuracy_report")
        line = "full depth: lob:depth:BTCUSDT, 1 snapshot (1000x1000 levels), 6,543 diffs"  # 4 are past the hour
        assert event.metadata["reality_input"].value == line
        folder = tmp_path / "artifacts/dryrun" / HOUR / "BTCUSDT"
        report = json.loads((folder / REPORT_JSON).read_text())
        assert report["reality_input"] == line and report["actual_fills"] > 0
        assert f"Reality input: {line}." in (folder / REPORT_MD).read_text()
        print(
            f"\nBTCUSDT dry-run on full depth: {report['predicted_fills']} predicted, {report['actual_fills']} actual"
        )
        # the same partition with depth off runs on the ticks' touch and says so
        off = _materialize(redis_url, stream, tmp_path, DryRunConfig(depth="off"), upstream=False)
        [event] = off.asset_materializations_for_node("dryrun_accuracy_report")
        assert event.metadata["reality_input"].value == "top of book: normalized_ticks (depth off)"
    finally:
        for name in redis_client.scan_iter(match=f"{stream}*"):
            redis_client.delete(name)
        for name in redis_client.scan_iter(match="shadow:kpi:*"):
            redis_client.delete(name)


def test_depth_required_without_a_stream_fails_with_how_to_publish_it(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Also: in auto mode a partition with no depth stream runs on top of book and says so."""
    stream = "test:dryrun:nodepth:ticks"
    replay_binance(redis_client, stream, ("BTCUSDT",))
    redis_client.delete(depth_stream("BTCUSDT"))
    try:
        auto = _materialize(redis_url, stream, tmp_path, DryRunConfig(), upstream=True)
        [event] = auto.asset_materializations_for_node("dryrun_accuracy_report")
        assert event.metadata["reality_input"].value == "top of book: normalized_ticks (no depth stream)"
        required = _materialize(redis_url, stream, tmp_path, DryRunConfig(depth="required"), upstream=False)
        assert not required.success
        failure = next(e for e in required.all_events if e.is_step_failure)
        error = failure.step_failure_data.error
        assert error is not None
        assert f"depth required, but {depth_stream('BTCUSDT')} has no entries for {HOUR}" in error.message
        assert "shadow-pipeline replay --depth" in error.message
    finally:
        for name in redis_client.scan_iter(match=f"{stream}*"):
            redis_client.delete(name)
        for name in redis_client.scan_iter(match="shadow:kpi:*"):
            redis_client.delete(name)
