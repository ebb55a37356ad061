"""Self-calibration: fit the queue model and the order-entry latency to a real bot's orders, order by order.

The window-level fit (``queue_fit.py``) compares fill counts per window, which averages away what each order
says. A bot that sent the strategy's orders tells, for every one of them, whether it was filled; the shadow
predicts, per order, the probability that it fills (``p_fill``, docs/shadow-simulation.md) under a queue model
and an entry latency. Each grid point is scored by the Bernoulli log-likelihood of the real outcomes under its
predictions, the standard score of probabilistic predictions of binary events: it rewards a model that is sure
and right and punishes one that is sure and wrong, so it can tell a model that merely gets the count right from
one that fills the right orders. The grid is small and explicit, so the fit is deterministic and its whole
surface is reported; the uncertainty is the likelihood-ratio interval over that grid (every point within
chi2(1, 0.95) / 2 = 1.92 of the best log-likelihood, per parameter, maximizing over the other), i.e. the values
a likelihood-ratio test at 5 % would not reject.

Predictions come from a callable, so this module does not care which engine replays the orders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.gates import Verdict, judge
from shadow_pipeline.domain.kpis.per_window import aggregate, iteration_kpis
from shadow_pipeline.domain.simulation.models import QueueAware, fee_model_of, latency_model_of
from shadow_pipeline.domain.simulation.order_engine import simulate_orders
from shadow_pipeline.domain.simulation.shadow import shadow
from shadow_pipeline.domain.simulation.simulator import MarketColumns
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import (
    DEFAULT_PROB_EXPONENT,
    FILL_QUEUE,
    QUEUE_LOG,
    QUEUE_POWER,
    QUEUE_RISK_AVERSE,
    StrategyParams,
    Thresholds,
    profile_document,
)
from shadow_pipeline.domain.validation.reconciliation import calibration

# predict(queue_prob, param, entry_latency_ms) -> one row per order: ``order_id``, ``p_fill``. ``param`` is the
# share ahead (risk_averse), the exponent (power) or NaN (log: no parameter).
Predict = Callable[[str, float, float], pd.DataFrame]

# The documented grid: risk_averse's share from hftbacktest's risk-averse 0 to every cancellation ahead (1);
# the power's n from cancellations spread evenly over the queue (1) to nearly all on the longer side (8), 2 and 3
# as hftbacktest's examples; the log; entry latencies from a co-located 5 ms to a slow 200 ms path.
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
EXPONENTS = (1.0, 2.0, 3.0, 5.0, 8.0)
LATENCIES_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 200.0)
# Predictions are clipped so that one order the model is sure about and gets wrong costs log(1e-3) ~ -6.9, not
# minus infinity: a deterministic model (risk_averse, p in {0, 1}) can still be compared.
CLIP = 1e-3
HALF_CHI2_95 = 1.92  # chi2 with one degree of freedom, 95 % quantile 3.841, halved: the log-likelihood drop


def queue_grid(shares: Sequence[float] = SHARES, exponents: Sequence[float] = EXPONENTS) -> list[tuple[str, float]]:
    """The queue candidates (queue_prob, param): every share, every exponent, and the log."""
    return [
        *((QUEUE_RISK_AVERSE, float(s)) for s in shares),
        *((QUEUE_POWER, float(n)) for n in exponents),
        (QUEUE_LOG, math.nan),
    ]


def queue_label(queue_prob: str, param: float) -> str:
    """A candidate as tables name it: ``risk_averse 0.25``, ``power 3``, ``log``."""
    return queue_prob if queue_prob == QUEUE_LOG else f"{queue_prob} {param:g}"


def log_likelihood(p_fill: np.ndarray, filled: np.ndarray) -> float:
    """Bernoulli log-likelihood of the outcomes ``filled`` under the probabilities ``p_fill`` (clipped)."""
    p = np.clip(np.asarray(p_fill, dtype=np.float64), CLIP, 1.0 - CLIP)
    hit = np.asarray(filled, dtype=bool)
    return float(np.where(hit, np.log(p), np.log1p(-p)).sum())


@dataclass(frozen=True)
class OrderFit:
    """``table``: one row per grid point (``queue_prob``, ``param``, ``queue``, ``entry_latency_ms``,
    ``loglik``, ``orders``, ``expected_fills``: the sum of p_fill, ``actual_fills``), best first. The best point
    and its 95 % likelihood-ratio intervals: ``queue_interval`` the queue candidates and ``latency_interval`` the
    lowest and highest latency whose profile log-likelihood is within 1.92 of the best."""

    table: pd.DataFrame
    queue_prob: str
    param: float
    entry_latency_ms: float
    queue_interval: tuple[str, ...]
    latency_interval: tuple[float, float]

    @property
    def summary(self) -> str:
        top = self.table.iloc[0]
        low, high = self.latency_interval
        return (
            f"{queue_label(self.queue_prob, self.param)}, order_entry_latency_ms {self.entry_latency_ms:g} "
            f"(log-likelihood {top['loglik']:.1f} over {int(top['orders'])} orders, {top['expected_fills']:.1f} "
            f"fills expected, {int(top['actual_fills'])} real); 95 % interval: queue {', '.join(self.queue_interval)}; "
            f"latency {low:g}-{high:g} ms"
        )

    def params(self, base: StrategyParams) -> StrategyParams:
        """``base`` with the fitted queue model and entry latency."""
        fitted = replace(
            base, fill_model=FILL_QUEUE, queue_prob=self.queue_prob, order_entry_latency_ms=self.entry_latency_ms
        )
        if self.queue_prob == QUEUE_RISK_AVERSE:
            return replace(fitted, size_decrease_share=self.param)
        if self.queue_prob == QUEUE_POWER:
            return replace(fitted, prob_exponent=self.param)
        return fitted


def fit_orders(
    predict: Predict,
    outcomes: pd.DataFrame,
    queues: Sequence[tuple[str, float]] | None = None,
    latencies_ms: Sequence[float] = LATENCIES_MS,
) -> OrderFit:
    """Score every (queue candidate, latency) of the grid by the log-likelihood of ``outcomes`` (``order_id``,
    ``filled``: whether the real order was at least partly filled) under ``predict``'s ``p_fill``.

    A real order the prediction lacks (the shadow never rested it: rejected post-only, say) counts with p_fill 0.
    """
    if outcomes.empty:
        raise ValueError("no real orders to fit")
    real = outcomes[["order_id", "filled"]].astype({"filled": bool})
    rows = []
    for queue_prob, param in queues if queues is not None else queue_grid():
        for latency in latencies_ms:
            predicted = predict(queue_prob, param, float(latency))[["order_id", "p_fill"]]
            both = real.merge(predicted, on="order_id", how="left", validate="one_to_one")
            p = both["p_fill"].fillna(0.0).to_numpy(dtype=np.float64)
            rows.append(
                {
                    "queue_prob": queue_prob,
                    "param": param,
                    "queue": queue_label(queue_prob, param),
                    "entry_latency_ms": float(latency),
                    "loglik": log_likelihood(p, both["filled"].to_numpy()),
                    "orders": len(both),
                    "expected_fills": float(p.sum()),
                    "actual_fills": int(both["filled"].sum()),
                }
            )
    table = pd.DataFrame(rows).sort_values("loglik", ascending=False, kind="stable").reset_index(drop=True)
    top = table.iloc[0]
    floor = float(top["loglik"]) - HALF_CHI2_95
    by_queue = table.groupby("queue", sort=False)["loglik"].max()
    by_latency = table.groupby("entry_latency_ms")["loglik"].max()
    kept = by_latency[by_latency >= floor].index
    return OrderFit(
        table=table,
        queue_prob=str(top["queue_prob"]),
        param=float(top["param"]),
        entry_latency_ms=float(top["entry_latency_ms"]),
        queue_interval=tuple(str(q) for q in by_queue[by_queue >= floor].index),
        latency_interval=(float(kept.min()), float(kept.max())),
    )


def write_fitted_profile(
    path: str | Path, fit: OrderFit, params: StrategyParams, thresholds: Thresholds, description: str
) -> Path:
    """A profiles file holding ``params`` with the fitted queue model and latency (``profile_document``), which
    ``shadow --profiles-file`` and the launchpad accept as it is."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = profile_document(fit.params(params), thresholds, f"{description}; fitted: {fit.summary}")
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return target


def queue_model(queue_prob: str, param: float) -> QueueAware:
    """The queue-aware fill model of a grid point (``param`` as in :data:`Predict`)."""
    if queue_prob == QUEUE_RISK_AVERSE:
        return QueueAware(param)
    return QueueAware(0.0, queue_prob, param if queue_prob == QUEUE_POWER else DEFAULT_PROB_EXPONENT)


def order_predictor(ticks: pd.DataFrame, plan: OrderPlan, params: StrategyParams) -> Predict:
    """:data:`Predict` by the shadow's own order engine: the bot's orders (``plan``) on ``ticks`` under each grid
    point's queue model and entry latency, the rest of ``params`` as the profile has it."""
    market = MarketColumns.of(ticks, params.tick_size, params.lot_step)

    def predict(queue_prob: str, param: float, entry_latency_ms: float) -> pd.DataFrame:
        varied = replace(params, order_entry_latency_ms=entry_latency_ms)
        latency = latency_model_of(varied)  # one latency for orders and cancels, as the venue's hftbacktest has
        shadow = simulate_orders(
            ticks, plan, varied, queue_model(queue_prob, param), latency, fee_model_of(params), market
        )
        return shadow.orders[["order_id", "p_fill"]]

    return predict


# The models whose calibration a reconciliation shows beside the profile's own: hftbacktest's two probabilistic
# queues at their documented defaults.
CALIBRATED = ((QUEUE_POWER, DEFAULT_PROB_EXPONENT), (QUEUE_LOG, math.nan))


def calibrations(
    predict: Predict, outcomes: pd.DataFrame, models: Sequence[tuple[str, float]], entry_latency_ms: float
) -> dict[str, tuple[pd.DataFrame, float, float]]:
    """Per model label: the reliability table, Brier score and log loss of its predictions of ``outcomes``
    (``order_id``, ``filled``) at the profile's latency."""
    real = outcomes[["order_id", "filled"]].astype({"filled": bool})
    out = {}
    for queue_prob, param in models:
        predicted = predict(queue_prob, param, entry_latency_ms)
        both = real.merge(predicted, on="order_id", how="left", validate="one_to_one")
        p = both["p_fill"].fillna(0.0).to_numpy(dtype=np.float64)
        out[queue_label(queue_prob, param)] = calibration(p, both["filled"].to_numpy(dtype=bool))
    return out


@dataclass(frozen=True)
class SelfCalibration:
    """What the bot's real outcomes say about the shadow's queue model and latency: each model's calibration
    (label -> reliability table, Brier score, log loss; the profile's own first), the fit, and the partition's
    verdict under the profile's values and under the fitted ones (does the fit change the Go/No-Go?)."""

    models: dict[str, tuple[pd.DataFrame, float, float]]
    fit: OrderFit
    verdict: str
    fitted_verdict: str
    fitted_reasons: tuple[str, ...]


def _verdict(
    ticks: pd.DataFrame, plan: OrderPlan, params: StrategyParams, thresholds: Thresholds, window_s: float
) -> Verdict:
    windows = iteration_kpis(ticks, shadow(ticks, params, plan), params, thresholds, window_s)
    kpis = {str(k): v for k, v in aggregate(windows).iloc[0].items()} if len(windows) else {}
    return judge(kpis, thresholds)


def self_calibrate(
    ticks: pd.DataFrame,
    plan: OrderPlan,
    params: StrategyParams,
    thresholds: Thresholds,
    window_seconds: float,
    outcomes: pd.DataFrame,
) -> SelfCalibration:
    """Calibration of the profile's model and of :data:`CALIBRATED`, the fit over the grid, and the verdicts."""
    predict = order_predictor(ticks, plan, params)
    own_param = {QUEUE_POWER: params.prob_exponent, QUEUE_LOG: math.nan}.get(params.queue_prob)
    own = (params.queue_prob, params.size_decrease_share if own_param is None else own_param)
    wanted = [own, *(m for m in CALIBRATED if queue_label(*m) != queue_label(*own))]
    models = calibrations(predict, outcomes, wanted, params.order_entry_latency_ms)
    fit = fit_orders(predict, outcomes)
    now = _verdict(ticks, plan, params, thresholds, window_seconds)
    fitted = _verdict(ticks, plan, fit.params(params), thresholds, window_seconds)
    return SelfCalibration(models, fit, now.label, fitted.label, tuple(fitted.reasons))
