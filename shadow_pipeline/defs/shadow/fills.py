"""The ``shadow_fills`` output of ``shadow_iterations``: the simulated fills as a table, the per-window
ITER_SUMMARY files and the PnL, inventory and fills-on-price pictures, all from the simulation the KPIs came from
(built where the fills are, so nothing re-simulates to draw them)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.fills import MAKER, TAKER, fills_table
from shadow_pipeline.domain.kpis.run_notes import RunNotes
from shadow_pipeline.domain.simulation.simulator import Simulation
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.reporting.iter_summary import write_iteration_summaries
from shadow_pipeline.reporting.plots import markdown_image
from shadow_pipeline.reporting.pnl_plots import fill_plot_pngs, pnl_parts, sparkline_png
from shadow_pipeline.reporting.snapshot import write_atomically

PREVIEW_ROWS = 10
SHADOW_FILLS_DESCRIPTION = (
    "Every simulated fill of the hour, one row each: exchange time (ns and ISO), side, price, quantity, maker or "
    "taker, fee (quote currency, positive when paid), spread capture and markout in bps (at the profile's markout "
    "horizon, the numbers the net_bps KPI adds up), position after the fill and order id. Export it with "
    "`shadow-pipeline fills --hour H --symbol S --csv OUT` (docs/fills.md). The same run writes ITER_SUMMARY_<n>.json "
    "per window and the pictures pnl.png, inventory.png and fills_on_price.png into the partition's artifacts folder."
)


_TABLE_TYPES = {"i": "int", "f": "float", "b": "bool"}


def _table(frame: pd.DataFrame) -> dg.MetadataValue:
    """A table value, which the UI shows inline (a Markdown table this long would sit behind a click)."""
    schema = dg.TableSchema(
        [dg.TableColumn(str(c), _TABLE_TYPES.get(frame[c].dtype.kind, "string")) for c in frame.columns]
    )
    rows = [
        dg.TableRecord({str(k): None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()})
        for row in frame.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(rows, schema=schema)


def fills_output(
    simulation: Simulation, params: StrategyParams, iterations: pd.DataFrame, notes: RunNotes, folder: Path
) -> dg.Output[pd.DataFrame]:
    """The fills table with its files written to ``folder``; metadata: counts, a preview, the pictures."""
    fills = fills_table(simulation.fills, params)
    summaries = write_iteration_summaries(folder, iterations, notes, fills["ts"].to_numpy())
    title = f"{notes.symbol} {notes.hour}, profile {notes.profile}"
    pictures: dict[str, dg.MetadataValue] = {}
    for plot, png in fill_plot_pngs(fills, simulation.inventory, params.max_position, title).items():
        write_atomically(folder / plot.file, png)
        pictures[plot.file.removesuffix(".png")] = dg.MetadataValue.md(markdown_image(png, plot.alt))
        pictures[f"{plot.file.removesuffix('.png')}_file"] = dg.MetadataValue.path(str(folder / plot.file))
    net = np.cumsum(pnl_parts(fills)["net"])
    inventory = np.concatenate(([0.0], fills["position_after"].to_numpy(dtype=np.float64)))
    limit = params.max_position
    inline = {  # tiny enough that the UI renders them in the metadata table itself (docs/fills.md)
        "net_pnl_line": dg.MetadataValue.md(markdown_image(sparkline_png(net), "cumulative net PnL")),
        "inventory_line": dg.MetadataValue.md(markdown_image(sparkline_png(inventory, (limit, -limit)), "inventory")),
    }
    liquidity = fills["liquidity"]
    return dg.Output(
        fills,
        output_name="shadow_fills",
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(fills)),
            "maker_fills": dg.MetadataValue.int(int((liquidity == MAKER).sum())),
            "taker_fills": dg.MetadataValue.int(int((liquidity == TAKER).sum())),
            "preview": _table(fills.head(PREVIEW_ROWS)),
            "iteration_summaries": dg.MetadataValue.int(summaries),
            "artifacts": dg.MetadataValue.path(str(folder)),
            **inline,
            **pictures,
        },
    )
