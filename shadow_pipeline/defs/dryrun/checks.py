"""The dry-run gates: a FAIL on any KPI is an ERROR (the seed's CI gate: `shadow-pipeline dryrun` exits 1), a
WARN is a WARN. Neither blocks: the accuracy report is the last asset, and a FAIL is a verdict, not a crash."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.domain.validation.accuracy import FAIL, NO_DATA, WARN, Accuracy

ACCURACY_GATE = "prediction_accuracy"
ACCURACY_WARN = "prediction_accuracy_warn"

DRYRUN_CHECKS = [
    dg.AssetCheckSpec(
        ACCURACY_GATE,
        asset="dryrun_accuracy_report",
        description="No KPI's prediction error is above the FAIL limit (MAPE/WPE > 30 %, net_bps > 2 bps).",
    ),
    dg.AssetCheckSpec(
        ACCURACY_WARN,
        asset="dryrun_accuracy_report",
        description="No KPI's prediction error is in the WARN band (15-30 %, net_bps 1-2 bps), none lacks data "
        "(a count with fewer than 12 actual events is too few to judge).",
    ),
]


def _with(accuracy: Accuracy, status: str) -> list[str]:
    """KPIs with ``status``; the WARN check also lists KPIs with nothing to compare (NO DATA is not a pass)."""
    wanted = [status, NO_DATA] if status == WARN else [status]
    return accuracy.table.loc[accuracy.table["status"].isin(wanted), "kpi"].tolist()


def accuracy_gates(accuracy: Accuracy) -> list[dg.AssetCheckResult]:
    rows = {str(row["kpi"]): row for row in accuracy.table.to_dict(orient="records")}
    gated = {kpi: (str(row["gated_on"]), float(row[row["gated_on"]])) for kpi, row in rows.items()}
    errors = {f"{kpi}_{gate}": value for kpi, (gate, value) in gated.items()}
    results = []
    for name, status, severity in (
        (ACCURACY_GATE, FAIL, dg.AssetCheckSeverity.ERROR),
        (ACCURACY_WARN, WARN, dg.AssetCheckSeverity.WARN),
    ):
        hit = _with(accuracy, status)
        reasons = [
            f"{kpi}: {rows[kpi]['note']}" if rows[kpi].get("note") else f"{kpi} {gated[kpi][0]} {gated[kpi][1]:.4g}"
            for kpi in hit
        ]
        if status == FAIL and accuracy.windows.empty:  # nothing compared is nothing vouched for
            hit, reasons = ["all"], ["no window has both a prediction and an actual value"]
        results.append(
            dg.AssetCheckResult(
                asset_key="dryrun_accuracy_report",
                check_name=name,
                passed=not hit,
                severity=severity,
                metadata={"kpis": ", ".join(hit) or "none", **errors},
                description=f"{status}: " + "; ".join(reasons) if hit else None,
            )
        )
    return results
