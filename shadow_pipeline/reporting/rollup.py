"""Results kept per profile, rollups of a period's hours and profiles compared (docs/rollups.md).

A rollup pools the windows of its hours and judges them with ``judge_partition``, the hourly report's own
function: every KPI rolls up exactly as an hour's windows do, and a day of one hour is that hour's report.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from shadow_pipeline.domain.kpis.gates import GO, Verdict
from shadow_pipeline.domain.kpis.rollup import PROFILES_FOLDER, RANK_RULE, Standing, profile_key, rank
from shadow_pipeline.domain.kpis.run_notes import RunNotesMissing, run_notes
from shadow_pipeline.parquet import read_frame, write_frame
from shadow_pipeline.reporting.plots import profiles_png
from shadow_pipeline.reporting.snapshot import (
    SnapshotError,
    judge_partition,
    read_snapshot,
    render_markdown,
    write_atomically,
)

WINDOWS_FILE = "windows.parquet"
# Not POST_SHADOW_SNAPSHOT.json: `shadow-pipeline audit` finds those under artifacts/ and judges each partition's
# newest result once, not again through every profile it kept.
KEPT_SNAPSHOT_FILE = "PROFILE_SNAPSHOT.json"
ROLLUP_SNAPSHOT_FILE = "ROLLUP_SNAPSHOT.json"
ROLLUP_REPORT_FILE = "ROLLUP_REPORT.md"
COMPARISON_JSON_FILE = "PROFILE_COMPARISON.json"
COMPARISON_REPORT_FILE = "PROFILE_COMPARISON.md"
COMPARISON_PLOT_FILE = "profiles.png"
COMPARED_KPIS = ("valid_windows", "net_bps", "maker_taker_ratio", "p95_latency_ms", "risk_ratio", "total_fills", "pnl")


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2, allow_nan=False).encode()  # NaN is not JSON: fail


class RollupError(ValueError):
    """A period that cannot be rolled up or compared; the message says why and what to run."""


def keep_result(folder: Path, snapshot: Mapping[str, Any], windows: pd.DataFrame) -> None:
    """The hour's snapshot and windows (with their run notes) under its profile's folder, each written atomically."""
    buffer = io.BytesIO()
    write_frame(windows, buffer)
    write_atomically(folder / WINDOWS_FILE, buffer.getvalue())
    write_atomically(folder / KEPT_SNAPSHOT_FILE, _json(snapshot))


def kept_profiles(shadow_folders: Iterable[Path]) -> list[str]:
    """The profiles with a result kept in any of the partitions' shadow folders, sorted."""
    found = {
        path.parent.name
        for folder in shadow_folders
        for path in (folder / PROFILES_FOLDER).glob(f"*/{WINDOWS_FILE}")
        if _is_key(path.parent.name)
    }
    return sorted(found)


def _is_key(name: str) -> bool:
    try:
        profile_key(name)
    except ValueError:
        return False
    return True


def read_kept(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The windows and snapshot kept in ``folder``, None when nothing is kept there; RollupError when damaged."""
    windows = folder / WINDOWS_FILE
    if not windows.exists():
        return None
    try:
        frame = read_frame(str(windows))
        run_notes(frame)
        return frame, read_snapshot(folder / KEPT_SNAPSHOT_FILE)
    except (OSError, ValueError, RunNotesMissing, SnapshotError) as exc:
        raise RollupError(f"{folder}: a damaged kept result ({str(exc)[:200]}): run shadow again for it") from None


def _hour_row(hour: str, windows: pd.DataFrame, hourly: Mapping[str, Any] | None, generated_at: str) -> dict[str, Any]:
    """An hour's verdict and reasons from its report, or judged from its windows when it has none."""
    report = hourly if hourly is not None else judge_partition(windows, run_notes(windows), generated_at)[0]
    return {
        "hour": hour,
        "verdict": report["verdict"],
        "reasons": list(report["reasons"]),
        "valid_windows": report["kpis"].get("valid_windows"),
        "net_bps": report["kpis"].get("net_bps"),
        "from": "hourly report" if hourly is not None else "stored windows",
    }


def roll_up(
    period: str,
    hours: Mapping[str, pd.DataFrame],
    reports: Mapping[str, Mapping[str, Any]],
    generated_at: str,
) -> tuple[dict[str, Any], Verdict]:
    """The snapshot of ``period`` from its shadowed hours' windows (hour -> windows of one profile) and their
    hourly snapshots where kept: the pooled windows judged by the newest hour's gates, and every hour's verdict."""
    if not hours:
        raise RollupError(f"{period}: no shadowed hour to roll up")
    ordered = sorted(hours)
    notes = [run_notes(hours[hour]) for hour in ordered]
    if len({n.profile for n in notes}) > 1:
        raise RollupError(f"{period}: hours of several profiles ({', '.join(sorted({n.profile for n in notes}))})")
    lengths = sorted({n.window_seconds for n in notes})
    if len(lengths) > 1:  # min_windows would count windows of different lengths alike
        raise RollupError(
            f"{period}: {notes[0].profile} ran with windows of {' and '.join(f'{s:g}' for s in lengths)} s: "
            "shadow its hours again with one window_seconds"
        )
    pooled = pd.concat([hours[hour] for hour in ordered], ignore_index=True)
    snapshot, judged = judge_partition(pooled, replace(notes[-1], hour=period), generated_at)
    rows = [_hour_row(hour, hours[hour], reports.get(hour), generated_at) for hour in ordered]
    snapshot.update(
        period=period,
        hours=ordered,
        hourly=rows,
        no_go_hours=[row for row in rows if row["verdict"] != GO],
        params_digests=sorted({n.params_digest for n in notes}),
    )
    return snapshot, judged


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.4g}" if isinstance(value, float) else str(value)


def render_rollup(snapshot: Mapping[str, Any]) -> str:
    """ROLLUP_REPORT.md: the hours and their verdicts, then the pooled report as an hour's is written."""
    hours = snapshot["hourly"]
    no_go = snapshot["no_go_hours"]
    counted = f"{len(hours)} shadowed hour{'' if len(hours) == 1 else 's'}"
    lines = [
        f"# Rollup: {snapshot['symbol']} {snapshot['period']}, profile `{snapshot['profile']}`",
        "",
        f"{counted} ({', '.join(snapshot['hours'])}); the windows pooled and judged by the profile's gates "
        "(docs/rollups.md). "
        + (f"No-Go hours: {', '.join(row['hour'] for row in no_go)}." if no_go else "No hour was a No-Go."),
        "",
        "## Hours",
        "",
        "| hour | verdict | valid windows | net_bps | reasons |",
        "|---|---|---|---|---|",
        *(
            f"| {r['hour']} | {r['verdict']} | {_fmt(r['valid_windows'])} | {_fmt(r['net_bps'])} | "
            f"{'; '.join(r['reasons']) or '-'} |"
            for r in hours
        ),
        "",
    ]
    return "\n".join(lines) + render_markdown(snapshot).split("\n", 1)[1]


def write_rollup(folder: Path, snapshot: Mapping[str, Any]) -> Path:
    """ROLLUP_SNAPSHOT.json and ROLLUP_REPORT.md in ``folder``; returns the snapshot's path."""
    path = folder / ROLLUP_SNAPSHOT_FILE
    write_atomically(path, _json(snapshot))
    write_atomically(folder / ROLLUP_REPORT_FILE, render_rollup(snapshot).encode())
    return path


def standing(snapshot: Mapping[str, Any]) -> Standing:
    return Standing(
        profile=str(snapshot["profile"]),
        go=snapshot["verdict"] == GO,
        net_bps=snapshot["kpis"].get("net_bps"),
        failed_gates=sum(not gate["passed"] for gate in snapshot["gates"]),
    )


def comparison(snapshots: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per profile, ranked by :data:`RANK_RULE`: verdict, failed gates, hours and the compared KPIs."""
    by_profile = {str(s["profile"]): s for s in snapshots}
    rows = []
    for place, entry in enumerate(rank(standing(s) for s in by_profile.values()), 1):
        snapshot = by_profile[entry.profile]
        rows.append(
            {
                "rank": place,
                "profile": entry.profile,
                "verdict": snapshot["verdict"],
                "failed_gates": entry.failed_gates,
                "hours": len(snapshot.get("hours") or [snapshot.get("hour")]),
                **{name: snapshot["kpis"].get(name) for name in COMPARED_KPIS},
                "reasons": "; ".join(snapshot["reasons"]),
            }
        )
    return pd.DataFrame(rows)


def comparison_document(table: pd.DataFrame, symbol: str, period: str) -> dict[str, Any]:
    """PROFILE_COMPARISON.json: the ranked rows and the rule that ranked them."""
    rows = json.loads(table.to_json(orient="records"))  # NaN to null
    return {"symbol": symbol, "period": period, "rule": RANK_RULE, "profiles": rows}


def comparison_markdown(table: pd.DataFrame, symbol: str, period: str, plot_file: str | None) -> str:
    lines = [
        f"# Profiles compared: {symbol} {period}",
        "",
        f"Ranked: {RANK_RULE}. Each profile is judged on the windows of the hours it was run on (column hours).",
        "",
        table.to_markdown(index=False, floatfmt=".4g"),
    ]
    if plot_file:
        lines += ["", f"![profiles against the gates]({plot_file})"]
    return "\n".join(lines) + "\n"


def write_comparison(
    folder: Path, table: pd.DataFrame, snapshots: Sequence[Mapping[str, Any]], symbol: str, period: str
) -> bytes:
    """PROFILE_COMPARISON.json and .md with the plot beside them in ``folder``; returns the plot (PNG)."""
    png = profiles_png(snapshots, f"{symbol} {period}: profiles ranked, gates dashed")
    write_atomically(folder / COMPARISON_PLOT_FILE, png)
    write_atomically(folder / COMPARISON_JSON_FILE, _json(comparison_document(table, symbol, period)))
    markdown = comparison_markdown(table, symbol, period, COMPARISON_PLOT_FILE)
    write_atomically(folder / COMPARISON_REPORT_FILE, markdown.encode())
    return png


def compare_period(
    shadow_folders: Mapping[str, Path], period: str, generated_at: str
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every profile kept in the period's hours (hour -> the partition's shadow folder), each rolled up over the
    hours it ran, ranked; the table and the ranked snapshots. RollupError when no profile is kept there."""
    profiles = kept_profiles(shadow_folders.values())
    if not profiles:
        raise RollupError(f"{period}: no result kept under any profile: run shadow on its hours first")
    snapshots = []
    for profile in profiles:
        kept = {hour: read_kept(folder / PROFILES_FOLDER / profile) for hour, folder in shadow_folders.items()}
        found = {hour: pair for hour, pair in kept.items() if pair is not None}
        windows = {hour: pair[0] for hour, pair in found.items()}
        snapshots.append(roll_up(period, windows, {hour: pair[1] for hour, pair in found.items()}, generated_at)[0])
    table = comparison(snapshots)
    order = list(table["profile"])
    return table, sorted(snapshots, key=lambda s: order.index(s["profile"]))
