"""The auto-tuner: parameter sets of a search space run through the shadow on the same hours, ranked by the
profile's objective with the Go/No-Go gates as constraints.

Every set is judged with the shadow's own code (``simulate`` under the profile's fill model, ``iteration_kpis``,
``aggregate``, ``judge``) hour by hour, exactly as the shadow runs a partition, so a tuned profile rerun by
``shadow`` gives the numbers the tuner reported. What depends on the ticks alone (the kernel's columns, the
windows, the latency legs) is built once per hour and shared by every set; sets are spread over the cores.
Walk-forward validation, which keeps the chosen set away from the hour it is judged on, is ``walk_forward.py``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.gates import Verdict, judge
from shadow_pipeline.domain.kpis.per_window import TickWindows, aggregate, iteration_kpis
from shadow_pipeline.domain.simulation.simulator import MarketColumns, simulate
from shadow_pipeline.domain.strategies.profiles import StrategyParams, Thresholds, TuneSettings
from shadow_pipeline.domain.tuning.overfitting import MAX_BLOCKS, Overfitting, cscv
from shadow_pipeline.domain.tuning.search_space import SearchSpace, point_of, with_values

NET_BPS, PNL_BPS = "net_bps", "pnl_bps"
OBJECTIVES = {
    NET_BPS: "markout edge after fees, bps of traded notional (notional-weighted over valid windows)",
    PNL_BPS: "PnL per traded notional, bps (PnL of all windows over the notional they traded)",
}
Progress = Callable[[int, int], None]  # (sets evaluated, sets in all)


@dataclass(frozen=True)
class Hour:
    """One hourly partition's ticks with what every parameter set reads of them, built once."""

    key: str
    ticks: pd.DataFrame
    market: MarketColumns
    windows: TickWindows

    @classmethod
    def of(cls, key: str, ticks: pd.DataFrame, params: StrategyParams, window_seconds: float) -> Hour:
        if ticks.empty:
            raise ValueError(f"hour {key}: no ticks")
        market = MarketColumns.of(ticks, params.tick_size, params.lot_step)
        return cls(key, ticks, market, TickWindows.of(ticks, window_seconds))


def hour_windows(hour: Hour, params: StrategyParams, thresholds: Thresholds) -> pd.DataFrame:
    """The shadow's windows of ``params`` on ``hour``: what ``shadow_iterations`` holds for that partition."""
    simulation = simulate(hour.ticks, params, hour.market)
    return iteration_kpis(hour.ticks, simulation, params, thresholds, hour.windows.duration_s, hour.windows)


def pooled_kpis(windows: pd.DataFrame) -> dict[str, Any]:
    """The report KPIs of windows from one or more hours (one profile and symbol), plus ``pnl_bps``."""
    kpis = {str(k): v for k, v in aggregate(windows).iloc[0].items()}
    traded = float(windows["traded_notional"].sum())
    kpis[PNL_BPS] = float(windows["pnl"].sum()) / traded * 1e4 if traded > 0 else float("nan")
    return kpis


def objective_terms(windows: pd.DataFrame, objective: str) -> np.ndarray:
    """Per window, the objective's numerator and weight (windows x 2): summed over any windows, their ratio is
    the objective ``pooled_kpis`` gives those windows, so the overfitting estimate can pool time blocks alike."""
    if objective == NET_BPS:  # notional-weighted over the valid windows' marked-out fills
        value = windows["net_bps"].to_numpy(dtype=np.float64)
        weight = windows["markout_notional"].to_numpy(dtype=np.float64)
        keep = windows["valid"].to_numpy(dtype=bool) & (weight > 0) & ~np.isnan(value)
        return np.column_stack([np.where(keep, value * weight, 0.0), np.where(keep, weight, 0.0)])
    pnl, traded = (windows[name].to_numpy(dtype=np.float64) for name in ("pnl", "traded_notional"))
    return np.column_stack([np.nan_to_num(pnl) * 1e4, np.nan_to_num(traded)])


@dataclass(frozen=True)
class Evaluation:
    """One parameter set judged on some hours: its point in the space, KPIs, verdict and objective value."""

    index: int  # candidate number; 0 is the base profile
    point: Mapping[str, float | int]
    kpis: Mapping[str, Any]
    verdict: Verdict
    objective: float  # NaN when the KPI could not be computed (no fills)
    # objective_terms of the windows judged, for the overfitting estimate (2 floats a window)
    terms: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), compare=False, repr=False)

    @property
    def failed_gates(self) -> int:
        return sum(not o.passed for o in self.verdict.outcomes)

    def rank_key(self) -> tuple[bool, bool, int, float, int]:
        """Sets that pass every gate first; then sets that traded (a set without fills has no objective and
        must not win by failing fewer gates than one that trades); then fewer failed gates, then the higher
        objective; ties keep the candidate order, so a ranking never depends on the order results arrive in."""
        unknown = math.isnan(self.objective)
        return (not self.verdict.go, unknown, self.failed_gates, math.inf if unknown else -self.objective, self.index)


def judged(
    windows: pd.DataFrame,
    thresholds: Thresholds,
    objective: str,
    point: Mapping[str, float | int] | None = None,
    index: int = 0,
) -> Evaluation:
    """The evaluation of a set from its windows (of one or more hours), judged on all of them together;
    ``objective`` is one of OBJECTIVES (``Search`` checks it)."""
    kpis = pooled_kpis(windows)
    value = kpis.get(objective)
    number = float(value) if value is not None else float("nan")
    terms = objective_terms(windows, objective)
    return Evaluation(index, dict(point or {}), kpis, judge(kpis, thresholds), number, terms)


def evaluate(
    hours: Sequence[Hour],
    params: StrategyParams,
    thresholds: Thresholds,
    objective: str,
    point: Mapping[str, float | int] | None = None,
    index: int = 0,
) -> Evaluation:
    """``params`` on every hour, each simulated on its own as the shadow runs partitions."""
    windows = pd.concat([hour_windows(hour, params, thresholds) for hour in hours], ignore_index=True)
    return judged(windows, thresholds, objective, point, index)


# The hours and gates a worker process evaluates candidates on, set once per pool (fork: shared, not copied).
_shared: dict[str, Any] = {}


def _init_worker(hours: Sequence[Hour], thresholds: Thresholds, objective: str) -> None:
    _shared.update(hours=hours, thresholds=thresholds, objective=objective)


def _evaluate_shared(job: tuple[int, StrategyParams, Mapping[str, float | int]]) -> Evaluation:
    index, params, point = job
    return evaluate(_shared["hours"], params, _shared["thresholds"], _shared["objective"], point, index)


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def evaluate_all(
    hours: Sequence[Hour],
    candidates: Sequence[tuple[StrategyParams, Mapping[str, float | int]]],
    thresholds: Thresholds,
    objective: str,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[Evaluation]:
    """Every candidate evaluated, in candidate order, on ``workers`` processes (default: every core)."""
    jobs = [(i, params, point) for i, (params, point) in enumerate(candidates)]
    count = min(workers or default_workers(), len(jobs))
    results: list[Evaluation] = []
    if count <= 1:
        for job in jobs:
            results.append(evaluate(hours, job[1], thresholds, objective, job[2], job[0]))
            if progress:
                progress(len(results), len(jobs))
        return results
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(count, context, initializer=_init_worker, initargs=(hours, thresholds, objective)) as pool:
        for result in pool.map(_evaluate_shared, jobs, chunksize=max(1, len(jobs) // (8 * count))):
            results.append(result)
            if progress:
                progress(len(results), len(jobs))
    return results


@dataclass(frozen=True)
class Search:
    """What a tuning run searches: the space, the objective, and the budget and seed of its sampler."""

    space: SearchSpace
    objective: str = TuneSettings.objective
    max_sets: int = TuneSettings.max_sets
    seed: int = TuneSettings.seed
    max_pbo: float = TuneSettings.max_pbo  # a Go needs the winner's probability of overfitting below this
    pbo_blocks: int = TuneSettings.pbo_blocks

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}")
        if not 0 < self.max_pbo <= 1:
            raise ValueError(f"max_pbo must be in (0, 1], got {self.max_pbo!r}")
        if self.pbo_blocks < 2 or self.pbo_blocks % 2 or self.pbo_blocks > MAX_BLOCKS:
            raise ValueError(f"pbo_blocks must be even, 2 to {MAX_BLOCKS}, got {self.pbo_blocks!r}")

    def candidates(self, base: StrategyParams) -> list[tuple[StrategyParams, dict[str, float | int]]]:
        """The base profile first, then the space's points (a point equal to the base is not run twice)."""
        start = point_of(base, self.space.names)
        points = [start, *(p for p in self.space.points(self.max_sets, self.seed) if p != start)]
        return [(with_values(base, point), point) for point in points]


@dataclass(frozen=True)
class Tuning:
    """Every candidate's in-sample evaluation, best first (``ranking[0]`` is the choice)."""

    ranking: list[Evaluation]

    @property
    def best(self) -> Evaluation:
        return self.ranking[0]

    def overfitting(self, blocks: int) -> Overfitting:
        """PBO of this ranking's choice over its windows (cut into ``blocks`` time blocks). The contenders are the
        sets of the winner's gate tier (as many gates passed, traded or not alike): among them the ranking picks
        by the objective alone, which is the choice CSCV replays on each half; a set of another tier was never
        picked for its objective. Sets in candidate order, so ties resolve as the ranking does; the tier is judged
        on all the windows, not per half (docs/tuning.md)."""
        tier = self.best.rank_key()[:3]
        ordered = sorted((e for e in self.ranking if e.rank_key()[:3] == tier), key=lambda e: e.index)
        terms = np.stack([e.terms for e in ordered], axis=1)  # windows x sets x 2
        return cscv(terms[:, :, 0], terms[:, :, 1], blocks)


def tune(
    hours: Sequence[Hour],
    base: StrategyParams,
    thresholds: Thresholds,
    search: Search,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Tuning:
    """Rank the search's candidates on ``hours`` (the in-sample hours only: the caller decides what the tuner
    may see). Deterministic: the same hours, base and search give the same ranking."""
    if not hours:
        raise ValueError("tuning needs at least one hour of ticks")
    evaluations = evaluate_all(hours, search.candidates(base), thresholds, search.objective, workers, progress)
    return Tuning(sorted(evaluations, key=Evaluation.rank_key))


def influence(ranking: Sequence[Evaluation], names: Sequence[str]) -> dict[str, float]:
    """Per parameter, how far the objective's mean moves across its values (the main effect's range): the
    larger, the more the parameter matters on these hours. Sets without an objective value are left out."""
    table = pd.DataFrame([{**e.point, "objective": e.objective} for e in ranking])
    table = table[np.isfinite(table["objective"].to_numpy(dtype=np.float64))]
    effects = {}
    for name in names:
        means = table.groupby(name)["objective"].mean() if len(table) else pd.Series(dtype=float)
        effects[name] = float(means.max() - means.min()) if len(means) > 1 else 0.0
    return effects


def objective_grid(ranking: Sequence[Evaluation], x: str, y: str | None = None) -> pd.DataFrame:
    """The best objective found at each (x, y) pair of values: rows are y's values, columns x's (NaN: no set).
    Without a second parameter, one row of the best objective per value of x."""
    table = pd.DataFrame([{**e.point, "objective": e.objective} for e in ranking])
    if y is None or y == x:
        best = table.groupby(x)["objective"].max().sort_index()
        return pd.DataFrame([best.to_numpy()], index=pd.Index(["best"]), columns=pd.Index(best.index, name=x))
    return table.pivot_table(index=y, columns=x, values="objective", aggfunc="max").sort_index().sort_index(axis=1)
