"""The shadow of a profile, whichever decides: the profile's strategy in the kernel, or a bot's orders.

One entry point, so that every consumer of "what the shadow says" (the shadow's windows, the sensitivity table,
the reconciliation) treats a profile with strategy ``external`` the same way as one with a built-in strategy.
"""

from __future__ import annotations

import pandas as pd

from shadow_pipeline.domain.simulation.models import fee_model_of, fill_model_of, latency_model_of
from shadow_pipeline.domain.simulation.order_engine import OrderSimulation, simulate_orders
from shadow_pipeline.domain.simulation.simulator import Simulation, simulate
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import EXTERNAL_STRATEGY, StrategyParams


def is_external(params: StrategyParams) -> bool:
    return params.strategy == EXTERNAL_STRATEGY


def shadow_orders(ticks: pd.DataFrame, params: StrategyParams, plan: OrderPlan) -> OrderSimulation:
    """The plan's orders under the profile's fill, latency and fee models."""
    return simulate_orders(ticks, plan, params, fill_model_of(params), latency_model_of(params), fee_model_of(params))


def shadow(ticks: pd.DataFrame, params: StrategyParams, plan: OrderPlan | None = None) -> Simulation:
    """The profile's strategy on ``ticks``; with strategy ``external``, ``plan`` (the bot's orders) instead."""
    if not is_external(params):
        return simulate(ticks, params)
    if plan is None:
        raise ValueError(f"profile {params.profile!r} runs strategy external: the shadow needs the bot's orders")
    return shadow_orders(ticks, params, plan).simulation
