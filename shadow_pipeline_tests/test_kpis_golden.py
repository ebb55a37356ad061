"""``iteration_kpis`` equals what the implementation before its vectorized rewrite computed (the fixtures and
how they were made: ``kpis_golden.py``): counts and flags exactly, floats to rtol 1e-9, NaN where it was NaN.

The clock-offset fit of the latency KPIs became causal after the fixtures were recorded (each window's offsets
fitted on the ticks through its end, ``per_window.latency_legs``), so their recorded values hold for the last
window only, whose fit spans the whole frame as the old one did; test_latency_causal.py tests the other windows
against hand-computable expectations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.per_window import UNSTAMPED_KPIS
from shadow_pipeline.parquet import read_frame
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.kpis_golden import CASES, Case, case_kpis


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_iteration_kpis_equal_the_golden_results(case: Case) -> None:
    if case.recording is not None:
        market_file(case.recording)
    golden = read_frame(str(case.golden))
    frame = case_kpis(case)
    assert list(frame.columns) == list(golden.columns)
    assert frame.attrs["notes"] == golden.attrs["notes"]
    assert frame.attrs["feed_offset_ms"] == pytest.approx(golden.attrs["feed_offset_ms"], rel=1e-9)
    for name in frame.columns:
        ours, theirs = frame[name], golden[name]
        if name in UNSTAMPED_KPIS:  # fitted on the ticks through each window's end: the last window's is the old
            ours, theirs = ours.iloc[-1:], theirs.iloc[-1:]
        if pd.api.types.is_float_dtype(theirs):
            assert ours.dtype == np.float64, name
            np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=0, err_msg=name)
        elif pd.api.types.is_string_dtype(theirs):
            assert ours.astype(str).tolist() == theirs.astype(str).tolist(), name
        else:
            assert ours.dtype == theirs.dtype, name
            assert np.array_equal(ours.to_numpy(), theirs.to_numpy()), name
