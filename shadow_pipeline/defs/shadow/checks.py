"""The Go/No-Go gates of a shadow report, as ERROR checks that do not block.

A No-Go is a verdict, not a crash (docs/shadow-simulation.md, "A No-Go is a verdict"): the run succeeds, the
failed ERROR checks show on the asset and reach the alert sensor, and what only a Go may do, promoting the
parameters as live-ready (``live_ready_profile``), does not happen. CI keys on the checks through
`shadow-pipeline audit` (`make shadow-ci`), which exits 1 on a No-Go.
"""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.defs.partitions import check_spec
from shadow_pipeline.domain.kpis.catalogue import BY_NAME, GATED, VALID_WINDOWS
from shadow_pipeline.domain.kpis.gates import GateOutcome
from shadow_pipeline.reporting.snapshot import gates_markdown

MIN_VALID_WINDOWS = "min_valid_windows"
KPI_THRESHOLDS = "kpi_thresholds"

SHADOW_REPORT_CHECKS = [
    check_spec(
        MIN_VALID_WINDOWS,
        asset="shadow_report",
        description="Enough valid iteration windows (ticks and at least one fill) to judge the strategy.",
    ),
    check_spec(
        KPI_THRESHOLDS,
        asset="shadow_report",
        description=f"{', '.join(k.name for k in GATED if k is not VALID_WINDOWS)} within the profile's thresholds.",
    ),
]


def for_people(kpi: str, value: float | None) -> dg.MetadataValue:
    """A KPI's value as the UI shows it: in its catalogue decimals, an int for a count, NaN when unknown; the
    data (Parquet, snapshot, Redis) keeps full precision."""
    shown = BY_NAME[kpi].rounded(value)
    if isinstance(shown, int):
        return dg.MetadataValue.int(shown)
    return dg.MetadataValue.float(float("nan") if shown is None else shown)


def min_windows(outcome: GateOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key="shadow_report",
        check_name=MIN_VALID_WINDOWS,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "valid_windows": int(outcome.value or 0),
            "required": int(outcome.gate.threshold),
            "short_by": int(outcome.shortfall or 0),
        },
        description=None if outcome.passed else outcome.reason,
    )


def kpi_thresholds(outcomes: list[GateOutcome]) -> dg.AssetCheckResult:
    failed = [o for o in outcomes if not o.passed]
    return dg.AssetCheckResult(
        asset_key="shadow_report",
        check_name=KPI_THRESHOLDS,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failed": ", ".join(o.gate.kpi for o in failed) or "none",
            "gates": dg.MetadataValue.md(gates_markdown(o.as_dict() for o in outcomes)),
            **{f"{o.gate.kpi}_shortfall": for_people(o.gate.kpi, o.shortfall) for o in outcomes},
        },
        description="; ".join(o.reason for o in failed) or None,
    )
