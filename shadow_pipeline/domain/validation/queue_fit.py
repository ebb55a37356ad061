"""Fit the queue model's unknowns to a real bot's fills: the share of displayed decreases ahead of our order and
the order-entry latency.

A bot that quoted the same strategy on the same hour tells us what the data cannot: how often it was filled.
Each candidate (share, latency) reruns the shadow's quotes under the queue model and is scored by how far its
per-window fill counts are from the bot's (WPE of ``total_fills``, the dry-run's own gate metric), then by the
net_bps error; the grid is small and explicit so the fit is deterministic and its whole surface is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import TOTAL_FILLS
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.simulation.shadow import shadow
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import FILL_QUEUE, StrategyParams, Thresholds
from shadow_pipeline.domain.validation.accuracy import compare

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
LATENCY_FACTORS = (0.5, 1.0, 2.0, 4.0)  # of the profile's order_entry_latency_ms


@dataclass(frozen=True)
class QueueFit:
    """``table``: one row per candidate, best first; ``best``: the winning parameters."""

    table: pd.DataFrame
    best: StrategyParams

    @property
    def summary(self) -> str:
        top = self.table.iloc[0]
        return (
            f"size_decrease_share {top['size_decrease_share']:g}, order_entry_latency_ms "
            f"{top['order_entry_latency_ms']:g} (fills WPE {top['fills_wpe']:.3g}, net_bps error "
            f"{top['net_bps_mae']:.3g} bp over {int(top['windows'])} windows)"
        )


def fit_queue(
    ticks: pd.DataFrame,
    params: StrategyParams,
    thresholds: Thresholds,
    window_seconds: float,
    actual: pd.DataFrame,
    shares: Sequence[float] = SHARES,
    latency_factors: Sequence[float] = LATENCY_FACTORS,
    plan: OrderPlan | None = None,
) -> QueueFit:
    """``actual``: the bot's per-window KPIs (``iteration_kpis`` of its fills); ``plan``: its orders, for a
    profile with strategy external."""
    rows = []
    for factor in latency_factors:
        for share in shares:
            candidate = replace(
                params,
                fill_model=FILL_QUEUE,
                size_decrease_share=float(share),
                order_entry_latency_ms=params.order_entry_latency_ms * factor,
            )
            windows = iteration_kpis(ticks, shadow(ticks, candidate, plan), candidate, thresholds, window_seconds)
            errors = {str(row["kpi"]): row for row in compare(windows, actual).table.to_dict(orient="records")}
            rows.append(
                {
                    "size_decrease_share": float(share),
                    "order_entry_latency_ms": candidate.order_entry_latency_ms,
                    "fills_wpe": float(errors[TOTAL_FILLS.name]["wpe"]),
                    "net_bps_mae": float(errors["net_bps"]["mae"]),
                    "windows": int(errors[TOTAL_FILLS.name]["windows"]),
                    "predicted_fills": int(windows[TOTAL_FILLS.name].sum()),
                    "actual_fills": int(actual[TOTAL_FILLS.name].sum()),
                }
            )
    ranked = pd.DataFrame(rows).sort_values(
        ["fills_wpe", "net_bps_mae", "size_decrease_share", "order_entry_latency_ms"], kind="stable", na_position="last"
    )
    ranked = ranked.reset_index(drop=True)
    top = ranked.iloc[0]
    best = replace(
        params,
        fill_model=FILL_QUEUE,
        size_decrease_share=float(top["size_decrease_share"]),
        order_entry_latency_ms=float(top["order_entry_latency_ms"]),
    )
    return QueueFit(ranked, best)
