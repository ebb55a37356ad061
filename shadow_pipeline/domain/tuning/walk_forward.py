"""Walk-forward validation of the tuner: choose on hours [t-k, t-1], judge the choice on hour t, move on.

A parameter set tuned and judged on the same hour is overfitted by construction, so the decision rests on
out-of-sample windows only: each fold's winner on the hour after its training hours, pooled over the folds and
judged by the profile's gates, min-windows included. The fold builder hands the tuner the training hours and
nothing else, so no tick at or after a judged window can move the choice (a test corrupts the future to prove
it). The tuned profile is the newest fold's winner: the one set whose out-of-sample KPIs are known, on the
newest hour, which is what ``shadow`` reproduces when rerun there with the tuned profile file. A Go needs
both the pooled windows and that hour to pass, and the newest fold's choice to be unlikely luck: its
probability of backtest overfitting over its training windows below the profile's ``max_pbo`` (``Decision``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from shadow_pipeline.domain.kpis.gates import GO, NO_GO, Verdict, judge
from shadow_pipeline.domain.strategies.profiles import StrategyParams, Thresholds
from shadow_pipeline.domain.tuning.overfitting import Overfitting
from shadow_pipeline.domain.tuning.search_space import with_values
from shadow_pipeline.domain.tuning.tuner import (
    Evaluation,
    Hour,
    Progress,
    Search,
    Tuning,
    hour_windows,
    judged,
    pooled_kpis,
    tune,
)


@dataclass(frozen=True)
class Fold:
    """One step of the walk: the training hours, the judged hour, the in-sample ranking and the winner's (and
    the base profile's) evaluation on the judged hour."""

    train: tuple[str, ...]
    test: str
    tuning: Tuning
    params: StrategyParams  # the winner
    out_of_sample: Evaluation
    base_out_of_sample: Evaluation
    windows: pd.DataFrame  # the winner's windows on the judged hour
    overfitting: Overfitting  # of the choice among the fold's sets, over its training windows

    @property
    def in_sample(self) -> Evaluation:
        return self.tuning.best

    @property
    def degradation(self) -> float:
        """In-sample minus out-of-sample objective: how much of the tuned edge did not carry over."""
        return self.in_sample.objective - self.out_of_sample.objective


@dataclass(frozen=True)
class Decision:
    """Go only when both hold out of sample: the procedure (every fold's winner on its judged hour, pooled) and
    the tuned set itself (the newest winner on its own judged hour), so a set that failed its hour is never
    certified by the other folds' windows; and when the tuned set's choice is measured unlikely to be luck
    (PBO below ``max_pbo``; an unmeasured PBO vouches for nothing)."""

    pooled: Verdict
    tuned: Verdict
    tuned_hour: str
    folds: int
    overfitting: Overfitting
    max_pbo: float

    @property
    def overfit(self) -> str | None:
        """Why the PBO gate fails, or None when it passes."""
        if not self.overfitting.measured:
            return f"tuned set's choice: {self.overfitting.describe()}"
        if self.overfitting.pbo >= self.max_pbo:
            return (
                f"tuned set's choice: PBO {self.overfitting.pbo:.2f} >= max_pbo {self.max_pbo:g} (the in-sample "
                f"winner is no better than the median set out of sample in {self.overfitting.pbo:.0%} of the splits)"
            )
        return None

    @property
    def go(self) -> bool:
        return self.pooled.go and self.tuned.go and self.overfit is None

    @property
    def label(self) -> str:
        return GO if self.go else NO_GO

    @property
    def reasons(self) -> list[str]:
        overfit = [self.overfit] if self.overfit else []
        if self.folds == 1:  # one fold: the pooled windows are the tuned set's own
            return [*self.pooled.reasons, *overfit]
        return [
            *(f"all judged hours: {reason}" for reason in self.pooled.reasons),
            *(f"tuned set on {self.tuned_hour}: {reason}" for reason in self.tuned.reasons),
            *overfit,
        ]


@dataclass(frozen=True)
class WalkForward:
    folds: list[Fold]
    kpis: dict[str, object]  # the winners' out-of-sample windows of every fold, pooled
    decision: Decision
    base_kpis: dict[str, object]  # the base profile on the same judged hours
    base_verdict: Verdict

    @property
    def tuned(self) -> StrategyParams:
        return self.folds[-1].params

    @property
    def tested_hours(self) -> list[str]:
        return [fold.test for fold in self.folds]


def fold_plan(keys: Sequence[str], train_hours: int) -> list[tuple[tuple[str, ...], str]]:
    """(training hours, judged hour) per fold, oldest first: each hour from the (k+1)-th on is judged once."""
    if train_hours < 1:
        raise ValueError(f"train_hours must be >= 1, got {train_hours}")
    if len(keys) < train_hours + 1:
        raise ValueError(
            f"walk-forward needs {train_hours + 1} hours ({train_hours} to tune on, 1 to judge), got {len(keys)}: "
            f"{', '.join(keys) or 'none'}; use fewer training hours or more hours"
        )
    return [(tuple(keys[t - train_hours : t]), keys[t]) for t in range(train_hours, len(keys))]


def walk_forward(
    hours: Sequence[Hour],
    base: StrategyParams,
    thresholds: Thresholds,
    search: Search,
    train_hours: int,
    workers: int | None = None,
    progress: Progress | None = None,
) -> WalkForward:
    """Tune on each fold's training hours, judge its winner on the next hour; ``hours`` oldest first."""
    keys = [hour.key for hour in hours]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError(f"hours must be distinct and oldest first, got {', '.join(keys)}")
    by_key = {hour.key: hour for hour in hours}
    plan = fold_plan(keys, train_hours)
    per_fold = len(search.candidates(base))
    total = per_fold * len(plan)

    def fold_progress(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda done, _all: progress(offset + done, total)

    folds: list[Fold] = []
    base_windows: list[pd.DataFrame] = []
    for number, (train, test) in enumerate(plan):
        training = [by_key[key] for key in train]  # the tuner sees these hours and no other
        tuning = tune(training, base, thresholds, search, workers, fold_progress(number * per_fold))
        winner = with_values(base, tuning.best.point)
        judged_hour = by_key[test]
        windows = hour_windows(judged_hour, winner, thresholds)
        out = judged(windows, thresholds, search.objective, tuning.best.point, tuning.best.index)
        base_windows.append(hour_windows(judged_hour, base, thresholds))
        base_out = judged(base_windows[-1], thresholds, search.objective)
        overfitting = tuning.overfitting(search.pbo_blocks)
        folds.append(Fold(train, test, tuning, winner, out, base_out, windows, overfitting))
    pooled = pooled_kpis(pd.concat([fold.windows for fold in folds], ignore_index=True))
    base_pooled = pooled_kpis(pd.concat(base_windows, ignore_index=True))
    newest = folds[-1]
    decision = Decision(
        judge(pooled, thresholds),
        newest.out_of_sample.verdict,
        newest.test,
        len(folds),
        newest.overfitting,
        search.max_pbo,
    )
    return WalkForward(folds, pooled, decision, base_pooled, judge(base_pooled, thresholds))
