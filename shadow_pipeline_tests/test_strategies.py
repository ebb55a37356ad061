"""The strategy interface: both engines run a strategy written once, ``touch_offset`` takes exactly the decisions
the inline quoter took (the golden fills, ``fills_golden.py``), and a strategy that answers wrongly stops the run
with one error naming it and the tick."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.strategies.interface import (
    P_OWN,
    Q_ASK_PX,
    Q_ASK_QTY,
    Q_BID_PX,
    Q_BID_QTY,
    QUOTE_SIZE,
    V_ASK,
    V_ASK_QTY,
    V_BID,
    V_BID_QTY,
    V_INDEX,
    V_POSITION,
    VIEW_SIZE,
    Param,
    Strategy,
    StrategyError,
)
from shadow_pipeline.domain.strategies.inventory_skew import INVENTORY_SKEW
from shadow_pipeline.domain.strategies.profiles import ProfileError, load_profiles, resolve
from shadow_pipeline.domain.tuning.search_space import SearchSpace, point_of, tunable_names, with_values
from shadow_pipeline.domain.tuning.tuner import Search, tune
from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_available
from shadow_pipeline.parquet import read_frame
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.fills_golden import ENGINES, FILL_CASES, PROFILES, engine_fills, golden_path
from shadow_pipeline_tests.kpis_golden import Case, case_ticks
from shadow_pipeline_tests.sim_helpers import BASE, make_ticks, params, tick
from shadow_pipeline_tests.tune_markets import GATES, QUEUE_BASE, as_hour, overshooting_market

CASES = [(case, profile, engine) for case in FILL_CASES for profile in PROFILES for engine in ENGINES]


@pytest.fixture(scope="module")
def ticks_of() -> dict[str, pd.DataFrame]:
    return {}


@pytest.mark.parametrize(("case", "profile", "engine"), CASES, ids=[golden_path(*c).stem for c in CASES])
def test_touch_offset_behind_the_interface_fills_exactly_as_the_inline_quoter(
    case: Case, profile: str, engine: str, ticks_of: dict[str, pd.DataFrame]
) -> None:
    if case.recording is not None:
        market_file(case.recording)
    if engine == "hftbacktest" and not hftbacktest_available():
        pytest.skip("hftbacktest (the hbt extra) is not installed")
    if case.name not in ticks_of:
        ticks_of[case.name] = case_ticks(case)
    params, _ = resolve(load_profiles(), profile, case.symbol)
    assert params.strategy == "touch_offset"
    golden = read_frame(str(golden_path(case, profile, engine)))
    fills = engine_fills(ticks_of[case.name], params, engine)
    pd.testing.assert_frame_equal(fills, golden, check_exact=True)
    assert fills.attrs == golden.attrs


# Strategies that answer one tick wrongly (the fourth, index 3), named by path as a user's would be.
@numba.njit(cache=True)
def _wrong(params: np.ndarray, view: np.ndarray, state: np.ndarray, quotes: np.ndarray) -> None:
    quotes[Q_BID_PX], quotes[Q_BID_QTY] = view[V_BID], 10
    quotes[Q_ASK_PX], quotes[Q_ASK_QTY] = view[V_ASK], 10
    if view[V_INDEX] == 3:
        what = params[P_OWN]
        if what == 0:
            quotes[Q_BID_PX] = np.nan
        elif what == 1:
            quotes[Q_ASK_PX] = view[V_ASK] + 0.5
        elif what == 2:
            quotes[Q_BID_QTY] = -10
        else:
            raise ValueError("no view of the market")


WRONG = Strategy("wrong", _wrong, (Param("what", 0, 0, 3, integer=True),))
NOT_A_STRATEGY = _wrong
ROWS = [tick(ms, 100.0, 100.1) for ms in (0, 20, 40, 60, 80)]


@pytest.mark.parametrize(
    ("what", "message"),
    [
        (0, "returned NaN or an infinite number"),
        (1, "returned a price off the tick grid (not a whole number of ticks)"),
        (2, "returned a negative size"),
        (3, "raised ValueError: no view of the market"),
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_a_wrong_answer_stops_the_run_naming_the_strategy_and_the_tick(what: int, message: str, engine: str) -> None:
    if engine == "hftbacktest" and not hftbacktest_available():
        pytest.skip("hftbacktest (the hbt extra) is not installed")
    name = f"{__name__}:WRONG"
    with pytest.raises(StrategyError) as raised:
        engine_fills(make_ticks(ROWS), params(strategy=name, strategy_params={"what": what}), engine)
    assert str(raised.value) == f"strategy {name!r} {message} at tick 3 (ts_server 2024-08-08T23:54:15.060000+00:00)"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such", "unknown strategy 'no_such'; packaged: touch_offset, inventory_skew"),
        ("shadow_pipeline_tests.nowhere:X", "cannot import 'shadow_pipeline_tests.nowhere'"),
        (f"{__name__}:MISSING", f"module {__name__!r} has no attribute 'MISSING'"),
        (f"{__name__}:NOT_A_STRATEGY", "is a CPUDispatcher, not a shadow_pipeline Strategy"),
    ],
)
def test_a_strategy_that_does_not_resolve_fails_at_load_with_what_was_found(
    name: str, message: str, tmp_path: Path
) -> None:
    profiles = load_profiles()
    data = json.loads(json.dumps(profiles.data))
    data["profiles"]["moderate"]["params"]["strategy"] = name
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=re.escape(message)):
        resolve(load_profiles(path), "moderate", "BTCUSDT")


def test_unknown_or_out_of_range_strategy_params_fail_at_load(tmp_path: Path) -> None:
    data = json.loads(json.dumps(load_profiles().data))
    params_ = data["profiles"]["moderate"]["params"]
    params_["strategy"] = f"{__name__}:WRONG"
    for own, message in (({"whot": 1}, "has no parameter whot; its parameters: what"), ({"what": 9}, "what: 9")):
        params_["strategy_params"] = own
        path = tmp_path / "profiles.json"
        path.write_text(json.dumps(data))
        with pytest.raises(ProfileError, match=re.escape(message)):
            resolve(load_profiles(path), "moderate", "BTCUSDT")


def _skew_quotes(
    position: int, bid_qty: int = 10, ask_qty: int = 10, variance: float = 0.0, **own: float
) -> tuple[float, ...]:
    """inventory_skew's answer to one tick: bid 1000, ask 1001 ticks, order size 2 lots, limit 10 orders, the
    mid's variance rate estimated at ``variance`` ticks^2/s."""
    params = INVENTORY_SKEW.pack(replace(BASE, lot_step=0.5, max_inventory=10, strategy_params=own))
    view = np.zeros(VIEW_SIZE, np.int64)
    view[V_BID], view[V_ASK], view[V_BID_QTY], view[V_ASK_QTY] = 1000, 1001, bid_qty, ask_qty
    view[V_POSITION] = position
    state = np.zeros(INVENTORY_SKEW.state_size)
    state[0], state[2], state[3] = variance, 1e12, 1  # started, updated after this tick: the estimate stands
    quotes = np.zeros(QUOTE_SIZE)
    INVENTORY_SKEW.decide(params, view, state, quotes)
    return tuple(quotes)


def test_inventory_skew_joins_a_balanced_touch_when_flat() -> None:
    assert _skew_quotes(0) == (1000, 2, 1001, 2, 0)


def test_inventory_skew_leans_against_its_inventory() -> None:
    # 8 orders long at gamma 0.01, variance 100 ticks^2/s, horizon 1 s: the reservation price is 8 ticks below
    # the mid (992.5), the half-spread 0.5 + ln(1.005) / 0.01 = 0.9988: bid 991; the ask would be 994 but stays
    # off the bid (a post-only order at or below it is rejected), so it joins the ask to sell first
    assert _skew_quotes(16, variance=100, risk_aversion=0.01)[:4] == (991, 2, 1001, 2)
    assert _skew_quotes(-16, variance=100, risk_aversion=0.01)[:4] == (1000, 2, 1010, 2)


def test_inventory_skew_backs_off_the_side_the_book_leans_against() -> None:
    # far more size on the bid: the micro-price is near the ask, so the ask steps back and the bid joins
    assert _skew_quotes(0, bid_qty=90, ask_qty=10)[:4] == (1000, 2, 1002, 2)
    assert _skew_quotes(0, bid_qty=10, ask_qty=90)[:4] == (999, 2, 1001, 2)
    assert _skew_quotes(0, bid_qty=90, ask_qty=10, signal_weight=0)[:4] == (1000, 2, 1001, 2)


def test_inventory_skew_stops_a_side_at_the_limit_and_hedges() -> None:
    _, bid_qty, _, ask_qty, taker = _skew_quotes(20)  # 10 orders long: at the limit
    assert bid_qty == 0 and ask_qty == 2 and taker == -10  # hedge back to half the limit (BASE's target 0.5)


def test_the_search_space_is_per_strategy() -> None:
    base, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    skew = replace(base, strategy="inventory_skew")
    space = SearchSpace.of({"strategy_params.risk_aversion": [1e-4, 1e-3], "max_inventory": [3, 5]}, skew)
    tuned = with_values(skew, space.point(3))
    assert (tuned.strategy_params, tuned.max_inventory) == ({"risk_aversion": 1e-3}, 5)
    assert point_of(tuned, space.names) == space.point(3)
    assert point_of(skew, ["strategy_params.horizon_s"]) == {"strategy_params.horizon_s": 1.0}  # the default
    with pytest.raises(ProfileError, match="'quote_offset_ticks' is not a tunable parameter of strategy 'inventory_s"):
        with_values(skew, {"quote_offset_ticks": 1})  # touch_offset's setting: searching it would change nothing
    with pytest.raises(ProfileError, match=re.escape("strategy_params.risk_aversion: 1000.0 is out of range")):
        SearchSpace.of({"strategy_params.risk_aversion": [1000]}, skew)
    assert "strategy_params.risk_aversion" not in tunable_names(base)


def test_the_tuner_searches_a_desk_strategys_own_parameters() -> None:
    desk = replace(QUEUE_BASE, strategy="shadow_pipeline_tests.example_strategy:TRADE_FADE")
    space = SearchSpace.of({"strategy_params.fade_ticks": [0, 1, 3]}, desk)
    ranking = tune([as_hour(overshooting_market(), 0)], desk, GATES, Search(space), workers=2).ranking
    assert sorted(e.point["strategy_params.fade_ticks"] for e in ranking) == [0, 1, 2, 3]  # 2: the base point
    fills = {e.point["strategy_params.fade_ticks"]: e.kpis["total_fills"] for e in ranking}
    assert fills[0] != fills[3]  # the parameter reaches the strategy in the worker processes


@pytest.mark.skipif(not hftbacktest_available(), reason="hftbacktest (the hbt extra) is not installed")
def test_inventory_skew_takes_the_same_decisions_in_both_engines() -> None:
    # the hand-worked queue sequence of test_hftbacktest_engine: joined behind 3.0, filled once trades take it
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.1),
            tick(20, 100.0, 100.1),
            tick(30, 100.0, 100.1, "sell", 100.0, 1.0),
            tick(40, 100.0, 100.1, "sell", 100.0, 1.0),
            tick(50, 100.0, 100.1, "sell", 100.0, 2.0),
            tick(70, 100.0, 100.1),
        ]
    )
    ticks["bid_qty"] = ticks["ask_qty"] = 3.0
    skew = params(strategy="inventory_skew", fill_model="queue")
    columns = ["tick", "side", "price", "qty", "kind"]
    shadow = engine_fills(ticks, skew, "queue")[columns]
    reality = engine_fills(ticks, skew, "hftbacktest")[columns]
    pd.testing.assert_frame_equal(shadow, reality)
    assert shadow.values.tolist() == [[4, 1, 100.0, 1.0, "trade"]]
