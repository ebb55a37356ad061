"""The tuner's gate: the profile's Go/No-Go gates on out-of-sample windows only, as an ERROR check.

It does not block: a No-Go is a verdict (the summary and the tuned profile are still written for inspection);
what only a Go may do, writing LIVE_READY_PROFILE.json, does not happen.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from shadow_pipeline.domain.gates import Verdict

OUT_OF_SAMPLE_GATES = "out_of_sample_gates"

TUNE_CHECKS = [
    dg.AssetCheckSpec(
        OUT_OF_SAMPLE_GATES,
        asset="tuned_profile",
        description="The tuned parameters pass every gate (min windows included) on the walk-forward's "
        "out-of-sample hours, which they were not fitted on.",
    )
]


def out_of_sample_gates(verdict: Verdict, hours: list[str]) -> dg.AssetCheckResult:
    failed = [o for o in verdict.outcomes if not o.passed]
    table = pd.DataFrame([o.as_dict() for o in verdict.outcomes])
    return dg.AssetCheckResult(
        asset_key="tuned_profile",
        check_name=OUT_OF_SAMPLE_GATES,
        passed=verdict.go,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "judged_hours": ", ".join(hours),
            "failed": ", ".join(o.gate.kpi for o in failed) or "none",
            "gates": dg.MetadataValue.md(table.to_markdown(index=False)),
        },
        description="; ".join(verdict.reasons) or None,
    )
