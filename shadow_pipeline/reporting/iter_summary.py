"""The seed's per-window files, ``ITER_SUMMARY_<n>.json``: one window's KPI record (the exported record, so a
reader of either sees the same fields), its fills counted in the fills table, and its bounds in ISO time.

Why files beside the report: a person or a script looking at one suspicious window opens one small file instead
of loading the partition's Parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.fills import iso_times
from shadow_pipeline.domain.kpis.records import iteration_records
from shadow_pipeline.domain.kpis.run_notes import RunNotes
from shadow_pipeline.reporting.snapshot import write_atomically

PREFIX = "ITER_SUMMARY_"


def summary_file(iteration: int) -> str:
    return f"{PREFIX}{iteration}.json"


def write_iteration_summaries(folder: Path, iterations: pd.DataFrame, notes: RunNotes, fill_ts: np.ndarray) -> int:
    """One file per window of ``iterations``, each written atomically; files of windows the run no longer has
    (an earlier run with shorter windows) are removed, so the folder describes this run only. Returns the count."""
    starts = iterations["window_start"].to_numpy(dtype=np.int64)
    ends = iterations["window_end"].to_numpy(dtype=np.int64)
    ordered = np.sort(np.asarray(fill_ts, dtype=np.int64))
    fills = np.searchsorted(ordered, ends, side="left") - np.searchsorted(ordered, starts, side="left")
    written = set()
    for record, start, end, count in zip(
        iteration_records(iterations, notes), iso_times(starts), iso_times(ends), fills, strict=True
    ):
        name = summary_file(record["iteration"])
        summary = {**record, "fills": int(count), "window_start": start, "window_end": end}
        write_atomically(folder / name, json.dumps(summary, indent=2, allow_nan=False).encode())
        written.add(name)
    for stale in folder.glob(f"{PREFIX}*.json"):
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    return len(written)
