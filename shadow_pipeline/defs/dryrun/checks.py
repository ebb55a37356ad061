"""The dry-run gates: a FAIL on any KPI is an ERROR (the seed's CI gate: `shadow-pipeline dryrun` exits 1), a
WARN is a WARN. Neither blocks: the accuracy report is the last asset, and a FAIL is a verdict, not a crash.

NO DATA and NOT JUDGED KPIs are listed in both checks' metadata and fail neither: a count too small to judge
says nothing about the model either way. Only when no KPI at all could be judged does the ERROR check fail,
since a dry-run that vouches for nothing must not pass silently."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.defs.partitions import check_spec
from shadow_pipeline.domain.validation.accuracy import FAIL, NO_DATA, WARN, Accuracy

ACCURACY_GATE = "prediction_accuracy"
ACCURACY_WARN = "prediction_accuracy_warn"

DRYRUN_CHECKS = [
    check_spec(
        ACCURACY_GATE,
        asset="dryrun_accuracy_report",
        description="No KPI's prediction error is above the FAIL limit (MAPE/WPE > 30 %, net_bps > 2 bps), and "
        "at least one KPI could be judged.",
    ),
    check_spec(
        ACCURACY_WARN,
        asset="dryrun_accuracy_report",
        description="No judged KPI's prediction error is in the WARN band (15-30 %, net_bps 1-2 bps); KPIs with "
        "too few events (NO DATA) or not measured by the reality (NOT JUDGED) are listed, not failed.",
    ),
]


def accuracy_gates(accuracy: Accuracy) -> list[dg.AssetCheckResult]:
    rows = {str(row["kpi"]): row for row in accuracy.table.to_dict(orient="records")}
    gated = {kpi: (str(row["gated_on"]), float(row[row["gated_on"]])) for kpi, row in rows.items()}
    errors = {f"{kpi}_{gate}": value for kpi, (gate, value) in gated.items()}
    unjudged = {
        "no_data": dg.MetadataValue.text(", ".join(accuracy.no_data) or "none"),
        "no_data_count": dg.MetadataValue.int(len(accuracy.no_data)),
        "not_judged": dg.MetadataValue.text(", ".join(accuracy.not_judged) or "none"),
    }
    results = []
    for name, status, severity in (
        (ACCURACY_GATE, FAIL, dg.AssetCheckSeverity.ERROR),
        (ACCURACY_WARN, WARN, dg.AssetCheckSeverity.WARN),
    ):
        hit = accuracy.with_status(status)
        reasons = [f"{kpi} {gated[kpi][0]} {gated[kpi][1]:.4g}" for kpi in hit]
        if status == FAIL and accuracy.worst == NO_DATA:  # nothing judged is nothing vouched for
            hit = ["all"]
            reasons = [
                "no window has both a prediction and an actual value"
                if accuracy.windows.empty
                else "no KPI could be judged: "
                + "; ".join(f"{kpi}: {rows[kpi]['note'] or 'nothing to compare'}" for kpi in rows)
            ]
            status = NO_DATA
        results.append(
            dg.AssetCheckResult(
                asset_key="dryrun_accuracy_report",
                check_name=name,
                passed=not hit,
                severity=severity,
                metadata={"kpis": ", ".join(hit) or "none", **unjudged, **errors},
                description=f"{status}: " + "; ".join(reasons) if hit else None,
            )
        )
    return results
