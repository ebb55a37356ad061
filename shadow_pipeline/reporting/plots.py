"""KPI-over-windows plots: where a partition's windows sit against each gate's threshold."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: plots are written to files and embedded in Dagster metadata

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from shadow_pipeline.domain.gates import Gate


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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG inline in Markdown, which Dagster's UI renders in an asset's metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
