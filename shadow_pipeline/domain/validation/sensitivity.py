"""How much a verdict depends on the fill model's unknown knob: the same run at the knob's documented bounds.

Top-of-book data cannot say where cancellations happen in the queue (``size_decrease_share`` of the ``queue``
model: 0 puts none ahead of our order, hftbacktest's risk-averse assumption; 1 puts all of them ahead, the most
favourable queue), nor how long a quote must stand to be filled under ``dwell``. So the shadow reports its KPIs
and Go/No-Go at both ends of the knob's range beside the chosen value: when the verdict is the same at both
ends, it does not hinge on the assumption; when it flips, the trader knows the Go (or No-Go) is an assumption.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import SUMMARY, names
from shadow_pipeline.domain.kpis.gates import judge
from shadow_pipeline.domain.kpis.per_window import aggregate, iteration_kpis
from shadow_pipeline.domain.simulation.simulator import fill_model_of, simulate
from shadow_pipeline.domain.strategies.profiles import FILL_QUEUE, StrategyParams, Thresholds

SHARE_RANGE = (0.0, 1.0)  # size_decrease_share: nothing ahead of us .. every unexplained decrease ahead
# touch_dwell_ms: a quote fills as soon as it is live .. 10 s, the longest dwell that matched a queue-aware engine
# on the recorded days we compared (docs/shadow-simulation.md, "Why queue is the default").
DWELL_RANGE_MS = (0.0, 10_000.0)
CHOSEN, LOWER, UPPER = "chosen", "lower bound", "upper bound"
COLUMNS = ("assumption", "knob", "value", "fill_model", *names(SUMMARY), "verdict", "reasons")


@dataclass(frozen=True)
class Knob:
    """The fill model's unknown: its parameter name and documented range."""

    name: str
    low: float
    high: float
    value: float

    def at(self, params: StrategyParams, value: float) -> StrategyParams:
        if self.name == "size_decrease_share":
            return replace(params, size_decrease_share=value)
        return replace(params, touch_dwell_ms=value)


def knob_of(params: StrategyParams) -> Knob:
    """The knob and its range; a chosen dwell beyond the documented range widens it (the bound stays a bound)."""
    if params.fill_model == FILL_QUEUE:
        return Knob("size_decrease_share", *SHARE_RANGE, params.size_decrease_share)
    low, high = DWELL_RANGE_MS
    return Knob("touch_dwell_ms", low, max(high, params.touch_dwell_ms), params.touch_dwell_ms)


def fill_sensitivity(
    ticks: pd.DataFrame,
    params: StrategyParams,
    thresholds: Thresholds,
    window_seconds: float,
    chosen: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per assumption (lower bound, chosen, upper bound): the aggregate KPIs and the verdict the gates give.

    ``chosen``: the shadow's own windows, which are the chosen row (computed here when not given); the bounds
    rerun the same quotes under the other knob values."""
    knob = knob_of(params)
    rows = []
    for role, value in ((LOWER, knob.low), (CHOSEN, knob.value), (UPPER, knob.high)):
        varied = knob.at(params, value)
        if role == CHOSEN and chosen is not None:
            windows = chosen
        else:
            windows = iteration_kpis(ticks, simulate(ticks, varied), varied, thresholds, window_seconds)
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
