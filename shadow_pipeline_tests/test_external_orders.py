"""The ``external`` strategy: a bot's order stream shadowed order by order.

The reference: the built-in strategy's own sends, written out as the intents a bot would publish and shadowed as
``external``, must give its fills, positions and KPIs bit for bit; anything the order path changes shows here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.simulation.models import QueueAware, fee_model_of, fill_model_of, latency_model_of
from shadow_pipeline.domain.simulation.order_engine import simulate_orders
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.external.from_sends import intents_from_sends
from shadow_pipeline.domain.strategies.external.intents import Grid, check_intents
from shadow_pipeline.domain.strategies.external.plan import BUY, NEVER, OrderPlan
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.fills_golden import FILL_CASES, PROFILES
from shadow_pipeline_tests.kpis_golden import Case, case_ticks
from shadow_pipeline_tests.sim_helpers import BASE, T0, make_ticks, tick

CASES = [(case, profile, model) for case in FILL_CASES for profile in PROFILES for model in ("queue", "dwell")]


@pytest.fixture(scope="module")
def ticks_of() -> dict[str, pd.DataFrame]:
    return {}


@pytest.mark.parametrize(("case", "profile", "model"), CASES, ids=[f"{c.name}-{p}-{m}" for c, p, m in CASES])
def test_the_built_in_strategy_written_out_as_intents_shadows_bit_identically(
    case: Case, profile: str, model: str, ticks_of: dict[str, pd.DataFrame]
) -> None:
    if case.recording is not None:
        market_file(case.recording)
    if case.name not in ticks_of:
        ticks_of[case.name] = case_ticks(case)
    ticks = ticks_of[case.name]
    params, thresholds = resolve(load_profiles(), profile, case.symbol)
    params = replace(params, fill_model=model)
    own = simulate(ticks, params)
    assert own.sends is not None and len(own.sends) > 0
    intents = intents_from_sends(own.sends, params.tick_size, params.lot_step)
    checked = check_intents(
        [(str(n), fields) for n, fields in enumerate(intents)], Grid(params.symbol, params.tick_size, params.lot_step)
    )
    assert checked.rejected == []
    assert checked.accepted == len(intents)
    shadow = simulate_orders(
        ticks, checked.plan, params, fill_model_of(params), latency_model_of(params), fee_model_of(params)
    )
    fills = shadow.simulation.fills
    assert fills["order_id"].notna().all()
    pd.testing.assert_frame_equal(fills.drop(columns="order_id"), own.fills, check_exact=True)
    pd.testing.assert_frame_equal(shadow.simulation.inventory, own.inventory, check_exact=True)
    ours = iteration_kpis(ticks, shadow.simulation, params, thresholds, case.window_s)
    theirs = iteration_kpis(ticks, own, params, thresholds, case.window_s)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    orders = shadow.orders
    assert len(orders) == len(checked.plan)
    filled = fills.groupby("order_id")["qty"].sum()
    np.testing.assert_allclose(orders.set_index("order_id").loc[filled.index, "filled_qty"], filled)


def test_a_limit_order_that_takes_liquidity_fills_at_the_touch_with_certainty() -> None:
    """Not post-only and crossing when it lands: a taker fill at the opposite touch, p_fill 1 (no queue)."""
    ticks = make_ticks([tick(0, 100.0, 100.2), tick(50, 100.0, 100.2), tick(100, 100.0, 100.2)])
    plan = OrderPlan.of(
        pd.DataFrame(
            {
                "order_id": ["take", "rest"],
                "side": [BUY, BUY],
                "px": [1003, 999],
                "qty": [10, 10],
                "post_only": [False, True],
                "market": [False, False],
                "decision_ts": [T0, T0],
                "cancel_ts": [NEVER, NEVER],
            }
        )
    )
    shadow = simulate_orders(ticks, plan, BASE, QueueAware(), latency_model_of(BASE), fee_model_of(BASE))
    orders = shadow.orders.set_index("order_id")
    assert orders.loc["take", "status"] == "filled" and orders.loc["take", "p_fill"] == 1.0
    assert orders.loc["take", "fill_vwap"] == pytest.approx(100.2)
    assert orders.loc["rest", "status"] == "unfilled" and orders.loc["rest", "p_fill"] == 0.0
