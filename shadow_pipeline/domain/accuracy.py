"""How far the shadow's per-window predictions are from reality (a queue-aware replay, or actual fills).

Per KPI, over the windows both sides cover: MAPE (mean |predicted - actual| / |actual|), the weighted
percentage error WPE (sum |predicted - actual| / sum |actual|), the mean absolute error, and the medians.
MAPE explodes near zero, so each KPI gates on the error that stays meaningful for it (``GATING``): counts on
WPE, net_bps on the absolute error in bps, the ratios on MAPE over windows where the actual value is not 0.
Ratio KPIs are compared only on windows with at least ``min_fills`` fills on both sides (a share of one fill
is noise). Statuses: PASS below 15 %, WARN 15-30 %, FAIL above 30 % (net_bps: 1 and 2 bps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PASS, WARN, FAIL, NO_DATA = "PASS", "WARN", "FAIL", "NO DATA"
PERCENT_LIMITS = (0.15, 0.30)
BPS_LIMITS = (1.0, 2.0)
RATIO_KPIS = ("maker_taker_ratio", "net_bps", "risk_ratio", "p95_latency_ms")
COUNT_KPIS = ("maker_count", "taker_count", "total_fills")
NEEDS_FILLS = ("maker_taker_ratio", "net_bps")
GATING = {
    "maker_taker_ratio": "mape",
    "net_bps": "mae",
    "risk_ratio": "mape",
    "p95_latency_ms": "mape",
    "maker_count": "wpe",
    "taker_count": "wpe",
    "total_fills": "wpe",
}


@dataclass(frozen=True)
class Accuracy:
    """``table``: one row per KPI; ``windows``: the per-window predicted and actual values compared."""

    table: pd.DataFrame
    windows: pd.DataFrame

    @property
    def worst(self) -> str:
        statuses = set(self.table["status"])
        return next((s for s in (FAIL, WARN, PASS) if s in statuses), NO_DATA)


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


def compare(predicted: pd.DataFrame, actual: pd.DataFrame, min_fills: int = 1, last: int | None = None) -> Accuracy:
    """Join predictions and actual KPIs on the window end; ``last``: only the newest N windows predicted."""
    repeated = predicted["window_end"].duplicated()
    if repeated.any():
        raise ValueError(f"{int(repeated.sum())} windows predicted more than once: predictions of different runs mixed")
    shared = ["window_end", *RATIO_KPIS, *COUNT_KPIS]
    both = predicted[shared].merge(actual[shared], on="window_end", suffixes=("_predicted", "_actual"))
    both = both.sort_values("window_end", kind="stable")
    if last is not None:
        both = both.tail(last)
    enough = (both["total_fills_predicted"] >= min_fills) & (both["total_fills_actual"] >= min_fills)
    rows = []
    for kpi in (*RATIO_KPIS, *COUNT_KPIS):
        scope = both[enough] if kpi in NEEDS_FILLS else both
        errors = _errors(
            scope[f"{kpi}_predicted"].to_numpy(dtype=np.float64), scope[f"{kpi}_actual"].to_numpy(dtype=np.float64)
        )
        gate = GATING[kpi]
        limits = BPS_LIMITS if gate == "mae" else PERCENT_LIMITS
        rows.append({"kpi": kpi, "gated_on": gate, **errors, "status": _status(errors[gate], limits)})
    return Accuracy(pd.DataFrame(rows), both.reset_index(drop=True))
