"""The latency KPIs' expanding clock-offset fit, and the causality it buys: every window that a prefix of the
hour has closed (its end plus the markout horizon reached) has the full hour's row, which is what lets the live
shadow publish a window's KPIs when it closes and still equal the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.per_window import (
    BROKER_UNTIMED,
    FEED_UNSTAMPED,
    TickWindows,
    iteration_kpis,
    latency_legs,
)
from shadow_pipeline.domain.kpis.prefix_quantile import prefix_quantiles
from shadow_pipeline.domain.simulation.shadow import shadow
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.kpis_golden import CASES, Case, case_ticks

_MS = 1_000_000
_S = 1_000_000_000
START = 1_723_161_600 * _S  # 2024-08-09 00:00 UTC
DELAYS_MS = np.maximum(np.arange(100) - 5, 0)
P95_OF_DELAYS = float(np.quantile(DELAYS_MS, 0.95))  # 89.05 ms


@pytest.mark.parametrize("kind", ["small ints (ties)", "large ints", "floats"])
def test_prefix_quantiles_equal_numpy_on_every_prefix(kind: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        n = int(rng.integers(1, 300))
        values: np.ndarray = {
            "small ints (ties)": rng.integers(-3, 3, n),
            "large ints": rng.integers(-(10**12), 10**12, n),
            "floats": rng.normal(size=n),
        }[kind]
        ends = np.append(np.unique(rng.integers(0, n + 1, 12)), n)
        for q in (0.0, 0.005, 0.5, 0.95, 1.0):
            expected = np.array([np.quantile(values[:end], q) if end else np.nan for end in ends])
            assert np.array_equal(prefix_quantiles(values, ends, q), expected, equal_nan=True), (kind, q)


def _ticks(offsets_ns: list[int], per_window: int = 100, window_s: int = 10) -> pd.DataFrame:
    """``per_window`` ticks in each window, window w's receive clock ``offsets_ns[w]`` ahead of exchange time plus
    a feed delay of DELAYS_MS: six ticks of no delay per window, so the 0.5 % quantile of any prefix is the
    lowest offset seen, and a window's feed p95 is that of DELAYS_MS when its offset is the lowest."""
    rows = []
    for w, offset in enumerate(offsets_ns):
        for i in range(per_window):
            ts = START + w * window_s * _S + i * (window_s * _S // per_window)
            rows.append({"ts_server": ts, "ts_local": ts + offset + int(DELAYS_MS[i]) * _MS, "is_trade": False})
    return pd.DataFrame(rows)


def test_a_constant_offset_leaves_the_known_delays() -> None:
    windows = TickWindows.of(_ticks([250 * _MS] * 4), 10)
    latency = windows.latency(decision_ms=2.0)
    assert windows.legs.note == BROKER_UNTIMED
    np.testing.assert_allclose(latency["feed_p95_ms"], P95_OF_DELAYS, rtol=0, atol=1e-9)
    np.testing.assert_allclose(latency["p95_raw_ms"], P95_OF_DELAYS + 2.0, rtol=0, atol=1e-9)
    assert windows.legs.feed_offset_ms == 250.0


def test_a_window_is_fitted_on_the_ticks_through_its_end_only() -> None:
    # the receive clock jumps 40 ms back after the first window: the old whole-frame fit took the later, lower
    # offset for the first window too (its p95 40 ms higher); a window closing before the jump cannot know it
    windows = TickWindows.of(_ticks([250 * _MS, 210 * _MS, 210 * _MS]), 10)
    feed = windows.latency(decision_ms=0.0)["feed_p95_ms"]
    assert feed[0] == pytest.approx(P95_OF_DELAYS, abs=1e-9)
    assert feed[1:] == pytest.approx([P95_OF_DELAYS] * 2, abs=1e-9)  # the prefix's lowest is the jumped clock
    whole = latency_legs(_ticks([250 * _MS, 210 * _MS, 210 * _MS]))
    assert np.quantile(whole.feed_ms[:100], 0.95) == pytest.approx(P95_OF_DELAYS + 40, abs=1e-9)


def test_the_last_window_has_the_whole_frame_fit() -> None:
    rng = np.random.default_rng(3)
    ticks = _ticks([250 * _MS] * 6)
    ticks["ts_local"] += rng.integers(0, 5 * _MS, len(ticks))  # a stationary offset with noise
    ticks["ts_broker"] = ticks["ts_local"] + rng.integers(1 * _MS, 3 * _MS, len(ticks))
    windows = TickWindows.of(ticks, 10)
    whole = latency_legs(ticks)  # one window: the old fit over the frame
    assert windows.legs.note is None and whole.note is None
    last = slice(int(windows.ends[-2]), None)
    assert np.array_equal(windows.legs.feed_ms[last], whole.feed_ms[last])
    assert np.array_equal(windows.legs.broker_ms[last], whole.broker_ms[last])
    assert windows.legs.feed_offset_ms == whole.feed_offset_ms


def test_unstamped_is_decided_on_the_first_window() -> None:
    ticks = _ticks([0, 0])
    ticks["ts_local"] = ticks["ts_server"]
    assert TickWindows.of(ticks, 10).legs.note == FEED_UNSTAMPED


def _prefix_rows_equal_the_hour(ticks: pd.DataFrame, symbol: str, window_s: float) -> int:
    """Every window that each of a few prefixes closes equals the full frame's row, all columns exactly."""
    params, thresholds = resolve(load_profiles(), "moderate", symbol)
    full = iteration_kpis(ticks, shadow(ticks, params), params, thresholds, window_s)
    horizon = round(params.markout_horizon_s * _S)
    compared = 0
    for share in (0.2, 0.45, 0.7, 0.93):
        prefix = ticks.iloc[: int(len(ticks) * share)].reset_index(drop=True)
        rows = iteration_kpis(prefix, shadow(prefix, params), params, thresholds, window_s)
        closed = rows[rows["window_end"] + horizon <= prefix["ts_server"].iloc[-1]]
        assert len(closed) > 0
        pd.testing.assert_frame_equal(closed, full.iloc[: len(closed)], check_exact=True)
        assert rows.attrs["notes"] == full.attrs["notes"]
        compared += len(closed)
    return compared


@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[5]], ids=lambda case: case.name)
def test_closed_windows_of_a_prefix_equal_the_hours_rows(case: Case) -> None:
    if case.recording is not None:
        market_file(case.recording)
    assert _prefix_rows_equal_the_hour(case_ticks(case), case.symbol, case.window_s) > 10
