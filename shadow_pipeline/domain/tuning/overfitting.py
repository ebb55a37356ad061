"""How likely the tuner's winner is luck: the probability of backtest overfitting (PBO) by combinatorially
symmetric cross-validation (CSCV; Bailey, Borwein, Lopez de Prado and Zhu, "The probability of backtest
overfitting", 2015).

The tuning hours' windows, in time order, are cut into S contiguous blocks (S even) and each parameter set's
objective is formed per block. For every way of choosing S/2 blocks as in-sample (C(S, S/2) splits), the set best
in sample is ranked among all sets on the other S/2 blocks; its relative rank w in (0, 1) gives the logit
ln(w / (1 - w)). PBO is the share of splits whose logit is <= 0: how often the in-sample winner is no better than
the median set out of sample. Sets with no edge at all give PBO near 0.5 or above; a set whose edge is real in
every block gives PBO near 0. The performance degradation slope (out-of-sample objective of the in-sample winner
regressed on its in-sample objective over the splits) and the share of splits where the winner does worse out of
sample than the first column (the tuner's base profile) are reported beside PBO.

A block's objective is a ratio of sums (``numerators`` / ``weights``, e.g. net_bps weighted by the notional
marked out), so that blocks pool as the tuner pools windows; a set with no weight in a block (no fills) has no
objective there and ranks last, and a set with no weight anywhere is left out: never measured, it was never a
contender, and counting it would flatter the winner's rank.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

DEFAULT_BLOCKS = 16  # C(16, 8) = 12,870 splits: a fine PBO, and cheap for a few hundred sets
MAX_BLOCKS = 20  # C(20, 10) = 184,756 splits: beyond it the split matrix outgrows a tuning run's memory


@dataclass(frozen=True)
class Overfitting:
    """PBO and the degradation slope over ``sets`` distinct contenders, or why they could not be measured
    (``reason``; both NaN then)."""

    pbo: float
    slope: float
    blocks: int
    sets: int
    splits: int
    reason: str = ""
    below_base: float = float("nan")  # share of splits the winner does worse than column 0 out of sample

    @property
    def measured(self) -> bool:
        return not math.isnan(self.pbo)

    def describe(self) -> str:
        if not self.measured:
            return f"PBO not measured: {self.reason}"
        if self.reason:
            return f"PBO {self.pbo:.2f}: {self.reason}"
        return (
            f"PBO {self.pbo:.2f} ({self.splits:,} splits of {self.blocks} blocks, {self.sets} sets), "
            f"degradation slope {self.slope:.2f}, below the base profile out of sample in "
            f"{self.below_base:.0%} of the splits"
        )


def _unmeasured(reason: str, blocks: int, sets: int) -> Overfitting:
    return Overfitting(float("nan"), float("nan"), blocks, sets, 0, reason)


def splits(blocks: int) -> np.ndarray:
    """Every choice of blocks/2 of ``blocks`` as in-sample, one boolean row each."""
    chosen = np.array(list(itertools.combinations(range(blocks), blocks // 2)), dtype=np.intp)
    mask = np.zeros((len(chosen), blocks), dtype=bool)
    mask[np.arange(len(chosen))[:, None], chosen] = True
    return mask


def _ratio(numerators: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Objective per row and set; -inf where a set had no weight (ranks below every measured set)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weights > 0, numerators / weights, -np.inf)


def cscv(numerators: np.ndarray, weights: np.ndarray | None = None, blocks: int = DEFAULT_BLOCKS) -> Overfitting:
    """PBO of choosing the best column of a (windows x sets) matrix. A block's objective is the sum of its
    windows' ``numerators`` over the sum of their ``weights`` (same shape; default: 1 per finite numerator, the
    plain mean). Non-finite entries are no data; a block without weight has no objective for that set."""
    values = np.asarray(numerators, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"the objective matrix must be windows x sets, got shape {values.shape}")
    if blocks < 2 or blocks % 2 or blocks > MAX_BLOCKS:
        raise ValueError(f"blocks must be even, 2 to {MAX_BLOCKS}, got {blocks}")
    known = np.isfinite(values)
    mass = known.astype(np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    if mass.shape != values.shape:
        raise ValueError(f"weights of shape {mass.shape} for an objective matrix of shape {values.shape}")
    windows = values.shape[0]
    if windows < blocks:
        return _unmeasured(f"{windows} windows for {blocks} blocks: tune on more windows or fewer blocks", blocks, 0)
    mass = np.where(np.isfinite(mass) & (mass > 0), mass, 0.0)
    starts = np.array([part[0] for part in np.array_split(np.arange(windows), blocks)])
    block_sums = np.add.reduceat(np.where(known, values, 0.0), starts, axis=0)
    block_mass = np.add.reduceat(mass, starts, axis=0)
    # Contenders: sets measured somewhere (one that never traded was never a contender, and would flatter the
    # winner's rank), each distinct block series once (sets equal in every block are one choice, not a tie).
    measured = np.flatnonzero(block_mass.any(axis=0))
    _, first = np.unique(np.vstack([block_sums, block_mass])[:, measured], axis=1, return_index=True)
    keep = measured[np.sort(first)]
    block_sums, block_mass, sets = block_sums[:, keep], block_mass[:, keep], len(keep)
    if sets == 0:
        return _unmeasured("no parameter set has an objective (no set traded)", blocks, 0)
    if sets == 1:  # no choice was made, so no choice can be overfitted
        return Overfitting(0.0, float("nan"), blocks, 1, 0, "one distinct parameter set has an objective: no choice")
    inside = splits(blocks)
    outside = ~inside
    in_sample = _ratio(inside @ block_sums, inside @ block_mass)
    out_of_sample = _ratio(outside @ block_sums, outside @ block_mass)
    rows = np.arange(len(inside))
    best = np.argmax(in_sample, axis=1)  # ties: the lowest column, as the tuner keeps candidate order
    chosen = out_of_sample[rows, best][:, None]
    rank = (out_of_sample < chosen).sum(axis=1) + ((out_of_sample == chosen).sum(axis=1) + 1) / 2  # 1..sets
    share = rank / (sets + 1)
    logits = np.log(share / (1 - share))
    slope = _slope(in_sample[rows, best], chosen[:, 0])
    # Column 0 (the base profile in the tuner) is kept as the first of its series whenever it was measured.
    below_base = float(np.mean(chosen[:, 0] < out_of_sample[:, 0])) if keep[0] == 0 else float("nan")
    return Overfitting(float(np.mean(logits <= 0)), slope, blocks, sets, len(rows), below_base=below_base)


def _slope(in_sample: np.ndarray, out_of_sample: np.ndarray) -> float:
    """Least-squares slope of out-of-sample on in-sample objective over the splits where both are measured."""
    both = np.isfinite(in_sample) & np.isfinite(out_of_sample)
    x, y = in_sample[both], out_of_sample[both]
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])
