"""The probability of backtest overfitting (CSCV): hand-built objective matrices whose answer is known, the tuner
on hand-built tick markets, the walk-forward gate on it, and the profile's tune.max_pbo / pbo_blocks inputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.strategies.profiles import ProfileError, load_profiles, tune_settings
from shadow_pipeline.domain.tuning.overfitting import cscv, splits
from shadow_pipeline.domain.tuning.search_space import SearchSpace
from shadow_pipeline.domain.tuning.tuner import Search, tune
from shadow_pipeline.domain.tuning.walk_forward import walk_forward
from shadow_pipeline_tests.sim_helpers import make_ticks, tick
from shadow_pipeline_tests.tune_markets import GATES, QUEUE_BASE, as_hour, overshooting_market

SEEDS = range(8)


def test_every_split_takes_half_the_blocks_once() -> None:
    mask = splits(6)
    assert mask.shape == (20, 6) and (mask.sum(axis=1) == 3).all()
    assert len({row.tobytes() for row in mask}) == 20


def test_sets_of_pure_noise_with_the_same_mean_are_luck() -> None:
    """20 sets whose window objective is i.i.d. noise: the in-sample winner is the median set out of sample
    about half the time."""
    pbos = [cscv(np.random.default_rng(seed).normal(size=(240, 20))).pbo for seed in SEEDS]
    assert 0.35 <= float(np.mean(pbos)) <= 0.7, pbos
    assert min(pbos) > 0.15, pbos


def test_a_set_with_a_true_edge_in_every_block_is_no_overfit() -> None:
    pbos = []
    for seed in SEEDS:
        values = np.random.default_rng(seed).normal(size=(240, 20))
        values[:, 13] += 1.0  # one set earns a full standard deviation more, in every block
        pbos.append(cscv(values).pbo)
    assert max(pbos) <= 0.01, pbos


def test_two_blocks_by_hand() -> None:
    """Set 0 wins block 0 and loses block 1, set 1 the reverse: each half's winner is the loser of the other
    half, PBO 1; when set 1 wins both blocks, PBO 0. Weighted: block objective is a ratio of sums."""
    swapped = np.array([[2.0, 1.0], [0.0, 3.0]])
    assert cscv(swapped, blocks=2).pbo == 1.0
    # Choosing set 1 on block 1 loses to set 0 (the base column) on block 0; choosing set 0 cannot lose to itself.
    assert cscv(swapped, blocks=2).below_base == 0.5
    dominated = np.array([[1.0, 2.0], [1.0, 3.0]])
    assert cscv(dominated, blocks=2).pbo == 0.0 and cscv(dominated, blocks=2).below_base == 0.0
    # Two windows per block; set 0's block 0 is (10 * 1 + 0 * 9) / 10 = 1, below set 1's 1.5 once weighted.
    numerators = np.array([[10.0, 1.5], [0.0, 1.5], [0.0, 2.0], [0.0, 2.0]])
    weights = np.array([[1.0, 1.0], [9.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    assert cscv(numerators, weights, blocks=2).pbo == 0.0
    assert cscv(numerators / weights, blocks=2).pbo == 1.0  # unweighted, set 0's block 0 mean is 5


def test_what_cannot_be_measured_says_why() -> None:
    few = cscv(np.ones((10, 3)), blocks=16)
    assert not few.measured and few.reason.startswith("10 windows for 16 blocks")
    silent = np.full((40, 3), np.nan)
    assert not cscv(silent, blocks=4).measured
    # the same series twice and a set that never traded: one choice, nothing to overfit
    one = np.column_stack([np.arange(40.0), np.arange(40.0), np.full(40, np.nan)])
    assert cscv(one, blocks=4).pbo == 0.0 and cscv(one, blocks=4).sets == 1


@pytest.mark.parametrize("blocks", [0, 3, 22, -2])
def test_bad_block_counts_are_refused(blocks: int) -> None:
    with pytest.raises(ValueError, match="blocks must be even"):
        cscv(np.ones((40, 3)), blocks=blocks)


def test_the_tuner_measures_a_real_edge_on_ticks() -> None:
    """On the overshooting market only a quote one tick behind earns (+5 bps, -5 at the touch), in every
    window: the choice of offset 1 is no overfit."""
    search = Search(SearchSpace.of({"quote_offset_ticks": [0, 1, 2]}, QUEUE_BASE), pbo_blocks=8)
    hour = as_hour(overshooting_market(120), 0)
    open_gates = replace(GATES, min_net_bps=-100.0)  # both quoting sets pass: the objective alone picks
    tuning = tune([hour], QUEUE_BASE, open_gates, search, workers=1)
    assert tuning.best.point == {"quote_offset_ticks": 1}
    overfitting = tuning.overfitting(search.pbo_blocks)
    assert overfitting.sets == 2 and overfitting.pbo == 0.0  # offset 2 never fills: not a contender
    # Under the real gates offset 0 fails net_bps: another tier, never picked for its objective, so no choice
    strict = tune([hour], QUEUE_BASE, GATES, search, workers=1)
    assert strict.best.point == {"quote_offset_ticks": 1}
    assert strict.overfitting(search.pbo_blocks).sets == 1


def random_walk_market(seconds: int = 600, seed: int = 0) -> pd.DataFrame:
    """A one-tick spread random walk with trades of random side and size at the touch: no parameter earns."""
    rng = np.random.default_rng(seed)
    rows, bid = [], 1000
    for k in range(seconds * 4):
        bid += int(rng.choice([-1, 0, 0, 1]))
        b, a = bid / 10, (bid + 1) / 10
        if rng.random() < 0.5:
            side = "sell" if rng.random() < 0.5 else "buy"
            rows.append(tick(k * 250, b, a, side, b if side == "sell" else a, float(rng.integers(1, 6))))
        else:
            rows.append(tick(k * 250, b, a))
    return make_ticks(rows)


def test_a_go_needs_the_pbo_below_the_profiles_max_pbo() -> None:
    """The same walk on a random walk: at max_pbo 1 the PBO gate passes; at a max_pbo its PBO reaches, the
    decision is No-Go and its reasons name the PBO and the threshold."""
    hours = [as_hour(random_walk_market(seed=0), 0), as_hour(random_walk_market(seed=1), 1)]
    space = SearchSpace.of({"max_inventory": [1, 3, 10], "min_requote_ms": [100, 500, 1000]}, QUEUE_BASE)
    loose = walk_forward(hours, QUEUE_BASE, GATES, Search(space, max_pbo=1.0, pbo_blocks=8), 1, workers=1)
    pbo = loose.folds[-1].overfitting.pbo
    assert 0 < pbo < 1 and loose.decision.overfit is None
    strict = walk_forward(hours, QUEUE_BASE, GATES, Search(space, max_pbo=pbo, pbo_blocks=8), 1, workers=1)
    assert not strict.decision.go
    assert any(f"PBO {pbo:.2f} >= max_pbo {pbo:g}" in reason for reason in strict.decision.reasons)


def _profiles_with_tune(tmp_path: Path, **tune_fields: Any) -> Path:
    data = json.loads(json.dumps(load_profiles().data))
    data["profiles"]["moderate"]["tune"].update(tune_fields)
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(data).replace('"__nan__"', "NaN"), encoding="utf-8")
    return path


def test_the_shipped_profiles_gate_on_pbo_below_one_half() -> None:
    settings = tune_settings(load_profiles(), "moderate", "BTCUSDT")
    assert (settings.max_pbo, settings.pbo_blocks) == (0.5, 16)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_pbo", 0),
        ("max_pbo", -0.1),
        ("max_pbo", 1.5),
        ("max_pbo", 1e308),
        ("max_pbo", "0.5"),
        ("max_pbo", None),
        ("pbo_blocks", 3),
        ("pbo_blocks", 0),
        ("pbo_blocks", 22),
        ("pbo_blocks", 8.5),
        ("pbo_blocks", "16"),
        ("pbo_blocks", True),
    ],
)
def test_a_hostile_pbo_setting_is_one_profile_error_naming_it(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(ProfileError, match=rf"\$\.profiles\.moderate\.tune\.{field}: "):
        load_profiles(_profiles_with_tune(tmp_path, **{field: value}))


def test_a_nan_pbo_setting_is_refused_as_json_does(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="NaN is not a number JSON allows"):
        load_profiles(_profiles_with_tune(tmp_path, max_pbo="__nan__"))
