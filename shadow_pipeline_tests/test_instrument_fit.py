"""Ticks that do not fit their instrument are refused before anything is simulated on them: the blocking
``fits_instrument`` check names what is wrong and what to check."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.ingest import checks
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import shadow_iterations
from shadow_pipeline.domain.market.instruments import load_registry
from shadow_pipeline.domain.market.quality import MAX_CROSSED_SHARE, fit
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.domain.market.ticks import FIELDS, VENUE_FIELD, parse_table
from shadow_pipeline.feed.recordings import read_binance
from shadow_pipeline.feed.replay import ReplayOptions, number_ticks, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.redis_io.streams import to_field_rows, xadd_rows
from shadow_pipeline.settings import INSTRUMENTS_ENV
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.ingest_helpers import pipeline_resources
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config

SYNTHETIC_HOUR = "2024-08-09-00:00"  # the synthetic market's default start
RECORDED_HOUR = "2024-08-08-23:00"


@pytest.fixture(autouse=True)
def _packaged_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTRUMENTS_ENV, raising=False)


def _synthetic(seconds: float = 60) -> pd.DataFrame:
    """Source rows (text-ready) of the synthetic BTCUSDT market, on the USD-M perpetual's grid."""
    return number_ticks(pd.concat(list(generate(["BTCUSDT"], seconds, seed=3)), ignore_index=True), {})


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return parse_table({c: frame[c].astype(str).to_numpy(dtype=object) for c in FIELDS}).ticks


def test_the_synthetic_perpetual_fits_and_each_kind_of_misfit_is_counted() -> None:
    perp = load_registry().get("BTCUSDT")
    ticks = _typed(_synthetic())
    assert fit(ticks, perp).fits
    off = ticks.copy()
    off.loc[off.index[::10], "bid"] += 0.03  # 10% of bids between grid points, still below the ask
    found = fit(off, perp)
    assert not found.fits and found.off_grid == len(off[::10]) and found.crossed == 0
    assert found.example_price == off["bid"].iloc[0]
    locked = ticks.assign(bid=ticks["ask"] - 0.04)  # below the ask as received, the same tick once on the grid
    found = fit(locked, perp)
    assert found.crossed == found.rows > MAX_CROSSED_SHARE * found.rows and not found.fits
    small = ticks.copy()
    small.loc[small.index[5], "bid_qty"] = 0.0004  # below the 0.001 lot step
    found = fit(small, perp)
    assert (found.below_lot, found.example_size, found.fits) == (1, 0.0004, False)


def test_a_crossed_row_or_two_is_tolerated_as_a_venue_glitch() -> None:
    ticks = _typed(_synthetic())
    ticks.loc[ticks.index[:1], "bid"] = ticks["ask"].iloc[0]  # locked, as a venue's glitch can be
    found = fit(ticks, load_registry().get("BTCUSDT"))
    assert found.crossed == 1 and found.rows > 1 / MAX_CROSSED_SHARE and found.fits


def _materialize(redis_url: str, stream: str, folder: Path, hour: str) -> dg.ExecuteInProcessResult:
    with dagster_instance() as instance:  # a bare ephemeral() can be collected mid-run
        return dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks, shadow_iterations],
            partition_key=partition_key(hour, "BTCUSDT"),
            resources=pipeline_resources(redis_url, stream, folder),
            run_config=shadow_run_config(window_seconds=10),
            instance=instance,
            raise_on_error=False,
        )


def _fit_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == checks.FITS_INSTRUMENT]
    return evaluation


def _refused(result: dg.ExecuteInProcessResult) -> str:
    """The check's description, after asserting that it blocked the shadow."""
    evaluation = _fit_check(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert not result.success and not result.asset_materializations_for_node("shadow_iterations")
    return str(evaluation.description)


def test_binance_spot_fed_without_its_venue_is_refused_and_the_perpetual_passes(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    spot = market_file("binance_hftbacktest/spot/btcusdt_20240808.gz")
    perp = market_file("binance_hftbacktest/usdm/btcusdt_20240808.gz")
    options = ReplayOptions(stream=stream, maxlen=None, progress=False)
    # the reader says binance-spot; a feed handler that wrote no venue field puts the same ticks on the perpetual
    unvenued = read_binance([spot]).drop(columns=VENUE_FIELD)
    replay(redis_client, iter([unvenued]), options)
    said = _refused(_materialize(redis_url, stream, tmp_path / "spot", RECORDED_HOUR))
    assert "prices are off BTCUSDT.binance-usdm's 0.1 grid: is this spot data? (BTCUSDT.binance-spot would fit)" in said
    assert (
        "sizes below the 0.001 lot step" in said and "nothing is simulated on it: check the feed's venue field" in said
    )
    perp_stream = f"{stream}:perp"
    replay(
        redis_client,
        open_source("binance", files=[perp]).chunks,
        ReplayOptions(stream=perp_stream, maxlen=None, progress=False),
    )
    result = _materialize(redis_url, perp_stream, tmp_path / "perp", RECORDED_HOUR)
    assert _fit_check(result).passed and result.success
    assert result.asset_materializations_for_node("shadow_iterations")


def test_a_synthetic_feed_off_the_grid_is_refused(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    frame = _synthetic()
    frame["bid"] = [f"{float(ask) - 0.04:.2f}" for ask in frame["ask"]]  # every book locked once on the 0.1 grid
    xadd_rows(redis_client, stream, to_field_rows(frame), maxlen=None)
    said = _refused(_materialize(redis_url, stream, tmp_path, SYNTHETIC_HOUR))
    assert "prices are off BTCUSDT.binance-usdm's 0.1 grid" in said
    assert "is this spot data? (BTCUSDT.binance-spot would fit)" in said  # cents fit spot's 0.01 grid
    assert "100.0% of books are crossed or locked on that grid" in said
