"""Data-quality gates of the ingest stage, evaluated inline with the assets that measure them.

Severities (docs/ingest.md): a drain that left entries pending in the group (ticks not landed), an empty
partition, any backpressure drop or ticks that do not fit their instrument (docs/instruments.md) is an ERROR that
blocks everything downstream (KPIs on missing or foreign ticks would be wrong); sequence gaps and a high reordered
share are WARNs (the feed's doing, worth an alert, not a reason to stop).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from shadow_pipeline.defs.partitions import check_spec
from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE, Instrument, InstrumentError, load_registry
from shadow_pipeline.domain.market.quality import (
    MAX_CROSSED_SHARE,
    InstrumentFit,
    PartitionQuality,
    fit,
    grids_that_fit,
)

DRAIN_COMPLETE = "drain_complete"
NON_EMPTY = "non_empty_partition"
NO_BACKPRESSURE_DROPS = "zero_backpressure_drops"
NO_SEQUENCE_GAPS = "no_sequence_gaps"
REORDERED_SHARE_BELOW = "reordered_share_below_5pct"
FITS_INSTRUMENT = "fits_instrument"
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
    check_spec(NON_EMPTY, asset="raw_ticks", blocking=True, description="At least one tick landed."),
]
NORMALIZED_TICKS_CHECKS = [
    check_spec(
        NO_BACKPRESSURE_DROPS, asset="normalized_ticks", blocking=True, description="The reorder buffer dropped none."
    ),
    check_spec(
        FITS_INSTRUMENT,
        asset="normalized_ticks",
        blocking=True,
        description="Every price is on the instrument's grid and every size at least its lot step; at most "
        f"{MAX_CROSSED_SHARE:.1%} of books crossed or locked on that grid (docs/instruments.md).",
    ),
    check_spec(NO_SEQUENCE_GAPS, asset="normalized_ticks", description="Every seq arrived (WARN)."),
    check_spec(
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


def _number(value: float | None) -> str:
    return f"{value:.12g}"


def _misfit(found: InstrumentFit, fitting: list[Instrument]) -> str:
    """What is wrong with the ticks, and what to check."""
    problems = []
    if found.off_grid:
        guess = (
            f"is this {fitting[0].market} data? ({', '.join(str(i.id) for i in fitting)} would fit)"
            if fitting
            else "is the registry's tick_size current?"
        )
        grid = f"{found.instrument}'s {_number(found.tick_size)} grid"
        share = found.share(found.off_grid)
        problems.append(f"prices are off {grid}: {guess} ({share:.0%} of rows, e.g. {_number(found.example_price)})")
    if found.crossed > MAX_CROSSED_SHARE * found.rows:
        problems.append(
            f"{found.share(found.crossed):.1%} of books are crossed or locked on that grid (at most "
            f"{MAX_CROSSED_SHARE:.1%})"
        )
    if found.below_lot:
        problems.append(
            f"{found.below_lot} rows have sizes below the {_number(found.lot_step)} lot step (e.g. "
            f"{_number(found.example_size)}): are sizes of another market or in another unit?"
        )
    advice = (
        f"nothing is simulated on it: check the feed's venue field (none means {DEFAULT_VENUE}) and the instrument "
        "registry (docs/instruments.md)"
    )
    return "; ".join([*problems, advice])


def fits_instrument(ticks: pd.DataFrame, key: str) -> dg.AssetCheckResult:
    """Whether the partition's typed ticks fit the instrument its key names; on a misfit, which instruments of the
    same symbol the prices would fit, as a hint of what the data really is."""
    try:
        registry = load_registry()
        instrument = registry.get(key)
    except InstrumentError as exc:
        return dg.AssetCheckResult(
            asset_key="normalized_ticks",
            check_name=FITS_INSTRUMENT,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=str(exc),
        )
    found = fit(ticks, instrument)
    others = [registry.get(i) for i in registry.listings(instrument.id.symbol) if i != instrument.id]
    return dg.AssetCheckResult(
        asset_key="normalized_ticks",
        check_name=FITS_INSTRUMENT,
        passed=found.fits,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "instrument": found.instrument,
            "tick_size": found.tick_size,
            "lot_step": found.lot_step,
            "off_grid": found.off_grid,
            "crossed_on_grid": found.crossed,
            "below_lot_step": found.below_lot,
            "rows": found.rows,
        },
        description=None if found.fits else _misfit(found, grids_that_fit(ticks, others) if found.off_grid else []),
    )
