"""POST_SHADOW_SNAPSHOT.json and the Markdown report of one (hour, symbol): what downstream readers and
`shadow-audit` use, so they never need Dagster's storage."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from shadow_pipeline import user_json
from shadow_pipeline.domain.kpis.catalogue import BY_NAME, REPORTED, names
from shadow_pipeline.domain.kpis.gates import Verdict, judge
from shadow_pipeline.domain.kpis.per_window import aggregate, window_medians
from shadow_pipeline.domain.kpis.run_notes import RunNotes
from shadow_pipeline.domain.strategies.profiles import Thresholds

SNAPSHOT_FILE = "POST_SHADOW_SNAPSHOT.json"
REPORT_FILE = "SHADOW_REPORT.md"
PLOT_FILE = "kpis.png"
SCHEMA_VERSION = 1
KPI_FIELDS = names(REPORTED)  # the aggregate KPIs the snapshot carries, in report order


class SnapshotError(ValueError):
    """A snapshot file that cannot be read or lacks what the audit needs."""


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN to null (a KPI with no fills is unknown, not 0)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def build_snapshot(
    kpis: Mapping[str, Any],
    medians: Mapping[str, Any],
    thresholds: Thresholds,
    judged: Verdict,
    notes: Mapping[str, Any],
    generated_at: str,
    sensitivity: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """``sensitivity``: the fill model's knob at its bounds (``domain.sensitivity``), when it was measured."""
    rows = [] if sensitivity is None else sensitivity.to_dict(orient="records")
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at,
        **{key: _plain(value) for key, value in notes.items()},
        "kpis": {name: _plain(kpis.get(name)) for name in KPI_FIELDS},
        "window_medians": {name: _plain(value) for name, value in medians.items()},
        "thresholds": thresholds.__dict__,
        "gates": [{k: _plain(v) for k, v in o.as_dict().items()} for o in judged.outcomes],
        "verdict": judged.label,
        "reasons": judged.reasons,
        "sensitivity": [{str(k): _plain(v) for k, v in row.items()} for row in rows],
    }


NOTE_FIELDS = (
    "hour",
    "symbol",
    "partition",
    "profile",
    "window_seconds",
    "fill_model",
    "commit",
    "source",
    "ingest",
    "latency_notes",
)


def judge_partition(
    iterations: pd.DataFrame, notes: RunNotes, generated_at: str, sensitivity: pd.DataFrame | None = None
) -> tuple[dict[str, Any], Verdict]:
    """A partition's snapshot: the aggregate (computed here, once) and window medians, judged by the gates the
    windows were computed with, and the verdict across the fill model's knob when ``sensitivity`` is given."""
    kpis = {str(k): v for k, v in aggregate(iterations).iloc[0].items()}
    medians = window_medians(iterations, tuple(k for k in KPI_FIELDS if k in iterations))
    context = {name: getattr(notes, name) for name in NOTE_FIELDS}
    context["params_digest"] = notes.params_digest
    context["as_of"] = pd.Timestamp(int(iterations["window_end"].max()), tz="UTC").isoformat()
    judged = judge(kpis, notes.thresholds, notes.latency_notes)
    snapshot = build_snapshot(kpis, medians, notes.thresholds, judged, context, generated_at, sensitivity)
    return snapshot, judged


def report_row(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The one row shadow_report stores: notes, aggregate KPIs, verdict and reasons (what export reads; the
    reasons as a JSON list, since a reason may hold ``; ``)."""
    context = {k: snapshot[k] for k in (*NOTE_FIELDS, "params_digest", "as_of")}
    return {**context, **snapshot["kpis"], "verdict": snapshot["verdict"], "reasons": json.dumps(snapshot["reasons"])}


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_snapshot(folder: Path, snapshot: Mapping[str, Any]) -> Path:
    path = folder / SNAPSHOT_FILE
    write_atomically(path, json.dumps(snapshot, indent=2, allow_nan=False).encode())  # NaN is not JSON: fail
    return path


def read_snapshot(path: Path) -> dict[str, Any]:
    try:
        snapshot = user_json.load(path)
    except user_json.JsonInputError as exc:
        raise SnapshotError(str(exc)) from None
    if not isinstance(snapshot, dict):
        raise SnapshotError(f"{path}: not a shadow snapshot (not a JSON object)")
    missing = [key for key in ("symbol", "profile", "kpis", "thresholds") if key not in snapshot]
    if missing:
        raise SnapshotError(f"{path}: not a shadow snapshot (missing {', '.join(missing)})")
    return snapshot


def find_snapshots(roots: Iterable[Path]) -> list[Path]:
    """Snapshot files given directly, or found under the given folders (sorted, for a stable audit)."""
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(root.rglob(SNAPSHOT_FILE))
        else:
            raise SnapshotError(f"{root}: no such file or folder")
    return found


def _fmt(value: Any, kpi: str | None = None) -> str:
    """A value for people: a KPI's (``kpi``) to its catalogue decimals, anything else to 4 significant digits."""
    if kpi is not None and kpi in BY_NAME:
        return BY_NAME[kpi].text(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def gates_markdown(gates: Iterable[Mapping[str, Any]]) -> str:
    """The gates table (rows of ``GateOutcome.as_dict``) with each number in its KPI's decimals."""
    numbers = ("value", "threshold", "shortfall")
    rows = [{**gate, **{k: _fmt(gate[k], str(gate["kpi"])) for k in numbers}} for gate in gates]
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def _sensitivity_lines(rows: list[Mapping[str, Any]]) -> list[str]:
    """The verdict across the fill model's knob: does the Go/No-Go hinge on the queue assumption?"""
    if not rows:
        return []
    verdicts = {row["verdict"] for row in rows}
    knob = rows[0]["knob"]
    summary = (
        f"The verdict is {next(iter(verdicts))} across the whole range of `{knob}`: it does not hinge on it."
        if len(verdicts) == 1
        else f"**The verdict flips within the range of `{knob}`**: it depends on an assumption the data cannot settle."
    )
    shown = ("total_fills", "maker_taker_ratio", "net_bps", "risk_ratio", "valid_windows")
    return [
        "",
        f"## Sensitivity to the fill model's assumption (`{knob}`)",
        "",
        summary,
        "",
        "| assumption | value | " + " | ".join(shown) + " | verdict |",
        "|---|---|" + "---|" * len(shown) + "---|",
        *(
            f"| {row['assumption']} | {_fmt(row['value'])} | "
            + " | ".join(_fmt(row.get(name), name) for name in shown)
            + f" | {row['verdict']} |"
            for row in rows
        ),
    ]


def render_markdown(snapshot: Mapping[str, Any], plot_file: str | None) -> str:
    kpis = snapshot["kpis"]
    lines = [
        f"# Shadow report: {snapshot['symbol']} {snapshot.get('hour', '')}",
        "",
        f"**Verdict: {snapshot['verdict']}**"
        + ("" if not snapshot["reasons"] else " because " + "; ".join(snapshot["reasons"])),
        "",
        f"Profile `{snapshot['profile']}`, fill model {snapshot.get('fill_model', 'n/a')}, "
        f"windows of {_fmt(snapshot.get('window_seconds'))} s, "
        f"source {snapshot.get('source', 'n/a')}, commit {snapshot.get('commit', 'n/a')}, "
        f"ingest {snapshot.get('ingest', 'n/a')}.",
        "",
        "## Gates",
        "",
        gates_markdown(snapshot["gates"]),
        "",
        "## KPIs (valid windows; shares and bps notional-weighted)",
        "",
        "| KPI | value | median over windows |",
        "|---|---|---|",
        *(
            f"| {name} | {_fmt(kpis[name], name)} | {_fmt(snapshot['window_medians'].get(name), name)} |"
            for name in KPI_FIELDS
        ),
        "",
        "Definitions: docs/shadow-simulation.md.",
        *_sensitivity_lines(snapshot.get("sensitivity") or []),
    ]
    if plot_file:
        lines += ["", f"![KPIs per window]({plot_file})"]
    return "\n".join(lines) + "\n"
