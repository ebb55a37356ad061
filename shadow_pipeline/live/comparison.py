"""Live windows against the batch's: every exported KPI of every live window beside the hour's row.

Both sides are KPI records built by ``records.iteration_records`` (the live shadow's from the hour's ticks when
the window closed, the batch's from ``shadow_iterations``), so the comparison is of values, never of two ways of
building them. Floats agree when ``np.isclose(rtol=1e-9, atol=1e-12)`` (float rounding only; the computation is
the same code, so in practice they are equal), null with null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shadow_pipeline.domain.kpis.records import COUNT_FIELDS, KPI_FIELDS

RTOL = 1e-9
ATOL = 1e-12
COMPARED = (*KPI_FIELDS, *COUNT_FIELDS, "valid", "timestamp")


@dataclass(frozen=True)
class Difference:
    iteration: int
    kpi: str
    live: Any
    batch: Any


@dataclass(frozen=True)
class Comparison:
    live_windows: int
    differences: list[Difference]
    missing_in_batch: list[int]  # live windows the hour's rows do not have

    @property
    def differing_windows(self) -> list[int]:
        return sorted({d.iteration for d in self.differences} | set(self.missing_in_batch))

    @property
    def passed(self) -> bool:
        return not self.differences and not self.missing_in_batch


def _same(live: Any, batch: Any) -> bool:
    if live is None or batch is None or _nan(live) or _nan(batch):
        return (live is None or _nan(live)) and (batch is None or _nan(batch))
    if isinstance(live, float | int) and not isinstance(live, bool) and isinstance(batch, float | int):
        return bool(np.isclose(float(live), float(batch), rtol=RTOL, atol=ATOL))
    return bool(live == batch)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def compare(live: Sequence[Mapping[str, Any]], batch: Sequence[Mapping[str, Any]]) -> Comparison:
    """Each live record against the batch record of the same window (``iteration``)."""
    rows = {int(record["iteration"]): record for record in batch}
    differences, missing = [], []
    for record in sorted(live, key=lambda r: int(r["iteration"])):
        iteration = int(record["iteration"])
        row = rows.get(iteration)
        if row is None:
            missing.append(iteration)
            continue
        differences += [
            Difference(iteration, name, record.get(name), row.get(name))
            for name in COMPARED
            if not _same(record.get(name), row.get(name))
        ]
    return Comparison(len(live), differences, missing)
