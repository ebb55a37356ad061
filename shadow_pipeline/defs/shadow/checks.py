"""The Go/No-Go gates of a shadow report, as ERROR checks that do not block.

A No-Go is a verdict, not a crash (docs/shadow-simulation.md, "A No-Go is a verdict"): the run succeeds, the
failed ERROR checks show on the asset and reach the alert sensor, and what only a Go may do, promoting the
parameters as live-ready (``live_ready_profile``), does not happen. CI keys on the checks through
`shadow-pipeline audit` (`make shadow-ci`), which exits 1 on a No-Go.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import GATED, VALID_WINDOWS
from shadow_pipeline.domain.kpis.gates import GateOutcome

MIN_VALID_WINDOWS = "min_valid_windows"
KPI_THRESHOLDS = "kpi_thresholds"

SHADOW_REPORT_CHECKS = [
    dg.AssetCheckSpec(
        MIN_VALID_WINDOWS,
        asset="shadow_report",
        description="Enough valid iteration windows (ticks and at least one fill) to judge the strategy.",
    ),
    dg.AssetCheckSpec(
        KPI_THRESHOLDS,
        asset="shadow_report",
        description=f"{', '.join(k.name for k in GATED if k is not VALID_WINDOWS)} within the profile's thresholds.",
    ),
]


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(round(value, 6))


def min_windows(outcome: GateOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key="shadow_report",
        check_name=MIN_VALID_WINDOWS,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "valid_windows": _number(outcome.value),
            "required": outcome.gate.threshold,
            "short_by": _number(outcome.shortfall),
        },
        description=None if outcome.passed else outcome.reason,
    )


def kpi_thresholds(outcomes: list[GateOutcome]) -> dg.AssetCheckResult:
    failed = [o for o in outcomes if not o.passed]
    table = pd.DataFrame([o.as_dict() for o in outcomes])
    return dg.AssetCheckResult(
        asset_key="shadow_report",
        check_name=KPI_THRESHOLDS,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failed": ", ".join(o.gate.kpi for o in failed) or "none",
            "gates": dg.MetadataValue.md(table.to_markdown(index=False)),
            **{f"{o.gate.kpi}_shortfall": _number(o.shortfall) for o in outcomes},
        },
        description="; ".join(o.reason for o in failed) or None,
    )
