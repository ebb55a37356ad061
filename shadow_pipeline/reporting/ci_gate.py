"""The CI gate: each (hour, symbol) a CI run made, with its shadow verdict and its dry-run accuracy status.

`dagster job execute` exits 0 on a No-Go and on a FAIL alike (both are verdicts, the runs succeed), so the gate
reads the verdicts back from the reports the runs wrote. Any report of the run that is missing or unreadable
is an error: a gate that skipped it would pass what nobody judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shadow_pipeline import user_json
from shadow_pipeline.reporting.accuracy import REPORT_JSON
from shadow_pipeline.reporting.snapshot import SnapshotError, find_snapshots, read_snapshot

PASSING = ("PASS", "WARN")
STATUSES = (*PASSING, "FAIL", "NO DATA")


class GateError(ValueError):
    """A report the gate needs is missing or not a report; the message names the file or the partition."""


def _accuracy(path: Path) -> dict[str, Any]:
    try:
        report = user_json.load(path)
    except user_json.JsonInputError as exc:
        raise GateError(str(exc)) from None
    if not isinstance(report, dict) or not all(isinstance(report.get(k), str) for k in ("hour", "symbol", "status")):
        raise GateError(f"{path}: not a dry-run accuracy report (hour, symbol and status must be strings)")
    if report["status"] not in STATUSES:
        raise GateError(f"{path}: status {report['status']!r} is none of {', '.join(STATUSES)}")
    return report


def gate_table(artifacts: Path, partitions: Sequence[tuple[str, str]], windows_wanted: int = 0) -> pd.DataFrame:
    """One row per (hour, symbol): the shadow's Go/No-Go, the dry-run's status and what it compared; ``enough``:
    whether it compared the ``windows_wanted`` windows CI asked for (the report takes the newest N it has)."""
    if not partitions:
        raise GateError("no (hour, symbol) to gate: the replay produced no partition")
    try:
        snapshots = [read_snapshot(path) for path in find_snapshots([artifacts])]
    except SnapshotError as exc:
        raise GateError(str(exc)) from None
    verdicts = {(s.get("hour"), s["symbol"]): s.get("verdict", "") for s in snapshots}
    reports = {(r["hour"], r["symbol"]): r for r in map(_accuracy, sorted(artifacts.rglob(REPORT_JSON)))}
    rows = []
    for hour, symbol in partitions:
        report = reports.get((hour, symbol))
        if report is None:
            raise GateError(f"no {REPORT_JSON} for {hour} {symbol} under {artifacts}")
        rows.append(
            {
                "hour": hour,
                "symbol": symbol,
                "shadow": verdicts.get((hour, symbol), ""),
                "accuracy": report["status"],
                "windows": report.get("windows_compared"),
                "enough": int(report.get("windows_compared") or 0) >= windows_wanted,
                "fills_predicted": report.get("predicted_fills"),
                "fills_actual": report.get("actual_fills"),
            }
        )
    return pd.DataFrame(rows)


def exit_code(table: pd.DataFrame) -> int:
    """0 when every symbol's accuracy is PASS or WARN on the windows asked for, 1 otherwise (FAIL; NO DATA or
    fewer windows than asked: nothing vouched for)."""
    if table.empty:
        raise GateError("no (hour, symbol) to gate")
    return 0 if (table["accuracy"].isin(PASSING) & table["enough"]).all() else 1
