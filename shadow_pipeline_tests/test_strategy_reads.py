"""``Strategy.reads``: a strategy that declares itself a pure function of a few view fields is called only on the
ticks where one of them changed, and fills exactly as when it is called on every tick."""

from __future__ import annotations

from dataclasses import replace

import numba
import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.interface import (
    Q_ASK_PX,
    Q_ASK_QTY,
    Q_BID_PX,
    Q_BID_QTY,
    V_BID,
    V_INDEX,
    VIEW_SIZE,
    Strategy,
    StrategyError,
)
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.domain.strategies.touch_offset import TOUCH_OFFSET
from shadow_pipeline_tests.fills_golden import FILL_CASES
from shadow_pipeline_tests.kpis_golden import case_ticks
from shadow_pipeline_tests.sim_helpers import make_ticks, params, tick

EVERY_TICK = replace(TOUCH_OFFSET, name="touch_offset_every_tick", reads=None)


@pytest.mark.parametrize("model", ["queue", "dwell"])
@pytest.mark.parametrize("profile", ["conservative", "aggressive"])
def test_a_pure_strategy_skipped_on_unchanged_ticks_fills_as_one_called_on_every_tick(model: str, profile: str) -> None:
    case = next(c for c in FILL_CASES if c.recording is None)
    ticks = case_ticks(case)
    base, _ = resolve(load_profiles(), profile, case.symbol)
    base = replace(base, fill_model=model)
    assert TOUCH_OFFSET.pure and not EVERY_TICK.pure
    skipped = simulate(ticks, base)
    every = simulate(ticks, replace(base, strategy=f"{__name__}:EVERY_TICK"))
    assert len(skipped.fills) > 0
    pd.testing.assert_frame_equal(skipped.fills, every.fills, check_exact=True)
    pd.testing.assert_frame_equal(skipped.inventory, every.inventory, check_exact=True)


@numba.njit(cache=True)
def _counting(params: np.ndarray, view: np.ndarray, state: np.ndarray, quotes: np.ndarray) -> None:
    quotes[Q_BID_PX], quotes[Q_BID_QTY] = view[V_BID] - 10, 1
    quotes[Q_ASK_PX], quotes[Q_ASK_QTY] = view[V_BID] + 10, 1
    if view[V_INDEX] == 2:  # called at tick 2 only if the kernel calls a pure strategy on unchanged ticks
        quotes[Q_BID_PX] = np.nan


PURE_ON_THE_BID = Strategy("pure_on_the_bid", _counting, reads=(V_BID,))
EVERY_TICK_ON_THE_BID = replace(PURE_ON_THE_BID, reads=None)


def test_a_pure_strategy_is_not_called_while_what_it_reads_stands_still() -> None:
    rows = [tick(ms, 100.0, 100.1 + 0.1 * (ms // 20)) for ms in (0, 20, 40, 60)]  # the bid stands, the ask moves
    simulate(make_ticks(rows), params(strategy=f"{__name__}:PURE_ON_THE_BID"))
    with pytest.raises(StrategyError, match="at tick 2"):
        simulate(make_ticks(rows), params(strategy=f"{__name__}:EVERY_TICK_ON_THE_BID"))


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (replace(PURE_ON_THE_BID, reads=(VIEW_SIZE,)), "outside the view"),
        (replace(PURE_ON_THE_BID, state_size=1), "leave reads None"),
    ],
)
def test_a_purity_promise_the_interface_cannot_keep_is_refused(strategy: Strategy, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        strategy.compiled()
