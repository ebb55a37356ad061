"""Data-quality gates of the ingest stage, evaluated inline with the assets that measure them.

Severities (docs/ingest.md): a drain that left entries pending in the group (ticks not landed), an empty
partition or any backpressure drop is an ERROR that blocks everything downstream (KPIs on missing ticks would
be wrong); sequence gaps and a high reordered share are WARNs (the
feed's doing, worth an alert, not a reason to stop).
"""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.domain.market.quality import PartitionQuality

DRAIN_COMPLETE = "drain_complete"
NON_EMPTY = "non_empty_partition"
NO_BACKPRESSURE_DROPS = "zero_backpressure_drops"
NO_SEQUENCE_GAPS = "no_sequence_gaps"
REORDERED_SHARE_BELOW = "reordered_share_below_5pct"
MAX_REORDERED_SHARE = 0.05

LANDING_ZONE_CHECKS = [
    dg.AssetCheckSpec(
        DRAIN_COMPLETE,
        asset="landing_zone",
        blocking=True,
        description="Nothing delivered before the drain ended is still pending in the group (no tick left unlanded "
        "under a dead or live consumer).",
    ),
]
RAW_TICKS_CHECKS = [
    dg.AssetCheckSpec(NON_EMPTY, asset="raw_ticks", blocking=True, description="At least one tick landed."),
]
NORMALIZED_TICKS_CHECKS = [
    dg.AssetCheckSpec(
        NO_BACKPRESSURE_DROPS, asset="normalized_ticks", blocking=True, description="The reorder buffer dropped none."
    ),
    dg.AssetCheckSpec(NO_SEQUENCE_GAPS, asset="normalized_ticks", description="Every seq arrived (WARN)."),
    dg.AssetCheckSpec(
        REORDERED_SHARE_BELOW,
        asset="normalized_ticks",
        description=f"Under {MAX_REORDERED_SHARE:.0%} of ticks arrived out of exchange-time order (WARN).",
    ),
]


def drain_complete(complete: bool, held: dict[str, int], waited_ms: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key="landing_zone",
        check_name=DRAIN_COMPLETE,
        passed=complete,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"held": sum(held.values()), "holders": ", ".join(sorted(held)) or "-", "waited_ms": waited_ms},
        description=None
        if complete
        else f"live consumers still hold {sum(held.values())} entries after {waited_ms} ms; the partitions "
        "downstream would miss their ticks",
    )


def non_empty(rows: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key="raw_ticks",
        check_name=NON_EMPTY,
        passed=rows > 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": rows},
        description=None if rows else "no tick landed for this hour and symbol: is the feed (or the consumer) up?",
    )


def normalized_gates(quality: PartitionQuality) -> list[dg.AssetCheckResult]:
    share = quality.reordered_share
    return [
        dg.AssetCheckResult(
            asset_key="normalized_ticks",
            check_name=NO_BACKPRESSURE_DROPS,
            passed=quality.drops == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"drops": quality.drops},
        ),
        dg.AssetCheckResult(
            asset_key="normalized_ticks",
            check_name=NO_SEQUENCE_GAPS,
            passed=quality.gaps == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"gaps": quality.gaps, "first_seq": quality.first_seq or 0, "last_seq": quality.last_seq or 0},
        ),
        dg.AssetCheckResult(
            asset_key="normalized_ticks",
            check_name=REORDERED_SHARE_BELOW,
            passed=share < MAX_REORDERED_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "reordered": quality.reordered,
                "reordered_share": float(round(share, 6)),
                "threshold": MAX_REORDERED_SHARE,
                "excess": float(round(max(share - MAX_REORDERED_SHARE, 0.0), 6)),
            },
        ),
    ]
