"""Local timestamp units of Binance recordings: ns as recorded in 2024, us as hftbacktest's older collector wrote.

Fixtures (``fixtures/``, a few hundred lines each): ``binance_usdm_btcusdt_ns.gz`` is a thinned 45 s slice of
the shared ``binance_hftbacktest/usdm/btcusdt_20240808.gz``, lines unchanged; ``..._us_markprice.gz`` is the same
slice with the local stamps divided by 1000 and ``markPrice@1s`` messages interleaved. The exact recipe is in
``recording_fixtures.py``, which rebuilds them (``python -m shadow_pipeline_tests.recording_fixtures``);
``test_fixtures_follow_the_recipe`` checks that they still match it when the shared data is present.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.market.quality import normalize
from shadow_pipeline.domain.market.ticks import parse_entries
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.feed.recordings import RecordingError, read_binance
from shadow_pipeline.feed.replay import ReplayOptions, ReplayResult, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline_tests import recording_fixtures
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.recording_fixtures import NS_FIXTURE, US_FIXTURE
from shadow_pipeline_tests.sim_helpers import gates, params

NS = 1_000_000_000
US = 1_000


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return handle.readlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress("".join(lines).encode()))
    return path


def _streams(path: Path) -> list[str]:
    """Each line's stream name, read with the standard library ("" for a frame without one)."""
    return [json.loads(line.split(" ", 1)[1]).get("stream", "") for line in _lines(path)]


def _span_s(values: pd.Series) -> float:
    return float(values.max() - values.min()) / NS


def test_both_units_parse_to_the_same_ticks() -> None:
    ns, us = read_binance([NS_FIXTURE]), read_binance([US_FIXTURE])
    ticks = sum(s.endswith(("@bookTicker", "@trade")) for s in _streams(NS_FIXTURE))
    assert len(ns) == len(us) == ticks
    pd.testing.assert_frame_equal(ns.drop(columns="ts_local"), us.drop(columns="ts_local"))
    lag = ns["ts_local"] - us["ts_local"]  # us stamps are the ns ones rounded down to the microsecond
    assert lag.between(0, US - 1).all()


def test_microsecond_file_spans_the_true_market_time() -> None:
    ns, us = read_binance([NS_FIXTURE]), read_binance([US_FIXTURE])
    true_span = _span_s(ns["ts_local"])
    assert true_span > 30  # the slice is 45 s; read as ns, a us file would span 0.045 s
    assert _span_s(us["ts_server"]) == _span_s(ns["ts_server"])
    assert _span_s(us["ts_local"]) == pytest.approx(true_span, abs=1e-6)
    assert open_source("binance", files=[US_FIXTURE]).market_seconds == pytest.approx(true_span, abs=1e-6)


def test_millisecond_stamps_are_read_too(tmp_path: Path) -> None:
    lines = [f"{int(stamp) // 1_000_000} {frame}" for stamp, frame in (s.split(" ", 1) for s in _lines(NS_FIXTURE))]
    ms = read_binance([_write(tmp_path / "ms.gz", lines)])
    ns = read_binance([NS_FIXTURE])
    assert (ns["ts_local"] - ms["ts_local"]).between(0, 1_000_000 - 1).all()


def _replayed(path: Path, redis_url: str, stream: str) -> tuple[ReplayResult, pd.DataFrame]:
    """Replay a recording into the test's Redis and read it back as typed ticks by exchange time."""
    source = open_source("binance", files=[path])
    result = replay(redis.Redis.from_url(redis_url), source.chunks, ReplayOptions(stream=stream, progress=False))
    batch = parse_entries([fields for _, fields in read_entries(redis.Redis.from_url(redis_url), stream)])
    assert batch.rejects.empty
    return result, normalize(batch.ticks)


def test_replay_of_the_microsecond_file_reports_the_true_market_seconds(redis_url: str, stream: str) -> None:
    result, ticks = _replayed(US_FIXTURE, redis_url, stream)
    true_span = _span_s(read_binance([NS_FIXTURE])["ts_local"])
    assert result.market_seconds == pytest.approx(true_span, abs=1e-6)
    assert result.entries == len(ticks) == len(read_binance([NS_FIXTURE]))
    assert _span_s(ticks["ts_local"]) == pytest.approx(true_span, abs=1e-6)  # the stream carries ns


def _feed_p95_ms(ticks: pd.DataFrame) -> np.ndarray:
    """Per 5 s window, the feed-latency p95 the Shadow Mode KPIs report (as the shadow asset computes them)."""
    strategy = params()
    kpis = iteration_kpis(ticks, simulate(ticks, strategy), strategy, gates(min_windows=1), 5.0)
    return kpis["feed_p95_ms"].dropna().to_numpy()


def test_feed_latency_p95_of_the_microsecond_file_is_milliseconds(redis_url: str, stream: str) -> None:
    _, us_ticks = _replayed(US_FIXTURE, redis_url, stream)
    _, ns_ticks = _replayed(NS_FIXTURE, redis_url, f"{stream}:ns")
    us_p95, ns_p95 = _feed_p95_ms(us_ticks), _feed_p95_ms(ns_ticks)
    assert len(us_p95) >= 6
    assert (us_p95 < 100).all()  # read as ns: up to 44,000 ms, market time squeezed 1000-fold
    np.testing.assert_allclose(us_p95, ns_p95, atol=0.002)  # stamps truncated to the us move it < 1 us


def test_mark_price_and_depth_lines_give_no_ticks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    streams = _streams(US_FIXTURE)
    marks, depth = streams.count("btcusdt@markPrice@1s"), streams.count("btcusdt@depth@0ms")
    assert marks >= 40 and depth > 0
    with caplog.at_level(logging.INFO, logger="shadow_pipeline.feed.readers"):
        ticks = read_binance([US_FIXTURE])
    assert len(ticks) == len(streams) - marks - depth
    assert f"'markPrice@1s': {marks}" in caplog.text and f"'depth@0ms': {depth}" in caplog.text
    others = [line for line in _lines(US_FIXTURE) if "@bookTicker" not in line and "@trade" not in line]
    with pytest.raises(RecordingError, match="no bookTicker/trade"):
        read_binance([_write(tmp_path / "no_ticks.gz", others)])


def _with_stamp(line: str, stamp: str) -> str:
    return f"{stamp} {line.split(' ', 1)[1]}"


@pytest.mark.parametrize(
    ("number", "stamp_of", "reason"),
    [
        pytest.param(5, lambda ns: ns[:-3], r"1723\d{12} is in us but the file starts in ns", id="us-in-ns"),
        pytest.param(300, lambda ns: ns[:-3], r"is in us but the file starts in ns", id="us-in-ns-late"),
        pytest.param(1, lambda ns: ns[:-4], r"fits no unit", id="15-digit-first"),
        pytest.param(7, lambda ns: ns[:-4], r"fits no unit", id="15-digit"),
        pytest.param(9, lambda ns: "9" * 19, r"fits no unit", id="beyond-int64-ns"),
        pytest.param(2, lambda ns: ns[:4] + "x" + ns[5:], r"expected '<local timestamp> <frame>'", id="non-digit"),
        pytest.param(4, lambda ns: "", r"expected '<local timestamp> <frame>', got stamp ''", id="no-stamp"),
    ],
)
def test_bad_or_mixed_stamps_name_the_file_and_line(
    tmp_path: Path, number: int, stamp_of: Callable[[str], str], reason: str
) -> None:
    lines = _lines(NS_FIXTURE)
    lines[number - 1] = _with_stamp(lines[number - 1], stamp_of(lines[number - 1].split(" ", 1)[0]))
    path = _write(tmp_path / "bad.gz", lines)
    with pytest.raises(RecordingError, match=rf"^{re.escape(str(path))}: line {number}: .*{reason}"):
        open_source("binance", files=[path])


def test_a_microsecond_file_with_a_nanosecond_line_is_mixed(tmp_path: Path) -> None:
    lines = _lines(US_FIXTURE)
    lines[10] = _with_stamp(lines[10], lines[10].split(" ", 1)[0] + "000")
    path = _write(tmp_path / "mixed.gz", lines)
    with pytest.raises(
        RecordingError, match=rf"^{re.escape(str(path))}: line 11: .* is in ns but the file starts in us"
    ):
        read_binance([path])


def test_fixtures_follow_the_recipe() -> None:
    recorded = recording_fixtures.ns_lines(market_file(recording_fixtures.SOURCE))
    assert gzip.decompress(NS_FIXTURE.read_bytes()) == b"".join(recorded)
    assert gzip.decompress(US_FIXTURE.read_bytes()) == b"".join(recording_fixtures.us_lines(recorded))
