"""The search space: declared in the profiles file, validated by the schema and against the instrument, and the
one definition of a single-parameter override."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from shadow_pipeline.domain.strategies.profiles import FILL_DWELL, ProfileError, load_profiles, resolve, tune_settings
from shadow_pipeline.domain.tuning.search_space import TUNABLES, SearchSpace, point_of, with_values
from shadow_pipeline.domain.tuning.tuner import OBJECTIVES


def _packaged() -> dict[str, Any]:
    text = resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(data))
    return path


def test_every_packaged_profile_declares_a_search_space_that_fits_each_symbol() -> None:
    profiles = load_profiles()
    for name in profiles.names:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            params, _ = resolve(profiles, name, symbol)
            if params.strategy == "external":  # the bot decides its orders: nothing here to tune
                with pytest.raises(ProfileError, match="strategy external has no tunable parameters"):
                    with_values(params, {"min_lot": params.min_lot})
                continue
            settings = tune_settings(profiles, name, symbol)
            space = SearchSpace.of(settings.space, params)
            assert {"quote_offset_ticks", "min_lot", "max_inventory", "hedge.target", "min_requote_ms"} <= set(
                space.names
            )
            assert settings.objective in OBJECTIVES


def test_the_schema_names_the_same_objectives_and_parameters_as_the_code() -> None:
    schema = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.schema.json").read_text())
    tune = schema["$defs"]["tune"]["properties"]
    assert set(tune["objective"]["enum"]) == set(OBJECTIVES)
    assert set(tune["space"]["properties"]) == set(TUNABLES)


def test_symbol_layers_merge_into_the_profiles_space(tmp_path: Path) -> None:
    data = _packaged()
    data["profiles"]["moderate"]["symbols"] = {"BTCUSDT": {"tune": {"space": {"max_inventory": [7]}, "seed": 9}}}
    settings = tune_settings(load_profiles(_write(tmp_path, data)), "moderate", "BTCUSDT")
    assert settings.space["max_inventory"] == [7]  # the profile's symbol override replaces that key only
    assert settings.space["min_lot"] == [0.002, 0.004, 0.01]  # from symbols.BTCUSDT.tune
    assert settings.space["quote_offset_ticks"] == [0, 1, 2]  # from the profile
    assert (settings.seed, settings.max_sets, settings.objective) == (9, 100, "net_bps")


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"space": {"spread": [1]}}, "'spread' does not match any of the regexes: '\\^strategy_params"),
        ({"space": {"max_inventory": []}}, "max_inventory"),
        ({"space": {"min_requote_ms": {"min": 100, "max": 500}}}, "min_requote_ms"),
        ({"objective": "sharpe"}, "'sharpe' is not one of"),
        ({"max_sets": 0}, "0 is less than the minimum of 1"),
    ],
)
def test_a_bad_tune_section_names_the_file_and_path(tmp_path: Path, tune: dict[str, Any], message: str) -> None:
    data = _packaged()
    data["profiles"]["moderate"]["tune"] = tune
    with pytest.raises(ProfileError, match=f"profiles.json: \\$.profiles.moderate.tune.*{message}"):
        load_profiles(_write(tmp_path, data))


@pytest.mark.parametrize("spec", [1, [], ["a"], [True], {"min": 1}, {"min": 1, "max": 2, "step": "1"}])
def test_a_space_of_the_wrong_shape_says_which_shapes_it_takes(spec: Any) -> None:
    """A run's --space has not been through the schema: the shape is checked on its own."""
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    with pytest.raises(ProfileError, match=r"tune\.space\.min_requote_ms: want a list of numbers or"):
        SearchSpace.of({"min_requote_ms": spec}, params)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"min": 0, "max": 1000, "step": 0.0001}, "10,000,001 values \\(more than 10,000\\): use a coarser step"),
        ({"min": 0, "max": float("inf"), "step": 1}, "want finite min <= max and step > 0"),
        ({"min": 5, "max": 1, "step": 1}, "want finite min <= max and step > 0"),
        # the soak's OverflowError: the count of a subnormal step is infinite; ends past the range fail first
        ({"min": 0, "max": 1000, "step": 5e-324}, "inf values \\(more than 10,000\\)"),
        ({"min": 0, "max": 1e308, "step": 5e-324}, "1e\\+308 is out of range \\(want >= 0 and <= 3.6e\\+06\\)"),
    ],
)
def test_a_range_that_is_a_typo_is_refused_before_its_values_are_built(spec: Any, message: str) -> None:
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    with pytest.raises(ProfileError, match=f"min_requote_ms: {message}"):
        SearchSpace.of({"min_requote_ms": spec}, params)


def test_ranges_and_lists_become_sorted_distinct_values() -> None:
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    space = SearchSpace.of(
        {"min_requote_ms": {"min": 100, "max": 500, "step": 200}, "quote_offset_ticks": [2, 0]}, params
    )
    assert [d.values for d in space.dimensions] == [(100.0, 300.0, 500.0), (0, 2)]
    assert space.size == 6
    assert space.point(5) == {"min_requote_ms": 500.0, "quote_offset_ticks": 2}


def test_a_small_space_is_searched_whole_and_a_large_one_sampled_with_its_seed() -> None:
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    small = SearchSpace.of({"quote_offset_ticks": [0, 1, 2], "max_inventory": [1, 2]}, params)
    assert len(small.points(10, seed=0)) == 6
    large = SearchSpace.of(tune_settings(load_profiles(), "moderate", "BTCUSDT").space, params)
    drawn = large.points(20, seed=4)
    assert drawn == large.points(20, seed=4)  # reproducible
    assert drawn != large.points(20, seed=5)  # and the seed matters
    assert len({json.dumps(p, sort_keys=True) for p in drawn}) == 20  # distinct points


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_lot": 0.0025}, "min_lot: 0.0025 is not a positive multiple of BTCUSDT's lot_step 0.001"),
        ({"min_lot": 0.0}, "min_lot: 0.0 is out of range (want > 0 and <= 1e+09)"),
        ({"min_lot": float("inf")}, "min_lot: inf is not a finite number"),
        ({"min_lot": 1e-12}, "min_lot: 1e-12 is not a positive multiple of BTCUSDT's lot_step 0.001"),
        ({"max_inventory": 1e300}, "max_inventory: 1e+300 is out of range (want >= 1 and <= 100000)"),
        ({"quote_offset_ticks": 1.5}, "quote_offset_ticks: 1.5 is not an integer"),
        ({"hedge.target": 1.5}, "hedge.target: 1.5 is out of range (want >= 0 and <= 1)"),
        ({"max_inventory": 0}, "max_inventory: 0 is out of range"),
        ({"touch_dwell_ms": 300}, "touch_dwell_ms applies to the dwell fill model only"),
        ({"spread": 1}, "'spread' is not a tunable parameter"),
    ],
)
def test_a_value_out_of_its_rule_is_refused_with_the_rule(values: dict[str, float], message: str) -> None:
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    with pytest.raises(ProfileError, match=re.escape(message)):
        with_values(params, values)
    with pytest.raises(ProfileError):
        SearchSpace.of({name: [value] for name, value in values.items()}, params)


def test_values_land_in_the_strategy_and_read_back() -> None:
    params, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    dwell = replace(params, fill_model=FILL_DWELL)
    changed = with_values(dwell, {"min_lot": 0.004, "hedge.target": 0.0, "touch_dwell_ms": 800, "max_inventory": 3})
    assert (changed.min_lot, changed.hedge_target, changed.touch_dwell_ms, changed.max_inventory) == (0.004, 0, 800, 3)
    assert point_of(changed, ["min_lot", "hedge.target"]) == {"min_lot": 0.004, "hedge.target": 0.0}
    assert params.min_lot == 0.002  # a frozen copy is changed, not the profile's parameters
