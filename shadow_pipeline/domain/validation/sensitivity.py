"""How much a verdict depends on the fill model's unknown knob: the same run at the knob's documented bounds.

Top-of-book data cannot say where cancellations happen in the queue (``size_decrease_share`` of the ``queue``
model: 0 puts none ahead of our order, hftbacktest's risk-averse assumption; 1 puts all of them ahead, the most
favourable queue), nor how long a quote must stand to be filled under ``dwell``. So the shadow reports its KPIs
and Go/No-Go at both ends of the knob's range beside the chosen value: when the verdict is the same at both
ends, it does not hinge on the assumption; when it flips, the trader knows the Go (or No-Go) is an assumption.
"""

from __future__ import annotations

import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import SUMMARY, names
from shadow_pipeline.domain.kpis.gates import judge
from shadow_pipeline.domain.kpis.per_window import aggregate, iteration_kpis
from shadow_pipeline.domain.simulation.models import fill_model_of
from shadow_pipeline.domain.simulation.shadow import shadow
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import StrategyParams, Thresholds

CHOSEN, LOWER, UPPER = "chosen", "lower bound", "upper bound"
COLUMNS = ("assumption", "knob", "value", "fill_model", *names(SUMMARY), "verdict", "reasons")


def fill_sensitivity(
    ticks: pd.DataFrame,
    params: StrategyParams,
    thresholds: Thresholds,
    window_seconds: float,
    chosen: pd.DataFrame | None = None,
    plan: OrderPlan | None = None,
) -> pd.DataFrame:
    """One row per assumption (lower bound, chosen, upper bound): the aggregate KPIs and the verdict the gates give.

    ``chosen``: the shadow's own windows, which are the chosen row (computed here when not given); the bounds
    rerun the same quotes under the other knob values (``plan``: the bot's orders, for strategy external)."""
    knob = fill_model_of(params).knob()
    rows = []
    for role, value in ((LOWER, knob.low), (CHOSEN, knob.value), (UPPER, knob.high)):
        varied = knob.at(params, value)
        if role == CHOSEN and chosen is not None:
            windows = chosen
        else:
            windows = iteration_kpis(ticks, shadow(ticks, varied, plan), varied, thresholds, window_seconds)
        kpis = {str(k): v for k, v in aggregate(windows).iloc[0].items()} if len(windows) else {}
        verdict = judge(kpis, thresholds)
        rows.append(
            {
                "assumption": role,
                "knob": knob.name,
                "value": float(value),
                "fill_model": fill_model_of(varied).label,
                **{name: kpis.get(name, float("nan")) for name in names(SUMMARY)},
                "verdict": verdict.label,
                "reasons": "; ".join(verdict.reasons),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def verdict_flips(table: pd.DataFrame) -> bool:
    """Whether the knob's range holds more than one verdict."""
    return table["verdict"].nunique() > 1
