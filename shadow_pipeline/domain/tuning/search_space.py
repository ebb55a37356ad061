"""The strategy parameters a tuner may move, their candidate values, and how a chosen value enters a profile.

A search space is data in the profiles file (``tune.space``; ``docs/tuning.md``), so a trader widens it without
a release, and the same names serve the single-parameter overrides of ``shadow --min_lot`` and the launchpad:
one definition of what a tunable parameter is and how it is checked. The space is per strategy: beside the
profile-level settings every strategy shares, a strategy's own parameters (``Strategy.parameters``, bounded by
the strategy) are tunable by name, and a setting only some strategies read (``quote_offset_ticks``) only for
those. Values are discrete (a list, or a range
with a step) because the fills of neighbouring values rarely differ and a finite grid keeps a search
exhaustive when it is small and exactly reproducible when it is sampled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shadow_pipeline.domain.simulation.models import FILL_MODELS, fill_model_of
from shadow_pipeline.domain.strategies.interface import Param, Strategy
from shadow_pipeline.domain.strategies.profiles import (
    EXTERNAL_STRATEGY,
    ProfileError,
    Range,
    StrategyParams,
    setting_range,
    whole_lots,
)
from shadow_pipeline.domain.strategies.registry import strategy_of


@dataclass(frozen=True)
class Tunable:
    """A profile parameter a search may move: its name in the profiles file and ``tune.space``, its
    ``StrategyParams`` field, and where the profiles schema declares its range (the one declaration of it, so a
    searched value, an override and a file's value obey the same bounds)."""

    name: str
    field: str
    schema_name: str
    strategy_field: bool = False  # read only by the strategies that list it in ``Strategy.fields``

    @property
    def range(self) -> Range:
        return replace(setting_range("params", self.schema_name), name=self.name)


TUNABLES = {
    t.name: t
    for t in (
        Tunable("quote_offset_ticks", "quote_offset_ticks", "quote_offset_ticks", strategy_field=True),
        Tunable("min_lot", "min_lot", "min_lot"),
        Tunable("max_inventory", "max_inventory", "max_inventory"),
        Tunable("hedge.target", "hedge_target", "hedge.target"),
        Tunable("min_requote_ms", "min_requote_ms", "requote.min_requote_ms"),
        Tunable("touch_dwell_ms", "touch_dwell_ms", "touch_dwell_ms"),
    )
}
OWN = "strategy_params."  # the prefix of a strategy's own parameters in tune.space and overrides
MAX_GRID = 1_000_000  # a larger grid is a typo (a step of 0.0001), not a search
MAX_VALUES = 10_000  # values of one parameter; the same typo, caught before the values are built


def _check(tunable: Tunable, value: float, params: StrategyParams) -> float | int:
    number = tunable.range.check(value)
    if tunable.name == "min_lot" and whole_lots(number, params.lot_step) is None:
        raise ProfileError(
            f"min_lot: {value} is not a positive multiple of {params.symbol}'s lot_step {params.lot_step:g}"
        )
    return number


def _own(strategy: Strategy, name: str) -> Param | None:
    """The strategy's parameter that tunable ``name`` (``strategy_params.<parameter>``) moves, if any."""
    return strategy.param(name[len(OWN) :]) if name.startswith(OWN) else None


def tunable_names(params: StrategyParams) -> list[str]:
    """What a search over ``params`` may move: the shared settings, then the strategy's own parameters."""
    strategy = strategy_of(params.strategy)
    shared = [t.name for t in TUNABLES.values() if not t.strategy_field or t.name in strategy.fields]
    return [*shared, *(OWN + p.name for p in strategy.parameters)]


def with_values(params: StrategyParams, values: Mapping[str, float]) -> StrategyParams:
    """``params`` with the named tunables set; a name that is not tunable for its strategy, or a value out of its
    range, raises ProfileError with the rule it broke."""
    if not values:
        return params
    if params.strategy == EXTERNAL_STRATEGY:
        raise ProfileError(
            f"strategy external has no tunable parameters (the bot decides its orders); cannot set {', '.join(values)}"
        )
    strategy = strategy_of(params.strategy)
    changes: dict[str, Any] = {}
    own = dict(params.strategy_params)
    for name, value in values.items():
        tunable, param = TUNABLES.get(name), _own(strategy, name)
        if tunable is not None and (not tunable.strategy_field or name in strategy.fields):
            owner = next((m for m in FILL_MODELS.values() if name in m.tunables), None)
            if owner is not None and name not in fill_model_of(params).tunables:
                raise ProfileError(
                    f"{name} applies to the {owner.name} fill model only (this profile's is {params.fill_model})"
                )
            changes[tunable.field] = _check(tunable, value, params)
        elif param is not None:
            own[param.name] = replace(param.range, name=name).check(value)
        else:
            raise ProfileError(
                f"{name!r} is not a tunable parameter of strategy {params.strategy!r}; tunable: "
                f"{', '.join(tunable_names(params))}"
            )
    return replace(params, **changes, strategy_params=own)


def point_of(params: StrategyParams, names: Sequence[str]) -> dict[str, float | int]:
    """The current values of ``names`` in ``params`` (the base point of a search)."""
    own = {OWN + name: value for name, value in strategy_of(params.strategy).values(params).items()}
    return {name: own[name] if name in own else getattr(params, TUNABLES[name].field) for name in names}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _values(name: str, spec: Any, bounds: Range | None) -> tuple[float, ...]:
    """The candidate values of a list, or of a ``{"min", "max", "step"}`` range (the schema's two shapes; a run's
    ``space`` override has not been through the schema, so the shape is checked here too)."""
    shape = f'tune.space.{name}: want a list of numbers or {{"min": .., "max": .., "step": ..}}'
    if isinstance(spec, Mapping):
        if set(spec) != {"min", "max", "step"} or not all(_number(v) for v in spec.values()):
            raise ProfileError(f"{shape}, got {json.dumps(spec)}")
        low, high, step = float(spec["min"]), float(spec["max"]), float(spec["step"])
        if not all(map(math.isfinite, (low, high, step))) or high < low or step <= 0:
            raise ProfileError(f"tune.space.{name}: want finite min <= max and step > 0, got {json.dumps(spec)}")
        if bounds is not None:  # the ends first: the count of a range beyond the bounds could overflow
            for end in (low, high):
                bounds.check(end)
        # Steps between the ends, compared before any int(): a step of 5e-324 makes it infinite. The 1e-9 is
        # float noise (0.3 / 0.1 is 2.9999999999999996).
        steps = (high - low) / step + 1e-9
        if not steps < MAX_VALUES:
            raise ProfileError(
                f"tune.space.{name}: {steps + 1:,.0f} values (more than {MAX_VALUES:,}): use a coarser step"
            )
        return tuple(round(low + i * step, 12) for i in range(int(steps) + 1))
    if not isinstance(spec, list | tuple) or not spec or not all(_number(v) for v in spec):
        raise ProfileError(f"{shape}, got {json.dumps(spec)}")
    return tuple(float(v) for v in spec)


def _range(params: StrategyParams, name: str) -> Range | None:
    """The bounds of tunable ``name`` for ``params``' strategy, None when it is not one (``with_values`` says so)."""
    if name in TUNABLES:
        return TUNABLES[name].range
    param = _own(strategy_of(params.strategy), name)
    return None if param is None else replace(param.range, name=name)


@dataclass(frozen=True)
class Dimension:
    name: str
    values: tuple[float | int, ...]


@dataclass(frozen=True)
class SearchSpace:
    """Candidate values per tunable; a point is one value of each, and the space is their grid."""

    dimensions: tuple[Dimension, ...]

    @classmethod
    def of(cls, spec: Mapping[str, Any], params: StrategyParams) -> SearchSpace:
        """The space of a ``tune.space`` mapping for ``params``' instrument and fill model; every value is checked
        as :func:`with_values` would check it, so a bad file fails before any tick is simulated."""
        dimensions = []
        for name in sorted(spec):
            bounds = _range(params, name)
            values = _values(name, spec[name], bounds)
            for value in values:
                with_values(params, {name: value})
            integer = bounds is not None and bounds.integer
            typed = tuple(sorted({int(v) if integer else float(v) for v in values}))
            dimensions.append(Dimension(name, typed))
        space = cls(tuple(dimensions))
        if space.size > MAX_GRID:
            raise ProfileError(f"tune.space has {space.size:,} points (more than {MAX_GRID:,}): use coarser steps")
        return space

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @property
    def size(self) -> int:
        return int(np.prod([len(d.values) for d in self.dimensions], dtype=np.int64)) if self.dimensions else 1

    def point(self, index: int) -> dict[str, float | int]:
        """The grid point of ``index`` (mixed radix, the last dimension fastest)."""
        point: dict[str, float | int] = {}
        for dimension in reversed(self.dimensions):
            index, digit = divmod(index, len(dimension.values))
            point[dimension.name] = dimension.values[digit]
        return {name: point[name] for name in self.names}

    def points(self, max_sets: int, seed: int) -> list[dict[str, float | int]]:
        """Every grid point when there are at most ``max_sets``, else ``max_sets`` distinct points drawn with
        ``seed``: the same space, budget and seed give the same points in the same order."""
        if self.size <= max_sets:
            return [self.point(i) for i in range(self.size)]
        chosen = np.random.default_rng(seed).choice(self.size, size=max_sets, replace=False)
        return [self.point(int(i)) for i in np.sort(chosen)]
