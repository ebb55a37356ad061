"""`shadow-audit`: re-check the gates on snapshot files already written, without Dagster or Redis.

By default the gates come from the current profiles file (so tightened thresholds apply to old runs);
``use_snapshot_thresholds`` re-checks against the thresholds the run itself used.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shadow_pipeline.domain.kpis.gates import judge
from shadow_pipeline.domain.strategies.profiles import Thresholds, load_profiles, resolve
from shadow_pipeline.reporting.snapshot import find_snapshots, read_snapshot


def audit(
    roots: Iterable[Path], profiles_file: str | None = None, use_snapshot_thresholds: bool = False
) -> pd.DataFrame:
    """One row per snapshot: where it is, what it measured, and the verdict of the gates now."""
    paths = find_snapshots(roots)
    profiles = None if use_snapshot_thresholds else load_profiles(profiles_file)
    rows = []
    for path in paths:
        snapshot = read_snapshot(path)
        if profiles is None:
            thresholds = Thresholds(**snapshot["thresholds"])
        else:
            thresholds = resolve(profiles, snapshot["profile"], snapshot["symbol"])[1]
        judged = judge(snapshot["kpis"], thresholds, snapshot.get("latency_notes", ""))
        rows.append(
            {
                "hour": snapshot.get("hour", ""),
                "symbol": snapshot["symbol"],
                "profile": snapshot["profile"],
                "verdict": judged.label,
                "was": snapshot.get("verdict", ""),
                "reasons": "; ".join(judged.reasons),
                "snapshot": str(path),
            }
        )
    return pd.DataFrame(rows, columns=["hour", "symbol", "profile", "verdict", "was", "reasons", "snapshot"])
