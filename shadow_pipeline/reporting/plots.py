"""Plots for reports: KPIs over windows against the gates, the tuner's objective landscape and folds, and the
per-order reconciliation (groups, fill-time errors, the net_bps waterfall, calibration)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: plots are written to files and embedded in Dagster metadata

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.gates import Gate


def kpi_plot_png(iterations: pd.DataFrame, gates: list[Gate], title: str) -> bytes:
    """One panel per gated KPI: the value of every window (valid ones filled), the threshold dashed."""
    figure, axes = plt.subplots(len(gates), 1, figsize=(8, 1.9 * len(gates)), sharex=True, squeeze=False)
    start = pd.to_datetime(iterations["window_start"], utc=True) if len(iterations) else pd.Series(dtype=object)
    valid = iterations["valid"].to_numpy(dtype=bool) if len(iterations) else np.zeros(0, dtype=bool)
    for axis, gate in zip(axes[:, 0], gates, strict=True):
        values = iterations[gate.kpi] if len(iterations) else pd.Series(dtype=float)
        axis.plot(start, values, color="0.6", linewidth=0.8)
        axis.scatter(start[valid], values[valid], s=10, color="tab:blue", label="valid window")
        axis.scatter(start[~valid], values[~valid], s=10, facecolors="none", edgecolors="tab:gray", label="invalid")
        axis.axhline(gate.threshold, color="tab:red", linestyle="--", linewidth=1, label=gate.rule)
        axis.set_ylabel(gate.kpi, fontsize=8)
        axis.legend(fontsize=7, loc="best")
        axis.tick_params(labelsize=7)
    axes[0, 0].set_title(title, fontsize=9)
    figure.autofmt_xdate()
    figure.tight_layout()
    return _png(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG inline in Markdown, which Dagster's UI renders in an asset's metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def objective_heatmap_png(grid: pd.DataFrame, objective: str, title: str) -> bytes:
    """The best objective at each pair of values of two parameters (rows: ``grid.index``, columns: its columns);
    blank cells were not sampled."""
    figure, axis = plt.subplots(figsize=(1.2 + 0.9 * max(len(grid.columns), 2), 1.2 + 0.6 * max(len(grid), 2)))
    values = grid.to_numpy(dtype=np.float64)
    image = axis.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", aspect="auto", origin="lower")
    axis.set_xticks(range(len(grid.columns)), [_label(v) for v in grid.columns], fontsize=7)
    axis.set_yticks(range(len(grid.index)), [_label(v) for v in grid.index], fontsize=7)
    axis.set_xlabel(str(grid.columns.name or ""), fontsize=8)
    axis.set_ylabel(str(grid.index.name or ""), fontsize=8)
    for (row, column), value in np.ndenumerate(values):
        if np.isfinite(value):
            axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=6)
    figure.colorbar(image, ax=axis, label=objective)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def folds_png(folds: pd.DataFrame, objective: str, threshold: float | None, title: str) -> bytes:
    """In-sample against out-of-sample objective per walk-forward fold (``folds``: test hour, in/out columns)."""
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(folds) + 2), 3))
    x = np.arange(len(folds))
    axis.bar(x - 0.2, folds[f"in_sample_{objective}"], width=0.4, label="in sample (tuned on)", color="tab:blue")
    judged = folds[f"out_of_sample_{objective}"]
    axis.bar(x + 0.2, judged, width=0.4, label="out of sample (judged)", color="tab:orange")
    if threshold is not None:
        axis.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"gate {threshold:g}")
    axis.set_xticks(x, [str(h)[5:] for h in folds["test_hour"]], fontsize=7)
    axis.set_xlabel("judged hour", fontsize=8)
    axis.set_ylabel(objective, fontsize=8)
    axis.legend(fontsize=7)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def confusion_png(confusion: pd.DataFrame, title: str) -> bytes:
    """Orders per reconciliation group (left) and the base quantity each side filled in it (right)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    x = np.arange(len(confusion))
    labels = [str(g) for g in confusion["group"]]
    left.bar(x, confusion["orders"], color=["tab:green", "tab:red", "tab:orange", "tab:gray"][: len(x)])
    left.set_xticks(x, labels, fontsize=7)
    left.set_ylabel("orders", fontsize=8)
    right.bar(x - 0.2, confusion["shadow_filled_qty"], width=0.4, label="shadow filled", color="tab:blue")
    right.bar(x + 0.2, confusion["real_filled_qty"], width=0.4, label="really filled", color="tab:orange")
    right.set_xticks(x, labels, fontsize=7)
    right.set_ylabel("base quantity", fontsize=8)
    right.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def fill_time_png(errors_ms: np.ndarray, title: str) -> bytes:
    """Histogram of real - shadow first-fill time of the orders filled in both, the median dashed."""
    figure, axis = plt.subplots(figsize=(7, 3))
    if len(errors_ms):
        axis.hist(errors_ms, bins=min(50, max(5, len(errors_ms) // 5)), color="tab:blue")
        median = float(np.median(errors_ms))
        axis.axvline(median, color="tab:red", linestyle="--", linewidth=1, label=f"median {median:.4g} ms")
        axis.legend(fontsize=7)
    else:
        axis.text(0.5, 0.5, "no order filled in both", ha="center", va="center", transform=axis.transAxes)
    axis.axvline(0.0, color="0.4", linewidth=0.8)
    axis.set_xlabel("real first fill - shadow first fill (ms)", fontsize=8)
    axis.set_ylabel("orders", fontsize=8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def waterfall_png(start: float, steps: pd.DataFrame, end: float, title: str) -> bytes:
    """The shadow's net_bps, each step's component floating from where the previous left off, the real net_bps.
    ``steps``: ``step``, ``component_bps`` and ``net_bps_after`` per step, in order."""
    figure, axis = plt.subplots(figsize=(8, 3.2))
    labels = ["shadow", *[str(s) for s in steps["step"]], "real"]
    after = steps["net_bps_after"].to_numpy(dtype=np.float64)
    change = steps["component_bps"].to_numpy(dtype=np.float64)
    bottoms = np.concatenate(([0.0], after - change, [0.0]))
    heights = np.concatenate(([start], change, [end]))
    colours = ["tab:blue", *["tab:green" if c >= 0 else "tab:red" for c in change], "tab:orange"]
    x = np.arange(len(labels))
    axis.bar(x, np.nan_to_num(heights), bottom=np.nan_to_num(bottoms), color=colours)
    for i, value in enumerate(heights):
        axis.text(i, np.nan_to_num(bottoms[i] + max(value, 0.0)), f"{value:+.3g}", ha="center", va="bottom", fontsize=7)
    axis.axhline(0.0, color="0.4", linewidth=0.8)
    axis.set_xticks(x, labels, fontsize=7, rotation=15)
    axis.set_ylabel("net_bps", fontsize=8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def reliability_png(calibration: pd.DataFrame, brier: float, title: str) -> bytes:
    """Predicted fill probability against the realized fill rate per bin (the diagonal is perfect calibration),
    and the orders per bin below."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5, 5), sharex=True, height_ratios=[3, 1])
    centres = ((calibration["low"] + calibration["high"]) / 2).to_numpy(dtype=np.float64)
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfectly calibrated")
    top.plot(calibration["mean_predicted"], calibration["fill_rate"], marker="o", color="tab:blue", label="orders")
    top.set_ylabel("realized fill rate", fontsize=8)
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.legend(fontsize=7, loc="upper left")
    top.set_title(f"{title} (Brier {brier:.4g})", fontsize=9)
    bottom.bar(centres, calibration["orders"], width=0.09, color="tab:gray")
    bottom.set_xlabel("predicted p_fill", fontsize=8)
    bottom.set_ylabel("orders", fontsize=8)
    figure.tight_layout()
    return _png(figure)


def reliability_models_png(models: Mapping[str, tuple[pd.DataFrame, float, float]], title: str) -> bytes:
    """The reliability curves of several queue models on the same orders, each labelled with its Brier score."""
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfectly calibrated")
    for label, (table, brier, _) in models.items():
        shown = table[table["orders"] > 0]
        axis.plot(shown["mean_predicted"], shown["fill_rate"], marker="o", label=f"{label} (Brier {brier:.3g})")
    axis.set_xlabel("predicted p_fill", fontsize=8)
    axis.set_ylabel("realized fill rate", fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_ylim(-0.02, 1.02)
    axis.legend(fontsize=7, loc="upper left")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def profiles_png(snapshots: Sequence[Mapping[str, Any]], title: str) -> bytes:
    """One panel per gate, one bar per profile in rank order (its value written on it): green where the gate
    passed, red where not, each profile's threshold as a dashed tick over its bar (profiles may differ in gates)."""
    gates = [str(gate["kpi"]) for gate in snapshots[0]["gates"]]
    figure, axes = plt.subplots(len(gates), 1, figsize=(max(4.0, 1.1 * len(snapshots) + 2), 1.7 * len(gates)))
    labels = [str(s["profile"]) for s in snapshots]
    x = np.arange(len(snapshots))
    for axis, kpi in zip(np.atleast_1d(axes), gates, strict=True):
        rows = [{str(g["kpi"]): g for g in s["gates"]}.get(kpi, {}) for s in snapshots]
        values = [np.nan if row.get("value") is None else float(row["value"]) for row in rows]
        colours = ["tab:green" if row.get("passed") else "tab:red" for row in rows]
        bars = axis.bar(x, np.nan_to_num(values), color=colours, width=0.6)
        axis.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.3g}" for v in values], fontsize=6)
        for place, row in enumerate(rows):
            if row.get("threshold") is not None:
                axis.hlines(float(row["threshold"]), place - 0.4, place + 0.4, colors="0.2", linestyles="--")
        axis.set_xticks(x, labels, fontsize=7)
        axis.set_ylabel(kpi, fontsize=8)
        axis.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].set_title(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)
