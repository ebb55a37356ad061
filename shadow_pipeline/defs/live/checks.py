"""The check that holds the live shadow to the batch: the hourly partition is the record of truth, and every
window the live shadow published for it must be the partition's row, KPI for KPI."""

import dagster as dg
import pandas as pd

from shadow_pipeline.defs.partitions import GROUPED, partitioned_check
from shadow_pipeline.defs.units import PartitionValue, joined_check, unit_key, units_in
from shadow_pipeline.domain.kpis.records import iteration_records
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.live.comparison import ATOL, RTOL, compare
from shadow_pipeline.redis_io.keys import live_kpi_stream
from shadow_pipeline.redis_io.live_kpis import read_live_records
from shadow_pipeline.resources import RedisResource

LIVE_MATCHES_BATCH = "live_windows_match_batch"
SHOWN_DIFFERENCES = 20


@partitioned_check(
    asset="shadow_iterations",
    name=LIVE_MATCHES_BATCH,
    blocking=False,
    description="The live shadow's windows of this hour and instrument (shadow:live:kpi:stream:{symbol}, same "
    "profile, window length and parameters) equal this partition's rows, every exported KPI (floats to rtol "
    f"{RTOL:g}, atol {ATOL:g}; null with null). The partition is the record of truth; the live shadow is optional: "
    "with no live windows for the hour the check passes and says so.",
)
def live_windows_match_batch(
    context: dg.AssetCheckExecutionContext, shadow_iterations: PartitionValue, redis: RedisResource
) -> dg.AssetCheckResult:
    """Per unit of the partition; under the day x group layout the units' results joined (``units.joined_check``)."""
    results = [
        (unit_key(hour, symbol), _unit_check(frame, hour, symbol, redis))
        for (hour, symbol), frame in units_in(str(context.partition_key), shadow_iterations)
    ]
    return joined_check(context.check_specs[0].key, results) if GROUPED else results[0][1]


def _unit_check(shadow_iterations: pd.DataFrame, hour: str, symbol: str, redis: RedisResource) -> dg.AssetCheckResult:
    notes = run_notes(shadow_iterations)
    live = read_live_records(
        redis.get_client(),
        symbol,
        partition=notes.partition,
        profile=notes.profile,
        window_seconds=float(notes.window_seconds),
        params_digest=notes.params_digest,
    )
    stream = live_kpi_stream(symbol)
    if not live:
        return dg.AssetCheckResult(
            passed=True,
            metadata={"live_windows": 0, "note": f"no live windows for this hour in {stream}"},
            description="no live windows for this hour",
        )
    result = compare(live, iteration_records(shadow_iterations, notes))
    metadata: dict[str, dg.RawMetadataValue] = {
        "live_windows": result.live_windows,
        "batch_windows": len(shadow_iterations),
        "differing_windows": len(result.differing_windows),
        "differing_values": len(result.differences),
        "live_stream": stream,
    }
    if result.passed:
        return dg.AssetCheckResult(passed=True, metadata=metadata)
    shown = pd.DataFrame(
        [d.__dict__ for d in result.differences[:SHOWN_DIFFERENCES]]
        + [{"iteration": i, "kpi": "(window)", "live": "published", "batch": "absent"} for i in result.missing_in_batch]
    )
    first = ", ".join(map(str, result.differing_windows[:10]))
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**metadata, "differences": dg.MetadataValue.md(shown.to_markdown(index=False))},
        description=f"{symbol} {hour}: {len(result.differing_windows)} of {result.live_windows} live windows differ "
        f"from the batch (windows {first}): the live shadow saw other ticks than the partition holds",
    )
