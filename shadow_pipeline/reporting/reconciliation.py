"""ORDER_RECONCILIATION.json and .md of one (hour, symbol), and their plots: every order of the bot matched with
the shadow's outcome and the real one (domain/validation/reconciliation.py; docs/reconciliation.md).

The JSON holds the aggregates a tool reads (the per-order table is the asset's value, in the asset store); the
Markdown is for a person: the gates first, then each table with the plot that shows it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shadow_pipeline.domain.validation.order_fit import SelfCalibration
from shadow_pipeline.domain.validation.reconciliation import BOTH, Reconciliation, ReconciliationGate
from shadow_pipeline.reporting.plots import confusion_png, fill_time_png, reliability_png, waterfall_png
from shadow_pipeline.reporting.snapshot import write_atomically

REPORT_JSON = "ORDER_RECONCILIATION.json"
REPORT_MD = "ORDER_RECONCILIATION.md"
PLOT_FILES = {
    "confusion": "order_confusion.png",
    "fill_time": "fill_time_error.png",
    "waterfall": "net_bps_waterfall.png",
    "reliability": "fill_reliability.png",
    "models": "fill_reliability_by_model.png",
}
FITTED_PROFILE_FILE = "FITTED_PROFILE.json"


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python ones, NaN as null (undefined), infinities as text."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def reconciliation_plots(result: Reconciliation, title: str) -> dict[str, bytes]:
    """The four PNGs, keyed as :data:`PLOT_FILES`."""
    errors = result.orders.loc[result.orders["group"] == BOTH, "fill_time_error_ms"].to_numpy(dtype=float)
    return {
        "confusion": confusion_png(result.confusion, f"{title}: orders by outcome"),
        "fill_time": fill_time_png(errors, f"{title}: fill-time error of orders filled in both"),
        "waterfall": waterfall_png(
            result.shadow_net_bps, result.waterfall, result.real_net_bps, f"{title}: net_bps, shadow to real"
        ),
        "reliability": reliability_png(result.calibration, result.brier, f"{title}: p_fill calibration"),
    }


def _table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g")


def write_reconciliation_reports(
    folder: Path,
    result: Reconciliation,
    verdicts: Sequence[ReconciliationGate],
    notes: Mapping[str, Any],
    plots: Mapping[str, bytes],
    calibration: SelfCalibration | None = None,
) -> Path:
    """Write the JSON, the Markdown and the plots (``reconciliation_plots``) into ``folder``; ``notes`` names
    the run (``hour``, ``symbol``, ``profile``, ``shadow``, ``reality`` at least). Returns the JSON's path."""
    for name, png in plots.items():
        write_atomically(folder / PLOT_FILES[name], png)
    gate_rows = pd.DataFrame(
        [
            {
                "gate": g.metric,
                "value": g.value,
                "rule": g.rule,
                "status": "PASS" if g.passed else "FAIL",
                "note": g.note,
            }
            for g in verdicts
        ]
    )
    status = "PASS" if all(g.passed for g in verdicts) else "FAIL"
    document = {
        **{k: _plain(v) for k, v in notes.items()},
        "status": status,
        "summary": {k: _plain(v) for k, v in result.summary().items()},
        "gates": _records(gate_rows),
        "confusion": _records(result.confusion),
        "fill_time_quantiles_ms": _records(result.fill_time),
        "markouts": _records(result.markouts),
        "waterfall": _records(result.waterfall),
        "calibration": _records(result.calibration),
        "notes": list(result.notes),
        "plots": {name: PLOT_FILES[name] for name in plots},
        **({} if calibration is None else {"self_calibration": _calibration_json(calibration)}),
    }
    path = folder / REPORT_JSON
    write_atomically(path, json.dumps(document, indent=2, allow_nan=False).encode())
    summary = result.summary()
    lines = [
        f"# Order reconciliation: {notes['symbol']} {notes['hour']}",
        "",
        f"**Status: {status}**. {summary['orders']} orders of the bot, profile `{notes['profile']}`; shadow: "
        f"{notes['shadow']}; reality: {notes['reality']}.",
        "",
        _table(gate_rows),
        "",
        *(f"- {note}" for note in result.notes),
        "",
        "## Which orders filled",
        "",
        f"Precision {summary['precision']:.4g} (filled in both / filled by the shadow), recall "
        f"{summary['recall']:.4g} (filled in both / really filled).",
        "",
        _table(result.confusion),
        "",
        f"![orders by outcome]({PLOT_FILES['confusion']})",
        "",
        "## When and how much (orders filled in both)",
        "",
        f"Fill-time error (real first fill - shadow first fill): median {summary['fill_time_median_ms']:.4g} ms, "
        f"p90 {summary['fill_time_p90_ms']:.4g} ms, mean {summary['fill_time_mean_ms']:.4g} ms. Filled quantity "
        f"(real - shadow): mean |error| {summary['qty_error_abs_mean']:.4g}, equal in "
        f"{summary['qty_equal_share']:.1%} of the orders.",
        "",
        _table(result.fill_time),
        "",
        f"![fill-time error]({PLOT_FILES['fill_time']})",
        "",
        "## Markouts and the net_bps gap",
        "",
        _table(result.markouts),
        "",
        f"net_bps: shadow {summary['shadow_net_bps']:.4g}, real {summary['real_net_bps']:.4g}, gap (real - shadow) "
        f"{summary['net_bps_gap']:.4g} bps, taken apart step by step (each step's component is the change of "
        "net_bps it makes; they sum to the gap):",
        "",
        _table(result.waterfall),
        "",
        f"![net_bps waterfall]({PLOT_FILES['waterfall']})",
        "",
        "## Calibration of p_fill",
        "",
        f"Brier score {summary['brier']:.4g}, log loss {summary['log_loss']:.4g}.",
        "",
        _table(result.calibration),
        "",
        f"![reliability]({PLOT_FILES['reliability']})",
        "",
        *([] if calibration is None else _calibration_lines(calibration)),
        "How to read this report: docs/reconciliation.md.",
    ]
    write_atomically(folder / REPORT_MD, ("\n".join(lines) + "\n").encode())
    return path


def _model_rows(calibration: SelfCalibration) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"queue model": label, "orders": int(table["orders"].sum()), "brier": brier, "log_loss": log_loss}
            for label, (table, brier, log_loss) in calibration.models.items()
        ]
    )


def _calibration_json(calibration: SelfCalibration) -> dict[str, Any]:
    fit = calibration.fit
    return {
        "models": _records(_model_rows(calibration)),
        "reliability": {label: _records(table) for label, (table, _, _) in calibration.models.items()},
        "fit": {
            "queue_prob": fit.queue_prob,
            "param": _plain(fit.param),
            "entry_latency_ms": fit.entry_latency_ms,
            "queue_interval": list(fit.queue_interval),
            "latency_interval_ms": list(fit.latency_interval),
            "summary": fit.summary,
        },
        "fit_table": _records(fit.table),
        "verdict_profile": calibration.verdict,
        "verdict_fitted": calibration.fitted_verdict,
        "fitted_reasons": list(calibration.fitted_reasons),
        "fitted_profile": FITTED_PROFILE_FILE,
    }


def _calibration_lines(calibration: SelfCalibration) -> list[str]:
    fit = calibration.fit
    changed = "changes" if calibration.fitted_verdict != calibration.verdict else "does not change"
    return [
        "## Calibration by queue model",
        "",
        "The same orders predicted by each queue model at the profile's latency (the profile's own first):",
        "",
        _table(_model_rows(calibration)),
        "",
        f"![reliability by model]({PLOT_FILES['models']})",
        "",
        "## Self-calibration: the queue model and latency the real fills say",
        "",
        f"Best fit (Bernoulli log-likelihood of every order's real outcome over the documented grid): {fit.summary}. "
        f"The fit {changed} the verdict: {calibration.verdict} under the profile's values, "
        f"{calibration.fitted_verdict} under the fitted ones"
        + (f" ({'; '.join(calibration.fitted_reasons)})" if calibration.fitted_reasons else "")
        + f". The profile with the fitted values: {FITTED_PROFILE_FILE}.",
        "",
        _table(fit.table.head(12)),
        "",
    ]
