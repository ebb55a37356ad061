"""The tuner on hand-built markets whose best parameters are known, its determinism, and walk-forward without
lookahead (plain code: no Dagster, no Redis)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.per_window import aggregate, iteration_kpis
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.tuning.search_space import SearchSpace
from shadow_pipeline.domain.tuning.tuner import PNL_BPS, Hour, Search, evaluate, influence, objective_grid, tune
from shadow_pipeline.domain.tuning.walk_forward import fold_plan, walk_forward
from shadow_pipeline_tests.tune_markets import (
    GATES,
    QUEUE_BASE,
    WINDOW_S,
    as_hour,
    one_sided_market,
    overshooting_market,
    range_bound_market,
)

OFFSETS = {"quote_offset_ticks": [0, 1, 2]}


def _search(spec: Mapping[str, Any], **fields: Any) -> Search:
    return Search(SearchSpace.of(spec, QUEUE_BASE), **fields)


def test_only_a_one_tick_offset_earns_the_spread_and_the_tuner_finds_it() -> None:
    hour = as_hour(overshooting_market(), 0)
    ranking = tune([hour], QUEUE_BASE, GATES, _search(OFFSETS), workers=1).ranking
    by_offset = {e.point["quote_offset_ticks"]: e for e in ranking}
    assert by_offset[0].objective < 0 < by_offset[1].objective  # the market does what it was built to do
    assert math.isnan(by_offset[2].objective)  # never reached: no fills, no edge
    assert ranking[0].point == {"quote_offset_ticks": 1}
    assert ranking[0].verdict.go and not by_offset[0].verdict.go


def test_where_the_touch_never_moves_joining_it_is_the_choice() -> None:
    ranking = tune([as_hour(range_bound_market(), 0)], QUEUE_BASE, GATES, _search(OFFSETS), workers=1).ranking
    assert ranking[0].point == {"quote_offset_ticks": 0}
    assert ranking[0].verdict.go and ranking[0].objective > 0


@pytest.mark.parametrize(("max_risk", "chosen"), [(0.30, 2), (0.20, 1)])
def test_a_small_inventory_limit_is_the_only_way_under_the_risk_gate(max_risk: float, chosen: int) -> None:
    """Without the gate the largest limit has the best edge (fewest hedges); the gate must override that."""
    gates = replace(GATES, min_maker_share=0.0, min_net_bps=-1e9, max_risk_ratio=max_risk)
    base = replace(QUEUE_BASE, max_inventory=10, hedge_target=0.0)
    hour = Hour.of("h00", one_sided_market(), base, WINDOW_S)
    search = Search(SearchSpace.of({"max_inventory": [1, 2, 3, 5, 10]}, base))
    ranking = tune([hour], base, gates, search, workers=1).ranking
    best_edge = max(ranking, key=lambda e: e.objective)
    assert best_edge.point["max_inventory"] == 10 and not best_edge.verdict.go
    risk = {e.point["max_inventory"]: e.kpis["risk_ratio"] for e in ranking}
    assert [risk[n] for n in (1, 2, 3, 5, 10)] == sorted(risk[n] for n in (1, 2, 3, 5, 10))
    assert ranking[0].point == {"max_inventory": chosen}
    assert ranking[0].verdict.go
    assert all(not e.verdict.go for e in ranking if e.point["max_inventory"] > chosen)


def test_a_set_without_fills_never_outranks_one_that_trades() -> None:
    """With gates no set can pass, the set that never fills fails fewer of them (its risk is 0): it still ranks
    last, or the tuner would propose a profile that does not trade."""
    impossible = replace(
        GATES, min_windows=10_000, min_maker_share=1.01, min_net_bps=100, max_p95_latency_ms=1e-6, max_risk_ratio=0
    )
    base = replace(QUEUE_BASE, decision_latency_ms=1.0)  # a latency above the impossible p95 gate
    search = Search(SearchSpace.of(OFFSETS, base))
    ranking = tune([Hour.of("h00", overshooting_market(), base, WINDOW_S)], base, impossible, search, workers=1).ranking
    idle = ranking[-1]
    assert idle.point == {"quote_offset_ticks": 2} and math.isnan(idle.objective)
    assert all(idle.failed_gates < e.failed_gates for e in ranking[:-1])  # what used to put it first
    assert ranking[0].point == {"quote_offset_ticks": 1}


def test_an_evaluation_is_the_shadows_own_numbers() -> None:
    """What the tuner scores is what shadow_iterations + shadow_report would hold for the same parameters."""
    ticks = overshooting_market()
    params = replace(QUEUE_BASE, quote_offset_ticks=1)
    shadow = aggregate(iteration_kpis(ticks, simulate(ticks, params), params, GATES, WINDOW_S)).iloc[0]
    evaluation = evaluate([Hour.of("h00", ticks, QUEUE_BASE, WINDOW_S)], params, GATES, "net_bps")
    for name in ("net_bps", "maker_taker_ratio", "risk_ratio", "p95_latency_ms", "total_fills", "valid_windows"):
        assert evaluation.kpis[name] == shadow[name], name


def test_the_same_input_gives_the_same_ranking_on_one_or_two_processes() -> None:
    hours = [as_hour(overshooting_market(), 0), as_hour(range_bound_market(), 1)]
    search = _search({**OFFSETS, "min_requote_ms": [0, 200, 500], "max_inventory": [1, 3, 5]}, max_sets=12, seed=3)
    serial = tune(hours, QUEUE_BASE, GATES, search, workers=1).ranking
    parallel = tune(hours, QUEUE_BASE, GATES, search, workers=2).ranking
    again = tune(hours, QUEUE_BASE, GATES, search, workers=2).ranking
    summary = [[(e.index, dict(e.point), repr(e.objective)) for e in r] for r in (serial, parallel, again)]
    assert summary[0] == summary[1] == summary[2]
    assert len(serial) == 13  # the base profile and 12 sampled points


def test_the_base_profile_is_always_a_candidate_and_never_run_twice() -> None:
    search = _search(OFFSETS)  # the base's offset (0) is a grid point
    candidates = search.candidates(QUEUE_BASE)
    assert [point for _, point in candidates] == [{"quote_offset_ticks": v} for v in (0, 1, 2)]
    sampled = _search({"quote_offset_ticks": [1, 2, 3, 4], "min_requote_ms": [100, 200]}, max_sets=3, seed=1)
    first = sampled.candidates(QUEUE_BASE)[0][1]
    assert first == {"quote_offset_ticks": 0, "min_requote_ms": 0}  # the base, off the grid, leads
    assert len(sampled.candidates(QUEUE_BASE)) == 4


def test_pnl_per_notional_can_be_the_objective() -> None:
    hour = as_hour(overshooting_market(), 0)
    ranking = tune([hour], QUEUE_BASE, GATES, _search(OFFSETS, objective=PNL_BPS), workers=1).ranking
    assert ranking[0].point == {"quote_offset_ticks": 1}
    assert ranking[0].objective == pytest.approx(ranking[0].kpis["pnl_bps"])
    assert ranking[0].objective != ranking[0].kpis["net_bps"]


def test_an_unknown_objective_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown objective 'sharpe'; known: net_bps, pnl_bps"):
        _search(OFFSETS, objective="sharpe")


def test_influence_and_heatmap_grid_follow_the_evaluations() -> None:
    hour = as_hour(overshooting_market(), 0)
    search = _search({**OFFSETS, "hedge.target": [0.0, 0.5]})
    ranking = tune([hour], QUEUE_BASE, GATES, search, workers=1).ranking
    effects = influence(ranking, search.space.names)
    assert effects["quote_offset_ticks"] > effects["hedge.target"]  # the offset decides this market
    grid = objective_grid(ranking, "quote_offset_ticks", "hedge.target")
    assert list(grid.columns) == [0, 1]  # offset 2 has no objective anywhere: no column
    at = [e.objective for e in ranking if e.point == {"hedge.target": 0.0, "quote_offset_ticks": 1}]
    assert grid.at[0.0, 1] == max(at)
    single = objective_grid(ranking, "quote_offset_ticks")
    assert single.shape == (1, 3)


def test_folds_walk_forward_one_hour_at_a_time() -> None:
    keys = ["h00", "h01", "h02", "h03"]
    assert fold_plan(keys, 2) == [(("h00", "h01"), "h02"), (("h01", "h02"), "h03")]
    with pytest.raises(ValueError, match=r"needs 4 hours .* got 3.*use fewer training hours or more hours"):
        fold_plan(keys[:3], 3)


def _three_hours() -> list[Hour]:
    return [as_hour(overshooting_market(), 0), as_hour(overshooting_market(40), 1), as_hour(range_bound_market(), 2)]


def _choices(hours: list[Hour]) -> list[list[tuple[int, str]]]:
    """Each fold's in-sample ranking: candidate and objective (as text: NaN equals NaN)."""
    walk = walk_forward(hours, QUEUE_BASE, GATES, _search(OFFSETS), train_hours=1, workers=1)
    return [[(e.index, repr(e.objective)) for e in fold.tuning.ranking] for fold in walk.folds]


def _corrupted(hour: Hour) -> Hour:
    """The hour's ticks replaced by a different market at the same times: another best offset."""
    ticks = range_bound_market() if hour.ticks["bid"].nunique() > 2 else overshooting_market()
    number = int(hour.key[1:])
    return as_hour(ticks, number)


def test_no_tick_at_or_after_the_judged_hour_moves_the_choice() -> None:
    hours = _three_hours()
    walk = walk_forward(hours, QUEUE_BASE, GATES, _search(OFFSETS), train_hours=1, workers=1)
    assert [(f.train, f.test) for f in walk.folds] == [(("h00",), "h01"), (("h01",), "h02")]
    honest = _choices(hours)
    # Corrupt the judged hour of the last fold: no fold's in-sample ranking may change...
    future = [*hours[:2], _corrupted(hours[2])]
    assert _choices(future) == honest
    # ...while its out-of-sample result does (the corruption is real)...
    changed = walk_forward(future, QUEUE_BASE, GATES, _search(OFFSETS), train_hours=1, workers=1)
    assert changed.folds[1].out_of_sample.objective != walk.folds[1].out_of_sample.objective
    # ...and corrupting a training hour does move the ranking it trains (the test can see a leak).
    past = [hours[0], _corrupted(hours[1]), hours[2]]
    assert _choices(past)[0] == honest[0] and _choices(past)[1] != honest[1]


def test_the_decision_rests_on_out_of_sample_windows_only() -> None:
    """Hour 0 rewards offset 1; hours 1 and 2 reward offset 0: the winner tuned on the past loses on the next
    hour, so in-sample Go and out-of-sample No-Go, and the decision is the out-of-sample one."""
    hours = [as_hour(overshooting_market(), 0), as_hour(range_bound_market(), 1), as_hour(range_bound_market(), 2)]
    walk = walk_forward(hours, QUEUE_BASE, GATES, _search(OFFSETS), train_hours=1, workers=1)
    first, second = walk.folds
    assert first.in_sample.verdict.go and first.in_sample.point == {"quote_offset_ticks": 1}
    assert not first.out_of_sample.verdict.go  # offset 1 never fills in a range-bound hour
    assert second.in_sample.point == {"quote_offset_ticks": 0} and second.out_of_sample.verdict.go
    pooled = pd.concat([first.windows, second.windows], ignore_index=True)
    assert walk.kpis["valid_windows"] == int(pooled["valid"].sum()) == second.out_of_sample.kpis["valid_windows"]
    assert walk.tuned.quote_offset_ticks == 0  # the newest fold's winner
    assert walk.decision.go  # the judged windows with fills pass; the first fold's judged hour has none valid
    assert walk.decision.pooled.go and walk.decision.tuned.go
    assert math.isnan(first.degradation)  # no out-of-sample edge to compare with


def test_a_tuned_set_that_fails_its_own_judged_hour_is_no_go_whatever_the_pool_says() -> None:
    """Earlier folds' winners pass on long judged hours, the newest winner (offset 1) never fills on its own:
    the pooled windows pass, the tuned set does not, and only the tuned set would be written."""
    hours = [
        as_hour(range_bound_market(), 0),
        as_hour(range_bound_market(1500), 1),
        as_hour(overshooting_market(), 2),
        as_hour(range_bound_market(), 3),
    ]
    walk = walk_forward(hours, QUEUE_BASE, GATES, _search(OFFSETS), train_hours=1, workers=1)
    assert walk.tuned.quote_offset_ticks == 1 and walk.folds[-1].out_of_sample.kpis["valid_windows"] == 0
    assert walk.decision.pooled.go and not walk.decision.tuned.go
    assert not walk.decision.go
    assert any(reason.startswith("tuned set on h03: valid_windows 0") for reason in walk.decision.reasons)


def test_hours_out_of_order_are_refused() -> None:
    hours = _three_hours()
    with pytest.raises(ValueError, match="oldest first"):
        walk_forward(hours[::-1], QUEUE_BASE, GATES, _search(OFFSETS), train_hours=1, workers=1)


def test_prepared_columns_of_other_ticks_are_refused() -> None:
    """Shared preparation is only sound for the ticks it was built from: another hour of the same length fails."""
    hour, other = as_hour(overshooting_market(), 0), as_hour(overshooting_market(), 1)
    with pytest.raises(ValueError, match=r"market columns of 420 ticks .* do not fit 420 ticks"):
        simulate(other.ticks, QUEUE_BASE, hour.market)
    with pytest.raises(ValueError, match="windows of 5 s over 420 ticks do not fit this run"):
        iteration_kpis(other.ticks, simulate(other.ticks, QUEUE_BASE), QUEUE_BASE, GATES, WINDOW_S, hour.windows)
