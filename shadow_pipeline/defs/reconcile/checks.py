"""The reconciliation gates (thresholds of the profile, docs/reconciliation.md): the shadow fills the orders that
really fill (precision, recall) and predicts their net_bps (the gap). Each is an ERROR: a shadow that invents or
misses fills, or misjudges their worth, is not fit to decide for the bot. An undefined value fails: nothing
compared is nothing vouched for. Like the dry-run's gates they do not block: the report is written either way."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.defs.partitions import check_spec
from shadow_pipeline.domain.kpis.catalogue import DECIMALS
from shadow_pipeline.domain.validation.reconciliation import NET_BPS_GAP, PRECISION, RECALL, ReconciliationGate

ASSET = "order_reconciliation"
FILL_PRECISION = "fill_precision"
FILL_RECALL = "fill_recall"
NET_BPS_GAP_CHECK = "net_bps_gap"
CHECK_OF = {PRECISION: FILL_PRECISION, RECALL: FILL_RECALL, NET_BPS_GAP: NET_BPS_GAP_CHECK}
DECIMALS_OF = {PRECISION: DECIMALS[""], RECALL: DECIMALS[""], NET_BPS_GAP: DECIMALS["bps"]}  # shares; bps

RECONCILE_CHECKS = [
    check_spec(
        FILL_PRECISION,
        asset=ASSET,
        description="Of the orders the shadow filled, at least min_fill_precision really filled (few invented fills).",
    ),
    check_spec(
        FILL_RECALL,
        asset=ASSET,
        description="Of the orders that really filled, the shadow filled at least min_fill_recall (few missed fills).",
    ),
    check_spec(
        NET_BPS_GAP_CHECK,
        asset=ASSET,
        description="|real - shadow net_bps| over the orders' fills is at most max_net_bps_gap bps.",
    ),
]


def reconciliation_checks(verdicts: list[ReconciliationGate]) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=ASSET,
            check_name=CHECK_OF[gate.metric],
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                gate.metric: dg.MetadataValue.float(round(float(gate.value), DECIMALS_OF[gate.metric])),
                "threshold": dg.MetadataValue.float(float(gate.threshold)),
                "rule": gate.rule,
            },
            description=None
            if gate.passed
            else f"{gate.rule} fails: {gate.metric} {gate.value:.4g} {gate.note}".strip(),
        )
        for gate in verdicts
    ]
