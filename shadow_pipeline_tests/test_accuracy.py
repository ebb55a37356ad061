"""The accuracy table on hand-built window KPIs whose errors are worked out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.catalogue import ACCURACY, names
from shadow_pipeline.domain.validation.accuracy import FAIL, MIN_EVENTS, NO_DATA, PASS, WARN, compare


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
    assert compare(predicted, actual).worst == WARN  # the rest pass; a KPI that could not be judged is no pass
    enough = row(compare(windows(3, taker_count=[12, 12, 12]), windows(3, taker_count=[4, 4, 4])).table, "taker_count")
    assert enough["status"] == FAIL and enough["note"] == ""  # 12 actual events are enough to call 3x a FAIL
    # few in reality but many predicted is judged: a model that invents 15 hedges where there was none fails
    invented = row(compare(windows(3, taker_count=[5, 5, 5]), windows(3, taker_count=[0, 0, 0])).table, "taker_count")
    assert invented["status"] == FAIL
