"""How far the shadow's per-window predictions are from reality (an independent engine, or actual fills).

Per KPI of ``kpis.catalogue.ACCURACY``, over the windows both sides cover: MAPE (mean |predicted - actual| /
|actual|), the weighted percentage error WPE (sum |predicted - actual| / sum |actual|), the mean absolute error,
and the medians. MAPE explodes near zero, so each KPI gates on the error that stays meaningful for it (its
``accuracy`` in the catalogue): counts on WPE, net_bps on the absolute error in bps, the ratios on MAPE over
windows where the actual value is not 0. KPIs undefined without fills (``needs_fills``) are compared only on
windows with at least ``min_fills`` fills on both sides (a share of one fill is noise). Statuses: PASS below
15 %, WARN 15-30 %, FAIL above 30 % (absolute error: 1 and 2 bps).

A count is judged only when reality or the prediction holds at least ``MIN_EVENTS`` of it: a count of n events
scatters by about 1/sqrt(n) between two honest engines (Poisson), which reaches the 30 % FAIL limit below 12
events, so a WPE on fewer on both sides (two hedges against one) says nothing about the model. Such a KPI is
NO DATA, with the counts in ``note``: not a FAIL, and not a pass either.

A KPI the reality does not measure is NOT JUDGED, with the reason in ``note``: an engine reality (hftbacktest,
our queue engine) is fed the shadow's own latency model, so both sides carry the same latency KPIs and their
comparison could not fail; only a bot's fills measure them.

The partition's status (``Accuracy.worst``) follows the judged KPIs alone: FAIL if one fails, WARN if one is in
the WARN band, PASS otherwise; NO DATA and NOT JUDGED KPIs are counted apart and never turn a pass into a WARN.
With no KPI judged the status is NO DATA, which vouches for nothing: the FAIL gate fails on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import ACCURACY, TOTAL_FILLS, names

PASS, WARN, FAIL, NO_DATA, NOT_JUDGED = "PASS", "WARN", "FAIL", "NO DATA", "NOT JUDGED"
PERCENT_LIMITS = (0.15, 0.30)
BPS_LIMITS = (1.0, 2.0)  # of the "mae" metric, which only bps KPIs use
MIN_EVENTS = 12  # the smallest actual count whose Poisson scatter, 1/sqrt(n), is below the FAIL limit
# What an engine reality computes with the shadow's own model, not on its own: the latency KPIs.
MODELLED = frozenset(kpi.name for kpi in ACCURACY if kpi.unit == "ms")
SAME_MODEL = "the reality engine is fed the shadow's own latency model: both sides equal by construction"


@dataclass(frozen=True)
class Accuracy:
    """``table``: one row per KPI; ``windows``: the per-window predicted and actual values compared."""

    table: pd.DataFrame
    windows: pd.DataFrame

    def with_status(self, status: str) -> list[str]:
        return self.table.loc[self.table["status"] == status, "kpi"].tolist()

    @property
    def no_data(self) -> list[str]:
        return self.with_status(NO_DATA)

    @property
    def not_judged(self) -> list[str]:
        return self.with_status(NOT_JUDGED)

    @property
    def worst(self) -> str:
        """The worst status among the judged KPIs; NO DATA when none could be judged (nothing vouched for)."""
        statuses = set(self.table["status"])
        return next((status for status in (FAIL, WARN, PASS) if status in statuses), NO_DATA)


def _status(error: float, limits: tuple[float, float]) -> str:
    if np.isnan(error):
        return NO_DATA
    return PASS if error < limits[0] else WARN if error <= limits[1] else FAIL


def _errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    known = ~np.isnan(predicted) & ~np.isnan(actual)
    p, a = predicted[known], actual[known]
    diff = np.abs(p - a)
    nonzero = a != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(diff[nonzero] / np.abs(a[nonzero]))) if nonzero.any() else float("nan")
        total = float(np.sum(np.abs(a)))
        wpe = float(np.sum(diff) / total) if total > 0 else (0.0 if known.any() and not diff.any() else float("inf"))
    return {
        "windows": int(known.sum()),
        "mape": mape,
        "wpe": wpe if known.any() else float("nan"),
        "mae": float(np.mean(diff)) if known.any() else float("nan"),
        "median_predicted": float(np.median(p)) if known.any() else float("nan"),
        "median_actual": float(np.median(a)) if known.any() else float("nan"),
    }


def compare(
    predicted: pd.DataFrame,
    actual: pd.DataFrame,
    min_fills: int = 1,
    last: int | None = None,
    engine_reality: bool = False,
) -> Accuracy:
    """Join predictions and actual KPIs on the window end; ``last``: only the newest N windows predicted;
    ``engine_reality``: the actual KPIs come from an engine fed the shadow's latency model (``MODELLED``)."""
    repeated = predicted["window_end"].duplicated()
    if repeated.any():
        raise ValueError(f"{int(repeated.sum())} windows predicted more than once: predictions of different runs mixed")
    shared = ["window_end", *names(ACCURACY)]
    both = predicted[shared].merge(actual[shared], on="window_end", suffixes=("_predicted", "_actual"))
    both = both.sort_values("window_end", kind="stable")
    if last is not None:
        both = both.tail(last)
    fills = TOTAL_FILLS.name
    enough = (both[f"{fills}_predicted"] >= min_fills) & (both[f"{fills}_actual"] >= min_fills)
    rows = []
    for kpi in ACCURACY:
        gate = kpi.accuracy
        assert gate is not None  # ACCURACY holds the KPIs that have one
        scope = both[enough] if kpi.needs_fills else both
        errors = _errors(
            scope[f"{kpi.name}_predicted"].to_numpy(dtype=np.float64),
            scope[f"{kpi.name}_actual"].to_numpy(dtype=np.float64),
        )
        limits = BPS_LIMITS if gate == "mae" else PERCENT_LIMITS
        status, note = _status(errors[gate], limits), ""
        if kpi.integer:
            events = int(scope[f"{kpi.name}_actual"].sum())
            forecast = int(scope[f"{kpi.name}_predicted"].sum())
            if max(events, forecast) < MIN_EVENTS:  # 0 actual against 500 predicted is judged: a FAIL
                status = NO_DATA
                note = f"{events} actual vs {forecast} predicted: too few to judge (< {MIN_EVENTS})"
        if engine_reality and kpi.name in MODELLED:
            status, note = NOT_JUDGED, SAME_MODEL
        rows.append({"kpi": kpi.name, "gated_on": gate, **errors, "status": status, "note": note})
    return Accuracy(pd.DataFrame(rows), both.reset_index(drop=True))
