"""The PnL, inventory and fills-on-price pictures on a real simulation of the synthetic market: what each figure
draws (its numbers against the KPIs), and that each PNG has its size and a panel with data in it."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.fills import COLUMNS, fills_table
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.simulation.simulator import Simulation, simulate
from shadow_pipeline.domain.strategies.profiles import StrategyParams, Thresholds, load_profiles, resolve
from shadow_pipeline.reporting.pnl_plots import (
    FILL_PLOTS,
    FILLS_PLOT,
    INVENTORY_PLOT,
    PNL_PLOT,
    fill_plot_pngs,
    fills_on_price_figure,
    inventory_figure,
    pnl_figure,
    sparkline_png,
)
from shadow_pipeline_tests.shadow_helpers import synthetic_ticks

DPI = 90  # reporting.plots._png's
PARTS = ["spread capture", "adverse selection (markout)", "fees", "net"]


@dataclass(frozen=True)
class Run:
    ticks: pd.DataFrame
    simulation: Simulation
    params: StrategyParams
    thresholds: Thresholds
    table: pd.DataFrame


@pytest.fixture(scope="module")
def run() -> Run:
    ticks = synthetic_ticks("BTCUSDT", 120)
    params, thresholds = resolve(load_profiles(), "moderate", "BTCUSDT")
    simulation = simulate(ticks, params)
    return Run(ticks, simulation, params, thresholds, fills_table(simulation.fills, params))


def _labels(figure: plt.Figure) -> list[str]:
    legend = figure.axes[0].get_legend()
    return [text.get_text() for text in legend.get_texts()] if legend else []


def _coloured_share(figure: plt.Figure) -> float:
    """Share of the panel's pixels that are saturated colour (data drawn in tab: colours; axes, text and the mid
    are black or grey), read from the PNG as the report stores it."""
    figure.canvas.draw()
    box = figure.axes[0].get_window_extent()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    pixels = matplotlib.image.imread(io.BytesIO(buffer.getvalue()), format="png")[..., :3]
    scale = DPI / figure.dpi
    height = pixels.shape[0]
    panel = pixels[
        int(height - box.y1 * scale) : int(height - box.y0 * scale), int(box.x0 * scale) : int(box.x1 * scale)
    ]
    saturation = panel.max(axis=2) - panel.min(axis=2)
    return float((saturation > 0.25).mean())


def test_the_table_has_every_fill_of_the_simulation(
    run: Run,
) -> None:
    simulation, table = run.simulation, run.table
    assert list(table.columns) == list(COLUMNS) and len(table) == len(simulation.fills) > 10
    signed = np.where(table["side"] == "buy", 1.0, -1.0) * table["qty"]
    assert np.allclose(np.cumsum(signed), table["position_after"])  # each fill moves the position by its size
    assert table["order_id"].str.fullmatch(r"(bid|ask|hedge)-\d+").all()
    assert table["liquidity"].isin(["maker", "taker"]).all()


def test_pnl_parts_add_up_to_the_net_edge_of_the_kpis(
    run: Run,
) -> None:
    ticks, simulation, params, thresholds, table = run.ticks, run.simulation, run.params, run.thresholds, run.table
    figure = pnl_figure(table, "pnl")
    assert len(figure.axes) == 1 and _labels(figure) == PARTS
    finals = {
        line.get_label(): float(np.asarray(line.get_ydata(), dtype=np.float64)[-1])
        for line in figure.axes[0].get_lines()
        if line.get_label() in PARTS
    }
    assert finals["net"] == pytest.approx(
        finals["spread capture"] + finals["adverse selection (markout)"] + finals["fees"]
    )
    windows = iteration_kpis(ticks, simulation, params, thresholds, 10.0)
    net_quote = float(np.nansum(windows["net_bps"] * windows["markout_notional"]) / 1e4)
    assert finals["net"] == pytest.approx(net_quote, rel=1e-9) and finals["net"] != 0.0
    assert finals["fees"] == pytest.approx(-float(np.nansum(windows["fees_bps"] * windows["markout_notional"]) / 1e4))
    assert _coloured_share(figure) > 0.002


def test_inventory_is_drawn_against_both_limits(
    run: Run,
) -> None:
    simulation, params, table = run.simulation, run.params, run.table
    figure = inventory_figure(table, simulation.inventory, params.max_position, "inventory")
    assert _labels(figure) == ["position", "limit"]
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    dashed = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert sorted(float(np.asarray(line.get_ydata(), dtype=np.float64)[0]) for line in dashed) == [
        -params.max_position,
        params.max_position,
    ]
    path = np.asarray(lines["position"].get_ydata(), dtype=np.float64)
    assert path[0] == 0.0 and np.array_equal(path[1:-1], table["position_after"].to_numpy())
    assert _coloured_share(figure) > 0.002


def test_fills_on_price_marks_every_fill_by_side_and_liquidity(
    run: Run,
) -> None:
    simulation, table = run.simulation, run.table
    figure = fills_on_price_figure(table, simulation.inventory, "fills")
    labels = _labels(figure)
    assert labels[0] == "mid" and {"buy maker", "sell maker"} <= set(labels)
    marked = sum(np.asarray(c.get_offsets()).shape[0] for c in figure.axes[0].collections)
    assert marked == len(table)
    assert _coloured_share(figure) > 0.002


def test_pngs_have_their_size_and_an_empty_hour_draws_no_data(
    run: Run,
) -> None:
    simulation, params, table = run.simulation, run.params, run.table
    pngs = fill_plot_pngs(table, simulation.inventory, params.max_position, "BTCUSDT")
    assert list(pngs) == list(FILL_PLOTS)
    sizes = {plot: matplotlib.image.imread(io.BytesIO(png), format="png").shape[:2] for plot, png in pngs.items()}
    assert sizes == {PNL_PLOT: (288, 720), INVENTORY_PLOT: (288, 720), FILLS_PLOT: (324, 720)}
    for png in pngs.values():
        assert matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3].std() > 0.05
    empty = table.iloc[:0]
    assert _coloured_share(pnl_figure(empty, "none")) == 0.0  # the check above would catch a blank panel
    assert _labels(fills_on_price_figure(empty, simulation.inventory, "none")) == ["mid"]


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_sparkline_is_a_few_hundred_bytes_that_follow_the_values(direction: float) -> None:
    values = direction * np.cumsum(np.random.default_rng(3).uniform(0.0, 1.0, 500))
    png = sparkline_png(values)
    assert len(png) < 700  # its base64 Markdown stays under the UI's inline limit
    ink = _ink(png)
    assert ink.shape == (42, 216)
    rows = np.arange(ink.shape[0])[:, None]
    left, right = ink[:, :20], ink[:, -20:]
    height = (rows * left).sum() / left.sum() - (rows * right).sum() / right.sum()  # image rows grow downwards
    assert np.sign(height) == direction and abs(height) > 10
    limits = (float(np.abs(values).max() * 1.2), -float(np.abs(values).max() * 1.2))
    assert _ink(sparkline_png(values, limits)).sum() > ink.sum() + 100  # the dashed limits drawn too


def _ink(png: bytes) -> np.ndarray:
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    return (pixels if pixels.ndim == 2 else pixels[..., 0]) < 0.5
