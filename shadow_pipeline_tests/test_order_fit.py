"""The self-calibration fit (``domain/validation/order_fit.py``): the queue model and the entry latency from a
bot's per-order outcomes.

(a) orders the shadow's strategy sent on synthetic ticks, their outcomes drawn (fixed seed) from the fill
probabilities of a known queue model and latency: the fit recovers both; (b) the likelihood-ratio interval on a
hand-made surface; (c) the fitted profile file loads back as the fitted parameters.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.external.from_sends import intents_from_sends
from shadow_pipeline.domain.strategies.external.intents import Grid, check_intents
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.domain.validation.order_fit import (
    EXPONENTS,
    LATENCIES_MS,
    SHARES,
    OrderFit,
    Predict,
    fit_orders,
    log_likelihood,
    order_predictor,
    queue_grid,
    write_fitted_profile,
)
from shadow_pipeline_tests.test_prob_queue import _moderate, _synthetic

SYMBOL = "BTCUSDT"


@cache
def _predictor() -> Predict:
    """The orders the moderate strategy sent over 300 s of synthetic BTCUSDT (about 600), as a bot would publish
    them: their life (send times) is a fact; the queue model and latency decide which of them fill."""
    ticks, p = _synthetic(SYMBOL), _moderate(SYMBOL)
    sends = simulate(ticks, p).sends
    assert sends is not None
    intents = intents_from_sends(sends, p.tick_size, p.lot_step)
    plan = check_intents([(str(n), i) for n, i in enumerate(intents)], Grid(SYMBOL, p.tick_size, p.lot_step)).plan
    return order_predictor(ticks, plan, p)


def _predict(queue_prob: str, param: float, entry_latency_ms: float) -> pd.DataFrame:
    return _predictor()(queue_prob, param, entry_latency_ms)


def _adjacent(grid: tuple[float, ...], found: float, truth: float) -> bool:
    return abs(grid.index(found) - grid.index(truth)) <= 1


@pytest.mark.parametrize(
    ("queue_prob", "param", "latency"), [("power", 2.0, 50.0), ("risk_averse", 0.25, 10.0), ("log", math.nan, 100.0)]
)
def test_the_fit_recovers_a_known_queue_model_and_latency(queue_prob: str, param: float, latency: float) -> None:
    truth = _predict(queue_prob, param, latency)
    drawn = np.random.default_rng(21).random(len(truth)) < truth["p_fill"].to_numpy()
    fit = fit_orders(_predict, pd.DataFrame({"order_id": truth["order_id"], "filled": drawn}))
    label = queue_prob if queue_prob == "log" else f"{queue_prob} {param:g}"
    assert label in fit.queue_interval, fit.summary
    assert fit.latency_interval[0] <= latency <= fit.latency_interval[1], fit.summary
    assert _adjacent(LATENCIES_MS, fit.entry_latency_ms, latency), fit.summary
    assert fit.queue_prob == queue_prob, fit.summary
    if queue_prob != "log":
        assert _adjacent(SHARES if queue_prob == "risk_averse" else EXPONENTS, fit.param, param), fit.summary
    assert len(fit.table) == len(queue_grid()) * len(LATENCIES_MS)
    assert fit.table["loglik"].is_monotonic_decreasing


def test_the_interval_keeps_every_grid_point_within_1_92_of_the_best() -> None:
    """30 of 100 orders filled; the latency sets one p_fill for all (latency / 100), so the log-likelihood is
    30 log p + 70 log(1 - p): best at 30 ms (-61.09), 25 and 35 ms within 1.92 (-61.73, -61.65), 20 and 40 ms
    not (-63.90, -63.25). Every queue candidate predicts alike but ``power 8``, which is sure (0.9): out."""
    outcomes = pd.DataFrame({"order_id": range(100), "filled": [True] * 30 + [False] * 70})

    def predict(queue_prob: str, param: float, entry_latency_ms: float) -> pd.DataFrame:
        p = 0.9 if (queue_prob, param) == ("power", 8.0) else entry_latency_ms / 100
        return pd.DataFrame({"order_id": range(100), "p_fill": p})

    fit = fit_orders(predict, outcomes, latencies_ms=(10.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0))
    assert fit.entry_latency_ms == 30.0 and fit.latency_interval == (25.0, 35.0)
    assert fit.table["loglik"].iloc[0] == pytest.approx(30 * math.log(0.3) + 70 * math.log(0.7))
    assert "power 8" not in fit.queue_interval and len(fit.queue_interval) == len(queue_grid()) - 1
    assert fit.queue_prob == "risk_averse" and fit.param == 0.0  # ties: the first candidate of the grid


def test_a_sure_wrong_prediction_costs_the_clip_not_infinity() -> None:
    assert log_likelihood(np.array([0.0, 1.0]), np.array([True, False])) == pytest.approx(2 * math.log(1e-3))
    assert log_likelihood(np.array([1.0, 0.0]), np.array([True, False])) == pytest.approx(2 * math.log(1 - 1e-3))


def test_an_order_the_shadow_never_rested_counts_as_unfilled() -> None:
    outcomes = pd.DataFrame({"order_id": [0, 1], "filled": [True, False]})

    def predict(queue_prob: str, param: float, entry_latency_ms: float) -> pd.DataFrame:
        return pd.DataFrame({"order_id": [0], "p_fill": [1.0]})  # order 1 was rejected

    fit = fit_orders(predict, outcomes, queues=[("log", math.nan)], latencies_ms=(10.0,))
    assert fit.table["expected_fills"].iloc[0] == 1.0
    assert fit.table["loglik"].iloc[0] == pytest.approx(2 * math.log(1 - 1e-3))


def test_the_fitted_profile_loads_as_the_fitted_parameters(tmp_path: Path) -> None:
    params, thresholds = resolve(load_profiles(), "moderate", SYMBOL)
    table = pd.DataFrame([{"loglik": -1.0, "orders": 10, "expected_fills": 4.0, "actual_fills": 4}])
    fit = OrderFit(table, "power", 2.0, 50.0, ("power 2", "power 3"), (25.0, 50.0))
    path = write_fitted_profile(tmp_path / "fitted.json", fit, params, thresholds, "fitted on a test")
    loaded, _ = resolve(load_profiles(path), "moderate", SYMBOL)
    assert (loaded.queue_prob, loaded.prob_exponent, loaded.order_entry_latency_ms) == ("power", 2.0, 50.0)
    assert loaded == fit.params(params)
    assert "latency 25-50 ms" in fit.summary and "power 2, power 3" in fit.summary
