"""Window KPIs, the aggregate and the verdict, worked out by hand (arithmetic in the comments)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from shadow_pipeline.domain.kpis.gates import judge
from shadow_pipeline.domain.kpis.per_window import (
    BROKER_REPLAYED,
    BROKER_UNTIMED,
    FEED_UNSTAMPED,
    aggregate,
    iteration_kpis,
)
from shadow_pipeline.domain.simulation.simulator import Simulation, simulate
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline_tests.sim_helpers import MS, T0, gates, make_ticks, params, strategies, tick, tick_sequences

GATES = gates(min_windows=48)
C = 0.05 / 100.05 * 1e4  # spread capture of a fill 0.05 from a 100.05 mid: 4.99750... bps


def _hand_case() -> tuple[pd.DataFrame, Simulation]:
    """Ticks at 0, 1, 2 s (window 0) and 6 s (window 1); three fills, the last without a markout mid."""
    ticks = make_ticks(
        [tick(0, 100.0, 100.1), tick(1000, 100.0, 100.1), tick(2000, 100.0, 100.1), tick(6000, 100.1, 100.2)]
    )
    fills = pd.DataFrame(
        {
            "ts": [T0 + 1000 * MS, T0 + 2000 * MS, T0 + 6000 * MS],
            "side": np.array([1, -1, 1], dtype=np.int8),
            "price": [100.0, 100.0, 100.1],
            "qty": [1.0, 2.0, 1.0],
            "is_maker": [True, False, True],
            "fee_rate": [-0.0001, 0.0005, -0.0001],
            "fee": [-0.01, 0.1, 100.1 * -0.0001],
            "mid_before": [100.05, 100.05, 100.05],
            "mid_markout": [100.20, 100.10, np.nan],
        }
    )
    inventory = pd.DataFrame(
        {
            "ts": ticks["ts_server"],
            "position": [0.0, 1.0, -1.0, 0.0],
            "mid": [100.05, 100.05, 100.05, 100.15],
        }
    )
    return ticks, Simulation(fills, inventory)


def test_flow_markout_pnl_and_risk_by_hand() -> None:
    ticks, sim = _hand_case()
    kpis = iteration_kpis(ticks, sim, params(), GATES, 5.0)
    assert kpis["iteration"].tolist() == [0, 1]
    assert kpis["window_start"].tolist() == [T0, T0 + 5_000 * MS]
    assert kpis["window_end"].tolist() == [T0 + 5_000 * MS, T0 + 10_000 * MS]
    w0, w1 = kpis.iloc[0], kpis.iloc[1]
    assert (w0.ticks, w0.trades, w0.maker_count, w0.taker_count, w0.total_fills) == (3, 0, 1, 1, 2)
    # notional: maker 100 * 1 = 100, taker 100 * 2 = 200
    assert (w0.maker_notional, w0.taker_notional, w0.traded_notional) == (100.0, 200.0, 300.0)
    assert w0.maker_taker_ratio == pytest.approx(100 / 300)  # by notional ...
    assert w0.maker_count_share == 0.5  # ... and by count
    # markouts: buy  +1 * (100.20 - 100) / 100 * 1e4 = +20 bps, fee -1 bp  -> 21 bps on 100
    #           sell -1 * (100.10 - 100) / 100 * 1e4 = -10 bps, fee +5 bp  -> -15 bps on 200
    # net = (100 * 21 + 200 * -15) / 300 = -900 / 300 = -3.0 bps
    assert w0.net_bps == pytest.approx(-3.0)
    # capture: buy +C, sell -C (C = 0.05 / 100.05 * 1e4) -> (100 C - 200 C) / 300 = -C / 3
    assert w0.spread_capture_bps == pytest.approx(-C / 3)
    # adverse = capture - markout, markout mean = (100 * 20 + 200 * -10) / 300 = 0 -> -C / 3
    assert w0.adverse_selection_bps == pytest.approx(-C / 3)
    assert w0.fees_bps == pytest.approx((100 * -1 + 200 * 5) / 300)  # 3.0
    assert w0.net_bps == pytest.approx(w0.spread_capture_bps - w0.adverse_selection_bps - w0.fees_bps)
    # window 1: the only fill has no markout mid yet: excluded from net_bps and counted
    assert math.isnan(w1.net_bps) and w1.markout_missing == 1 and w1.maker_taker_ratio == 1.0
    # PnL, window 0: cash = -100 (buy) + 0.01 (rebate) + 200 (sell) - 0.1 (fee) = 99.91;
    # position -1 marked at 100.05 -> -100.05; pnl = -100.05 - 0 + 99.91 = -0.14
    assert w0.pnl == pytest.approx(-0.14)
    # window 1: cash = -100.1 + 0.01001; value 0 - (-100.05); pnl = 100.05 - 100.1 + 0.01001 = -0.03999
    assert w1.pnl == pytest.approx(-0.03999)
    # risk, max position = 2 lots * 1.0 = 2: |pos| / 2 is 0 on [0, 1 s), 0.5 on [1, 2 s), 0.5 on [2, 5 s)
    # -> (0 * 1 + 0.5 * 1 + 0.5 * 3) / 5 = 0.4; window 1: 0.5 carried over [5, 6 s), then the data ends
    assert w0.risk_ratio == pytest.approx(0.4) and w0.covered_s == pytest.approx(5.0)
    assert w1.risk_ratio == pytest.approx(0.5) and w1.covered_s == pytest.approx(1.0)
    assert (w0.risk_max, w1.risk_max) == (0.5, 0.5)
    # valid: >= 2 ticks and >= 1 fill; window 1 has one tick
    assert kpis["valid"].tolist() == [True, False]


def test_no_fills_leave_the_maker_share_undefined() -> None:
    ticks = make_ticks([tick(ms, 100.0, 100.2) for ms in range(0, 1000, 100)])
    p = params()
    kpis = iteration_kpis(ticks, simulate(ticks, p), p, GATES, 5.0)
    row = kpis.iloc[0]
    assert row.total_fills == 0
    assert math.isnan(row.maker_taker_ratio) and math.isnan(row.maker_count_share) and math.isnan(row.net_bps)
    assert not row.valid
    assert row.pnl == 0.0 and row.risk_ratio == 0.0


def test_latency_p95_with_a_known_clock_offset() -> None:
    # feed latency 0..10 ms on top of the -1270 ms clock offset; entry ids 3 ms after receive (broker constant).
    ticks = make_ticks([tick(ms, 100.0, 100.2) for ms in range(0, 1100, 100)], feed_ms=list(range(11)))
    p = params(decision_latency_ms=1.0)
    kpis = iteration_kpis(ticks, simulate(ticks, p), p, GATES, 5.0)
    # offset = 0.5th percentile of (local - server) = -1270 + 0.005 * 10 = -1269.95 ms
    assert kpis.attrs["feed_offset_ms"] == pytest.approx(-1269.95)
    assert kpis.attrs["notes"] == []
    row = kpis.iloc[0]
    # feed = d - 0.05 for d = 0..10; broker = 3 - 3 = 0; decision 1 -> total 0.95, 1.95, ..., 10.95
    assert row.feed_p95_ms == pytest.approx(8.95 + 0.5 * 1.0)  # feed -0.05..9.95: p95 at position 9.5 of 0..10
    assert row.broker_p95_ms == 0.0 and row.decision_p95_ms == 1.0 and row.broker_measured
    assert row.p95_raw_ms == pytest.approx(10.45)  # 9.95 + 0.5 * (10.95 - 9.95)
    assert row.p99_ms == pytest.approx(10.85)  # 9.95 + 0.9 * 1.0
    # winsorized: clip at p1 = 1.05 and p99 = 10.85, so 10.95 -> 10.85; p95 = 9.95 + 0.5 * 0.9 = 10.40
    assert row.p95_latency_ms == pytest.approx(10.40)


def test_broker_leg_of_a_replayed_stream_is_not_measured() -> None:
    rows = [tick(ms, 100.0, 100.2) for ms in range(0, 3000, 100)]
    two_years = 2 * 365 * 86_400_000
    p = params()
    late = make_ticks(rows, entry_delay_ms=two_years)  # ids written long after the recording
    kpis = iteration_kpis(late, simulate(late, p), p, GATES, 5.0)
    assert kpis.attrs["notes"] == [BROKER_REPLAYED]
    assert not kpis["broker_measured"].any() and (kpis["broker_p95_ms"] == 0).all()
    fast = make_ticks(rows)  # written at 10x replay speed: the broker clock runs 10x slower than receive time
    fast["ts_broker"] = fast["ts_broker"].iloc[0] + np.arange(len(fast)) * 10 * MS
    assert iteration_kpis(fast, simulate(fast, p), p, GATES, 5.0).attrs["notes"] == [BROKER_REPLAYED]


def test_ticks_landed_without_broker_times_leave_the_broker_leg_unmeasured() -> None:
    ticks = make_ticks([tick(ms, 100.0, 100.2) for ms in range(0, 1100, 100)], feed_ms=list(range(11)))
    p = params(decision_latency_ms=1.0)
    measured = iteration_kpis(ticks, simulate(ticks, p), p, GATES, 5.0)
    old_files = ticks.drop(columns="ts_broker")  # landed before ingest recorded ts_broker
    partly = ticks.astype({"ts_broker": "float64"})  # a partition landed partly before: missing on older rows
    partly.loc[:4, "ts_broker"] = np.nan
    for frame in (old_files, partly):
        kpis = iteration_kpis(frame, simulate(frame, p), p, GATES, 5.0)
        assert kpis.attrs["notes"] == [BROKER_UNTIMED]
        assert not kpis["broker_measured"].any() and (kpis["broker_p95_ms"] == 0).all()
        # the broker leg of these ticks is 0 either way (a constant 3 ms above its own offset): nothing else moves
        pd.testing.assert_frame_equal(kpis.drop(columns="broker_measured"), measured.drop(columns="broker_measured"))


def test_aggregate_weights_flows_and_time_and_the_verdict_says_by_how_much() -> None:
    ticks, sim = _hand_case()
    loose = replace(GATES, min_ticks_per_window=1)
    report = aggregate(iteration_kpis(ticks, sim, params(), loose, 5.0))
    row = report.iloc[0]
    assert (row.profile, row.symbol, row.windows, row.valid_windows, row.total_fills) == ("test", "BTCUSDT", 2, 2, 3)
    assert row.maker_taker_ratio == pytest.approx((100 + 100.1) / (300 + 100.1))  # 0.5001
    assert row.maker_count_share == pytest.approx(2 / 3)
    assert row.net_bps == pytest.approx(-3.0)  # window 1 has no marked-out notional
    assert row.risk_ratio == pytest.approx((0.4 * 5 + 0.5 * 1) / 6)  # time-weighted: 0.41667
    assert row.risk_max == 0.5
    assert row.pnl == pytest.approx(-0.14 - 0.03999)
    judged = judge({str(k): v for k, v in row.items()}, loose)
    assert not judged.go
    assert judged.reasons == [
        "valid_windows 2 < 48 (short by 46)",
        "maker_taker_ratio 0.5001 < 0.83 (short by 0.3299)",
        "net_bps -3 bps < 2.5 bps (short by 5.5 bps)",
        "risk_ratio 0.4167 > 0.4 (over by 0.01667)",
    ]
    passing = {
        **{str(k): v for k, v in row.items()},
        "valid_windows": 48,
        "maker_taker_ratio": 0.9,
        "net_bps": 3.0,
        "risk_ratio": 0.1,
    }
    assert judge(passing, loose).go and judge(passing, loose).reasons == []


def test_a_latency_gate_on_a_source_without_receive_stamps_says_latency_was_not_measured() -> None:
    ticks, sim = _hand_case()
    ticks["ts_local"] = ticks["ts_server"]  # how a source without a receive stamp says so
    loose = replace(GATES, min_ticks_per_window=1)
    kpis = iteration_kpis(ticks, sim, params(), loose, 5.0)
    assert kpis.attrs["notes"] == [FEED_UNSTAMPED]
    row = {str(k): v for k, v in aggregate(kpis).iloc[0].items()}
    latency = "p95_latency_ms unknown: latency not measured (source has no receive stamp); needs p95_latency_ms <="
    [said] = [r for r in judge(row, loose, "; ".join(kpis.attrs["notes"])).reasons if r.startswith("p95_latency")]
    assert said.startswith(latency)
    # without the notes (a report row judged on its own) the general reason stands
    [general] = [r for r in judge(row, loose).reasons if r.startswith("p95_latency")]
    assert general.startswith("p95_latency_ms unknown: no fills or no valid window; needs")
    no_fills = {**row, "maker_taker_ratio": None}  # a non-latency KPI keeps its reason under the same notes
    reasons = judge(no_fills, loose, FEED_UNSTAMPED).reasons
    assert any(r.startswith("maker_taker_ratio unknown: no fills or no valid window;") for r in reasons)


@settings(max_examples=50, deadline=None)
@given(tick_sequences(), strategies)
def test_shares_are_fractions_on_random_ticks(ticks: pd.DataFrame, p: StrategyParams) -> None:
    kpis = iteration_kpis(ticks, simulate(ticks, p), p, GATES, 1.0)
    for name in ("maker_taker_ratio", "maker_count_share"):
        assert kpis[name].dropna().between(0, 1).all(), name
    # inventory may exceed the limit by one order: use <= 1 + 1 / max_inventory
    assert kpis["risk_ratio"].dropna().between(0, 1 + 1 / p.max_inventory + 1e-9).all()
    assert kpis["ticks"].sum() == len(ticks)
    assert ((kpis["total_fills"] == 0) == kpis["maker_taker_ratio"].isna()).all()
