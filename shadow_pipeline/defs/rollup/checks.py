"""The rollup's verdict as checks per (day, symbol) partition.

``rollup_kpi_thresholds`` (ERROR) is the profile's gates on the day's pooled windows; ``rollup_no_go_hours``
(WARN) names the hours that were a No-Go on their own, which a Go over the day may hide. Neither blocks: a No-Go
is a verdict, not a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from shadow_pipeline.defs.partitions import check_spec, rollup_partitions
from shadow_pipeline.domain.kpis.gates import Verdict
from shadow_pipeline.reporting.snapshot import gates_markdown

ROLLUP_ASSET = "shadow_rollup"
ROLLUP_KPI_THRESHOLDS = "rollup_kpi_thresholds"
ROLLUP_NO_GO_HOURS = "rollup_no_go_hours"

ROLLUP_CHECKS = [
    check_spec(
        ROLLUP_KPI_THRESHOLDS,
        asset=ROLLUP_ASSET,
        partitions_def=rollup_partitions,
        description="Valid windows and every KPI gate of the profile on the day's shadowed hours, windows pooled.",
    ),
    check_spec(
        ROLLUP_NO_GO_HOURS,
        asset=ROLLUP_ASSET,
        partitions_def=rollup_partitions,
        description="No shadowed hour of the day was a No-Go on its own (the failing hours and their reasons).",
    ),
]


def kpi_thresholds(judged: Verdict) -> dg.AssetCheckResult:
    failed = [o for o in judged.outcomes if not o.passed]
    return dg.AssetCheckResult(
        asset_key=ROLLUP_ASSET,
        check_name=ROLLUP_KPI_THRESHOLDS,
        passed=judged.go,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failed": ", ".join(o.gate.kpi for o in failed) or "none",
            "gates": dg.MetadataValue.md(gates_markdown(o.as_dict() for o in judged.outcomes)),
        },
        description="; ".join(judged.reasons) or None,
    )


def no_go_hours(snapshot: Mapping[str, Any]) -> dg.AssetCheckResult:
    rows = snapshot["no_go_hours"]
    return dg.AssetCheckResult(
        asset_key=ROLLUP_ASSET,
        check_name=ROLLUP_NO_GO_HOURS,
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "no_go_hours": ", ".join(row["hour"] for row in rows) or "none",
            "shadowed_hours": len(snapshot["hours"]),
        },
        description="; ".join(f"{row['hour']}: {'; '.join(row['reasons'])}" for row in rows) or None,
    )
