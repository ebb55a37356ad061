"""The report pictures other than the fills' (test_pnl_plots.py): the KPI plot, the tuner's heatmap and folds, and
the profiles side by side. Each PNG is decoded as a report stores it: its size follows its panels, and every panel
holds data drawn in colour (axes, text and grid are black or grey), so a blank or missing panel fails."""

from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.gates import judge, kpi_gates
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.reporting.plots import folds_png, kpi_plot_png, objective_heatmap_png, profiles_png
from shadow_pipeline_tests.shadow_helpers import synthetic_ticks

DPI = 90  # reporting.plots._png's


def _pixels(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]


def _colour_per_band(png: bytes, bands: int) -> list[float]:
    """Share of saturated pixels in each of ``bands`` equal horizontal strips (one strip per stacked panel)."""
    pixels = _pixels(png)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.25
    return [float(strip.mean()) for strip in np.array_split(saturated, bands, axis=0)]


@pytest.fixture(scope="module")
def iterations() -> tuple[pd.DataFrame, list]:
    ticks = synthetic_ticks("BTCUSDT", 120)
    params, thresholds = resolve(load_profiles(), "moderate", "BTCUSDT")
    windows = iteration_kpis(ticks, simulate(ticks, params), params, thresholds, 10.0)
    return windows, kpi_gates(thresholds)


def test_kpi_plot_has_a_panel_with_data_per_gate(iterations: tuple[pd.DataFrame, list]) -> None:
    windows, gates = iterations
    png = kpi_plot_png(windows, gates, "BTCUSDT test")
    height, width = _pixels(png).shape[:2]
    assert (width, height) == (8 * DPI, round(1.9 * len(gates) * DPI))
    assert min(_colour_per_band(png, len(gates))) > 0.001  # the windows (blue) and the gate (red) in every panel
    assert max(_colour_per_band(kpi_plot_png(windows.iloc[:0], gates, "empty"), len(gates))) < 0.01


def test_heatmap_colours_the_sampled_cells_only() -> None:
    grid = pd.DataFrame(
        [[-1.0, 0.5, np.nan], [0.2, 1.5, -0.3]],
        index=pd.Index([1, 2], name="max_inventory"),
        columns=pd.Index([0.0, 1.0, 2.0], name="offset_ticks"),
    )
    png = objective_heatmap_png(grid, "net_bps", "heatmap test")
    full = float(np.mean(_colour_per_band(png, 1)))
    blank = grid.copy() * np.nan
    assert full > 0.2
    # with no sampled cell only the colour bar is left
    assert float(np.mean(_colour_per_band(objective_heatmap_png(blank, "net_bps", "none"), 1))) < full / 2


def test_folds_draw_in_and_out_of_sample_bars() -> None:
    folds = pd.DataFrame(
        {
            "test_hour": ["2024-08-09-01:00", "2024-08-09-02:00"],
            "in_sample_net_bps": [1.0, 2.0],
            "out_of_sample_net_bps": [-0.5, 0.7],
        }
    )
    pixels = _pixels(folds_png(folds, "net_bps", 0.0, "folds test"))
    blue = np.array([0.12, 0.47, 0.71])  # tab:blue, in sample
    orange = np.array([1.0, 0.5, 0.05])  # tab:orange, out of sample
    for colour in (blue, orange):
        assert (np.abs(pixels - colour).max(axis=2) < 0.08).mean() > 0.005, colour


def test_profiles_side_by_side_has_one_panel_per_gate() -> None:
    _, thresholds = resolve(load_profiles(), "moderate", "BTCUSDT")
    kpis = {"valid_windows": 60, "maker_taker_ratio": 0.9, "net_bps": 0.1, "p95_latency_ms": 10.0, "risk_ratio": 0.1}
    snapshots = []
    for profile, shift in (("good", 1.0), ("bad", -10.0)):
        row = {**kpis, "net_bps": kpis["net_bps"] + shift}
        verdict = judge(row, thresholds)
        gates = [o.as_dict() for o in verdict.outcomes]
        snapshots.append({"profile": profile, "gates": gates, "verdict": verdict.label})
    png = profiles_png(snapshots, "profiles test")
    bands = _colour_per_band(png, len(snapshots[0]["gates"]))
    assert min(bands) > 0.005
    pixels = _pixels(png)
    red = (np.abs(pixels - np.array([0.84, 0.15, 0.16])).max(axis=2) < 0.08).mean()
    assert red > 0.001  # "bad" misses net_bps: its bar is red
