"""The auto-tuner's tables and STEP1_BASELINE_SUMMARY.md: baseline, each fold, the decision and why.

The summary follows the seed's first step (baseline, attempts, Go/No-Go) with walk-forward folds as the
attempts, so a trader reads in one file what was tried, what carried over to unseen hours, and what to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import SUMMARY, names
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.domain.tuning.search_space import point_of
from shadow_pipeline.domain.tuning.tuner import OBJECTIVES, Evaluation, Search
from shadow_pipeline.domain.tuning.walk_forward import WalkForward

SUMMARY_FILE = "STEP1_BASELINE_SUMMARY.md"
TUNED_FILE = "TUNED_PROFILES.json"
HEATMAP_FILE = "objective_heatmap.png"
FOLDS_FILE = "walk_forward.png"
KPI_COLUMNS = tuple(n for n in names(SUMMARY) if n != "profile")
# The winner's KPIs on the judged hour, in the fold table: what `shadow` with the tuned profile reproduces.
OUT_OF_SAMPLE_KPIS = (*KPI_COLUMNS, "pnl")


def fold_table(walk: WalkForward, objective: str) -> pd.DataFrame:
    """One row per fold: the hours, the winner, in-sample and out-of-sample objective and verdicts."""
    rows = []
    for number, fold in enumerate(walk.folds, start=1):
        rows.append(
            {
                "fold": number,
                "train_hours": ", ".join(fold.train),
                "test_hour": fold.test,
                "winner": _point(fold.in_sample.point),
                f"in_sample_{objective}": fold.in_sample.objective,
                f"out_of_sample_{objective}": fold.out_of_sample.objective,
                "degradation": fold.degradation,
                "pbo": fold.overfitting.pbo,
                f"base_out_of_sample_{objective}": fold.base_out_of_sample.objective,
                "in_sample_verdict": fold.in_sample.verdict.label,
                "out_of_sample_verdict": fold.out_of_sample.verdict.label,
                **{f"out_of_sample_{name}": fold.out_of_sample.kpis.get(name) for name in OUT_OF_SAMPLE_KPIS},
            }
        )
    return pd.DataFrame(rows)


def top_table(ranking: Sequence[Evaluation], objective: str, count: int) -> pd.DataFrame:
    """The best ``count`` sets of a ranking: their values, objective, verdict and first failed gate."""
    rows = []
    for rank, evaluation in enumerate(ranking[:count], start=1):
        rows.append(
            {
                "rank": rank,
                **evaluation.point,
                objective: evaluation.objective,
                "valid_windows": evaluation.kpis.get("valid_windows"),
                "maker_taker_ratio": evaluation.kpis.get("maker_taker_ratio"),
                "risk_ratio": evaluation.kpis.get("risk_ratio"),
                "verdict": evaluation.verdict.label,
                "failed": "; ".join(evaluation.verdict.reasons[:2]),
                "base": evaluation.index == 0,
            }
        )
    return pd.DataFrame(rows)


def changes_table(base: StrategyParams, tuned: StrategyParams, names_: Sequence[str]) -> pd.DataFrame:
    """Each searched parameter: the base profile's value beside the tuned one."""
    before, after = point_of(base, names_), point_of(tuned, names_)
    return pd.DataFrame(
        [{"parameter": n, "base": before[n], "tuned": after[n], "changed": before[n] != after[n]} for n in names_]
    )


def kpi_comparison(walk: WalkForward) -> pd.DataFrame:
    """Out-of-sample KPIs of the tuned walk beside the base profile's on the same judged hours."""
    return pd.DataFrame(
        [
            {"kpi": name, "base": walk.base_kpis.get(name), "tuned": walk.kpis.get(name)}
            for name in (*KPI_COLUMNS, "pnl_bps")
        ]
    )


def _point(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in point.items())


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g") if len(frame) else "_none_"


def _overfitting_line(walk: WalkForward, search: Search) -> str:
    """PBO beside the in-sample and out-of-sample objective, as the Go reads them."""
    newest, objective = walk.folds[-1], search.objective
    return (
        f"Overfitting: {newest.overfitting.describe()}; a Go needs PBO < {search.max_pbo:g}. The tuned set's "
        f"{objective}: {newest.in_sample.objective:.4g} in sample, {newest.out_of_sample.objective:.4g} out of "
        f"sample (base profile out of sample: {newest.base_out_of_sample.objective:.4g}). See docs/tuning.md."
    )


def render_summary(
    walk: WalkForward,
    base: StrategyParams,
    search: Search,
    context: Mapping[str, Any],
    top: pd.DataFrame,
) -> str:
    """STEP1_BASELINE_SUMMARY.md. ``context``: symbol, profile, window_seconds, fill_model, tuned_file,
    tuned_profile, reproduce (the shadow command), live_ready, figure files."""
    objective = search.objective
    decision = walk.decision
    lines = [
        f"# Step 1: baseline and auto-tune, {context['symbol']}, profile {context['profile']}",
        "",
        f"**Decision: {decision.label}** on {len(walk.folds)} out-of-sample hour(s) "
        f"({', '.join(walk.tested_hours)}), {walk.kpis.get('valid_windows')} valid windows of "
        f"{context['window_seconds']:g} s, judged by the profile's gates with the tuned parameters never fitted on "
        "the hour they are judged on.",
        "",
    ]
    lines += [_overfitting_line(walk, search), ""]
    if decision.go:
        lines.append(f"Every gate passes out of sample: the tuned profile is live-ready ({context['live_ready']}).")
    else:
        lines += ["Why not:", *(f"- {reason}" for reason in decision.reasons), ""]
        lines.append("The tuned profile is written for inspection and is **not live-ready**.")
    lines += [
        "",
        "## Baseline",
        "",
        f"The base profile `{base.profile}` on the same judged hours: **{walk.base_verdict.label}**"
        + (f" ({'; '.join(walk.base_verdict.reasons)})" if walk.base_verdict.reasons else ""),
        "",
        _md(kpi_comparison(walk)),
        "",
        "## Search",
        "",
        f"- objective: `{objective}` ({OBJECTIVES[objective]}), maximized among sets that pass every gate; sets "
        "failing gates rank after them by the number of failed gates",
        f"- fill model: {context['fill_model']}",
        f"- space: {search.space.size:,} points; "
        + (
            f"the whole grid per fold (max_sets {search.max_sets})"
            if search.space.size <= search.max_sets
            else f"a seeded sample of {search.max_sets} per fold (seed {search.seed})"
        )
        + ", plus the base profile",
        *(f"  - `{d.name}`: {', '.join(f'{v:g}' for v in d.values)}" for d in search.space.dimensions),
        "",
        "## Walk-forward folds",
        "",
        _md(fold_table(walk, objective)),
        "",
        f"![in-sample against out-of-sample per fold]({context['folds_file']})",
        "",
        "## Tuned profile",
        "",
        f"The newest fold's winner, profile `{context['tuned_profile']}` in `{context['tuned_file']}`:",
        "",
        _md(changes_table(base, walk.tuned, search.space.names)),
        "",
        "Reproduce its out-of-sample KPIs on the newest hour:",
        "",
        f"    {context['reproduce']}",
        "",
        f"## Top {len(top)} of the newest fold (in sample)",
        "",
        _md(top),
        "",
        f"![{objective} over the two most influential parameters]({context['heatmap_file']})",
        "",
    ]
    return "\n".join(lines)
