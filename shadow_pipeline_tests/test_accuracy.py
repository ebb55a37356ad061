"""The accuracy table on hand-built window KPIs whose errors are worked out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.catalogue import ACCURACY, names
from shadow_pipeline.domain.validation.accuracy import (
    FAIL,
    MIN_EVENTS,
    NO_DATA,
    NOT_JUDGED,
    PASS,
    SAME_MODEL,
    WARN,
    compare,
)


def windows(n: int, **columns: list[float]) -> pd.DataFrame:
    """``n`` windows 5 s apart; KPIs not given are 1.0 (shares, latency, risk) and 10 fills (counts)."""
    frame = pd.DataFrame({"window_end": np.arange(1, n + 1, dtype=np.int64) * 5_000_000_000})
    for kpi in names(ACCURACY):
        frame[kpi] = columns.get(kpi, [10.0 if kpi.endswith(("_count", "_fills")) else 1.0] * n)
    return frame


def row(table: pd.DataFrame, kpi: str) -> dict[str, Any]:
    return {str(k): v for k, v in table.set_index("kpi").loc[kpi].items()}


def test_counts_gate_on_the_weighted_error_with_its_limits() -> None:
    actual = windows(4, total_fills=[10, 10, 10, 10], maker_count=[10, 10, 10, 10])
    # total_fills: |12-10| * 4 / 40 = 20 % (WARN); maker_count: |11-10| * 4 / 40 = 10 % (PASS)
    predicted = windows(4, total_fills=[12, 12, 12, 12], maker_count=[11, 11, 11, 11])
    table = compare(predicted, actual).table
    assert row(table, "total_fills")["wpe"] == pytest.approx(0.2) and row(table, "total_fills")["status"] == WARN
    assert row(table, "maker_count")["wpe"] == pytest.approx(0.1) and row(table, "maker_count")["status"] == PASS
    far = compare(windows(4, total_fills=[14, 14, 14, 14]), actual).table  # 40 %
    assert row(far, "total_fills")["status"] == FAIL


def test_net_bps_gates_on_the_absolute_error_in_bps() -> None:
    actual = windows(2, net_bps=[0.05, -0.05])  # near zero: a MAPE would be thousands of percent
    table = compare(windows(2, net_bps=[1.55, 1.45]), actual).table
    assert row(table, "net_bps")["mae"] == pytest.approx(1.5) and row(table, "net_bps")["status"] == WARN
    assert row(table, "net_bps")["mape"] > 10


def test_a_count_with_too_few_actual_events_is_not_judged() -> None:
    # one hedge in reality, three predicted: a WPE of 200 %, and Poisson noise alone could do that
    actual = windows(3, taker_count=[1, 0, 0])
    predicted = windows(3, taker_count=[1, 1, 1])
    taker = row(compare(predicted, actual).table, "taker_count")
    assert taker["wpe"] == pytest.approx(2.0)
    assert taker["status"] == NO_DATA
    assert taker["note"] == f"1 actual vs 3 predicted: too few to judge (< {MIN_EVENTS})"
    accuracy = compare(predicted, actual)
    assert accuracy.worst == PASS and accuracy.no_data == ["taker_count"]  # counted apart, never a WARN
    enough = row(compare(windows(3, taker_count=[12, 12, 12]), windows(3, taker_count=[4, 4, 4])).table, "taker_count")
    assert enough["status"] == FAIL and enough["note"] == ""  # 12 actual events are enough to call 3x a FAIL
    # few in reality but many predicted is judged: a model that invents 15 hedges where there was none fails
    invented = row(compare(windows(3, taker_count=[5, 5, 5]), windows(3, taker_count=[0, 0, 0])).table, "taker_count")
    assert invented["status"] == FAIL


@pytest.mark.parametrize(
    ("predicted_fills", "status"),
    [(10.5, PASS), (12.0, WARN), (14.0, FAIL)],  # total_fills off by 5 %, 20 %, 40 % against 10 actual
)
def test_the_status_is_the_worst_judged_kpis_beside_a_kpi_without_data(predicted_fills: float, status: str) -> None:
    """A taker count of 1 is NO DATA in every case; it neither warns a passing partition nor hides a WARN/FAIL."""
    actual = windows(3, taker_count=[1, 0, 0])
    predicted = windows(3, taker_count=[1, 0, 0], total_fills=[predicted_fills] * 3)
    accuracy = compare(predicted, actual)
    assert accuracy.worst == status
    assert accuracy.no_data == ["taker_count"]
    assert accuracy.with_status(status)[-1] == "total_fills"


def test_nothing_judged_is_no_data() -> None:
    """No fills on either side: the shares and bps KPIs have no window to compare, the counts are 0, the risk
    ratio is 0 (no MAPE over zero actuals) and an engine reality does not measure latency."""
    quiet = {kpi: [0.0] * 3 for kpi in ("maker_count", "taker_count", "total_fills", "risk_ratio")}
    accuracy = compare(windows(3, **quiet), windows(3, **quiet), engine_reality=True)
    assert accuracy.worst == NO_DATA
    assert set(accuracy.no_data) | set(accuracy.not_judged) == set(names(ACCURACY))


def test_latency_is_not_judged_against_an_engine_that_runs_the_shadows_latency_model() -> None:
    """The same 2x latency error: NOT JUDGED with the reason under an engine reality, a FAIL against fills."""
    actual, predicted = windows(3, p95_latency_ms=[100.0] * 3), windows(3, p95_latency_ms=[200.0] * 3)
    engine = compare(predicted, actual, engine_reality=True)
    latency = row(engine.table, "p95_latency_ms")
    assert latency["status"] == NOT_JUDGED and latency["note"] == SAME_MODEL
    assert engine.not_judged == ["p95_latency_ms"] and engine.worst == PASS
    fills = compare(predicted, actual)
    assert row(fills.table, "p95_latency_ms")["status"] == FAIL and fills.worst == FAIL and fills.not_judged == []
