"""DRYRUN_ACCURACY_REPORT.json and .md of one (hour, symbol): predicted vs actual KPIs and their statuses."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shadow_pipeline.domain.validation.accuracy import BPS_LIMITS, PERCENT_LIMITS, Accuracy
from shadow_pipeline.reporting.snapshot import write_atomically

REPORT_JSON = "DRYRUN_ACCURACY_REPORT.json"
REPORT_MD = "DRYRUN_ACCURACY_REPORT.md"


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf"
    return value


def _listed(kpis: list[str]) -> str:
    return f" ({', '.join(kpis)})" if kpis else ""


def write_reports(folder: Path, accuracy: Accuracy, notes: Mapping[str, Any]) -> Path:
    rows = [{k: _plain(v) for k, v in row.items()} for row in accuracy.table.to_dict(orient="records")]
    windows = [{k: _plain(v) for k, v in row.items()} for row in accuracy.windows.to_dict(orient="records")]
    document = {
        **notes,
        "status": accuracy.worst,
        "no_data": accuracy.no_data,
        "not_judged": accuracy.not_judged,
        "kpis": rows,
        "windows": windows,
    }
    judged = len(accuracy.table) - len(accuracy.no_data) - len(accuracy.not_judged)
    path = folder / REPORT_JSON
    write_atomically(path, json.dumps(document, indent=2).encode())
    lines = [
        f"# Dry-run accuracy: {notes['symbol']} {notes['hour']}",
        "",
        f"**Status: {accuracy.worst}**. Predictions read back from Redis ({notes['predictions']}), reality: "
        f"{notes['reality']}; {notes['windows_compared']} windows of {notes['window_seconds']} s, profile "
        f"`{notes['profile']}`, strategy `{notes['strategy']}`.",
        "",
        f"Reality input: {notes['reality_input']}.",
        "",
        f"Judged on {judged} KPI(s); NO DATA (too few events to judge, not counted against the status): "
        f"{len(accuracy.no_data)}{_listed(accuracy.no_data)}; NOT JUDGED (the reality does not measure them): "
        f"{len(accuracy.not_judged)}{_listed(accuracy.not_judged)}.",
        "",
        accuracy.table.to_markdown(index=False, floatfmt=".4g"),
        "",
        f"Gates: each KPI on the error in its `gated_on` column: wpe and mape PASS < "
        f"{PERCENT_LIMITS[0]:.0%}, FAIL > {PERCENT_LIMITS[1]:.0%}; mae (mean absolute error, bps) PASS < "
        f"{BPS_LIMITS[0]:g} bps, FAIL > {BPS_LIMITS[1]:g} bps. The status is the worst judged KPI's; "
        "with no KPI judged it is NO DATA, which fails the gate. See docs/dry-run.md.",
    ]
    write_atomically(folder / REPORT_MD, ("\n".join(lines) + "\n").encode())
    return path
