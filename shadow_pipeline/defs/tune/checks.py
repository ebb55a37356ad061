"""The tuner's gate: the profile's Go/No-Go gates on out-of-sample windows only, as an ERROR check.

It does not block: a No-Go is a verdict (the summary and the tuned profile are still written for inspection);
what only a Go may do, writing LIVE_READY_PROFILE.json, does not happen.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from shadow_pipeline.defs.partitions import check_spec
from shadow_pipeline.domain.tuning.walk_forward import Decision

OUT_OF_SAMPLE_GATES = "out_of_sample_gates"

TUNE_CHECKS = [
    check_spec(
        OUT_OF_SAMPLE_GATES,
        asset="tuned_profile",
        description="Every gate (min windows included) passes on the walk-forward's judged hours, which no "
        "winner was fitted on: pooled over the folds, and for the tuned set on its own judged hour; and the "
        "tuned set's probability of backtest overfitting is below the profile's max_pbo.",
    )
]


def out_of_sample_gates(decision: Decision, hours: list[str]) -> dg.AssetCheckResult:
    """Passed when the pooled judged windows and the tuned set's own judged hour both pass every gate and the
    PBO is below max_pbo (the metadata shows it)."""
    judged = [("all judged hours", decision.pooled), (f"tuned set on {decision.tuned_hour}", decision.tuned)]
    rows = [{"windows": name, **o.as_dict()} for name, verdict in judged for o in verdict.outcomes]
    failed = sorted({o.gate.kpi for _, verdict in judged for o in verdict.outcomes if not o.passed})
    return dg.AssetCheckResult(
        asset_key="tuned_profile",
        check_name=OUT_OF_SAMPLE_GATES,
        passed=decision.go,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "judged_hours": ", ".join(hours),
            "failed": ", ".join(failed) or "none",
            "pbo": dg.MetadataValue.float(decision.overfitting.pbo),
            "max_pbo": dg.MetadataValue.float(decision.max_pbo),
            "gates": dg.MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False)),
        },
        description="; ".join(decision.reasons) or None,
    )
