"""Stage 1: ticks from the Redis Stream, landed exactly once, then typed, deduplicated and in exchange-time order.

One drain of the stream (``landing_zone``, unpartitioned) lands every hour and symbol it holds; each partition
then reads its own ticks from the landing zone. The graph shows it that way on purpose: a run for one
(hour, symbol) consumes the whole stream.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from shadow_pipeline.defs.ingest import checks
from shadow_pipeline.defs.partitions import GROUPED, tick_partitions, units_of
from shadow_pipeline.defs.units import PartitionValue, run_units
from shadow_pipeline.domain.market.quality import assess, normalize
from shadow_pipeline.domain.market.windows import HOUR_NS, hour_bounds, hour_keys
from shadow_pipeline.ingest.consumer import TickConsumer, incomplete_message
from shadow_pipeline.ingest.consumer.report import IngestReport, add_counts
from shadow_pipeline.ingest.dead_letters import UNATTRIBUTED, dead_letters_by_partition
from shadow_pipeline.ingest.landing import Kind, LandingStore
from shadow_pipeline.ingest.landing_faults import LandingError
from shadow_pipeline.resources import LandingResource, RedisResource, TickStreamResource

PREVIEW_ROWS = 5


def _span_metadata(ticks: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    if ticks.empty:
        return {}
    ts = ticks["ts_server"].astype("int64")
    first, last = pd.to_datetime([ts.min(), ts.max()], utc=True)
    return {
        "first_ts_server": dg.MetadataValue.text(first.isoformat()),
        "last_ts_server": dg.MetadataValue.text(last.isoformat()),
        "span_seconds": dg.MetadataValue.float(round(float(ts.max() - ts.min()) / 1e9, 3)),
    }


def _preview(ticks: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(ticks.head(PREVIEW_ROWS).to_markdown(index=False) if len(ticks) else "_empty_")


def _neighbour_seqs(store: LandingStore, hour: str, symbol: str, offset_hours: int) -> np.ndarray:
    start, _ = hour_bounds(hour)
    neighbour = str(hour_keys(np.array([start + offset_hours * HOUR_NS]))[0])
    seqs = store.read(Kind.TICKS, neighbour, symbol, columns=["seq"])
    return seqs["seq"].to_numpy(dtype=np.int64) if len(seqs) else np.empty(0, np.int64)


def _streams_to_drain(context: dg.AssetExecutionContext, tick_stream: TickStreamResource) -> list[str]:
    """In a run of one tick partition, only the shards of its instruments, which hold all of the partition's ticks:
    runs of instruments on other shards then drain apart, one per shard at a time (the sensor tags each run
    with its shard, ``run_queue.shadow_tags``). Any other run (an unpartitioned drain, a range) drains them all."""
    key = str(context.partition_key) if context.has_partition_key else ""
    if key.count("|") == 1:  # two dimensions, the instrument second: a tick partition's key
        shards = {tick_stream.stream_of(symbol) for _, symbol in units_of(key)}
        return [stream for stream in tick_stream.streams if stream in shards]
    return tick_stream.streams


@dg.asset(group_name="ingest", kinds={"redis", "parquet"}, check_specs=checks.LANDING_ZONE_CHECKS)
def landing_zone(
    context: dg.AssetExecutionContext,
    redis: RedisResource,
    tick_stream: TickStreamResource,
    landing: LandingResource,
) -> dg.MaterializeResult:
    """Everything the tick stream holds for the consumer group, landed (Parquet, fsynced) and then XACKed.

    Exactly once: landing dedups by entry id, so a drain that overlaps a running ingest service or an earlier
    drain adds nothing twice. Malformed entries go to `<stream>:dlq` with their XACK in one MULTI. Complete
    (the blocking `drain_complete` check) only once nothing delivered before the drain ended is pending in the
    group: entries of dead consumers are claimed and landed; entries live consumers hold past `drain_wait_ms`
    fail the check, so no partition is materialized short of them.
    """
    streams = _streams_to_drain(context, tick_stream)
    context.log.info(f"draining {', '.join(streams)} (group {tick_stream.group}) at {redis.describe()}")
    store = landing.store(tick_stream.stream)  # every shard lands in the base stream's zone: one per partition
    reports: list[IngestReport] = []
    consumers: list[str] = []
    for stream in streams:  # an instrument lives in one shard: each partition is fed by one group's drain
        options = tick_stream.options(context.run.run_id, stream)
        consumers.append(options.consumer)
        try:
            report = TickConsumer(store, options, client_factory=redis.get_client).drain()
        except LandingError as exc:  # full or read-only: the reason and the fix, entries not landed still pending
            raise dg.Failure(str(exc), metadata={"landing": dg.MetadataValue.path(str(store.root))}) from None
        if not report.complete:
            context.log.error(incomplete_message(options, report))
        reports.append(report)
    held: dict[str, int] = {}
    for report in reports:
        add_counts(held, report.held)
    complete = all(report.complete for report in reports)
    return dg.MaterializeResult(
        check_results=[checks.drain_complete(complete, held, tick_stream.drain_wait_ms)],
        metadata={
            "stream": tick_stream.stream,
            "shards": dg.MetadataValue.int(len(streams)),
            "group": tick_stream.group,
            "entries_read": dg.MetadataValue.int(sum(r.read for r in reports)),
            "ticks_landed": dg.MetadataValue.int(sum(r.landed_total for r in reports)),
            "dead_letters": dg.MetadataValue.int(sum(r.dead_letters for r in reports)),
            "claimed": dg.MetadataValue.int(sum(r.claimed for r in reports)),
            "claimed_from_dead": dg.MetadataValue.int(sum(r.claimed_from_dead for r in reports)),
            "consumer": ", ".join(consumers),
            "landing": dg.MetadataValue.path(str(store.root)),
        },
    )


@dg.asset(
    group_name="ingest",
    partitions_def=tick_partitions,
    deps=[landing_zone],
    kinds={"parquet"},
    check_specs=checks.RAW_TICKS_CHECKS,
)
def raw_ticks(
    context: dg.AssetExecutionContext, tick_stream: TickStreamResource, landing: LandingResource
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Every tick landed for the hour and symbol, as received (Redis entry-id order, duplicates kept). Under the
    day x group layout, each hour and instrument of the group's day that has ticks."""
    store = landing.store(tick_stream.stream)

    def unit(hour: str, symbol: str, _: dict[str, Any]) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
        ticks = store.read(Kind.TICKS, hour, symbol)
        if GROUPED and ticks.empty:
            return  # an instrument quiet for an hour: no unit of the day, rather than a failed check
        yield from _raw_unit(ticks, hour, symbol, store)

    yield from run_units(context, unit)


def _raw_unit(
    ticks: pd.DataFrame, hour: str, symbol: str, store: LandingStore
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    yield dg.Output(
        ticks,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(ticks)),
            "hour": hour,
            "symbol": symbol,
            "trades": dg.MetadataValue.int(int(ticks["is_trade"].sum()) if len(ticks) else 0),
            **_span_metadata(ticks),
            "landing": dg.MetadataValue.path(str(store.folder(Kind.TICKS, hour, symbol))),
            "preview": _preview(ticks),
        },
    )
    yield checks.non_empty(len(ticks))


@dg.multi_asset(
    group_name="ingest",
    partitions_def=tick_partitions,
    outs={
        "normalized_ticks": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="Typed ticks, one per seq, ordered by exchange time (ts_server).",
        ),
        "tick_quality": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="The partition's data-quality counts (one row): gaps, duplicates, late and reordered "
            "seqs, backpressure drops, dead letters. The shadow's run notes quote them.",
        ),
    },
    check_specs=checks.NORMALIZED_TICKS_CHECKS,
)
def normalized_ticks(
    context: dg.AssetExecutionContext,
    raw_ticks: PartitionValue,
    redis: RedisResource,
    tick_stream: TickStreamResource,
    landing: LandingResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Typed, deduplicated ticks in exchange-time order, and the partition's data-quality counts.

    Gaps, duplicates, late (out-of-order) seqs and reorders are counted exactly from the ticks as received;
    backpressure drops come from the landing zone's drop records and dead letters from `<stream>:dlq`. Ticks that
    do not fit the partition's instrument (off its price grid, below its lot step) fail the blocking
    `fits_instrument` check: nothing downstream runs on them.
    """
    store = landing.store(tick_stream.stream)
    client = redis.get_client(decode_responses=True)
    dead: Counter = Counter()
    for letters in tick_stream.dead_letter_streams:  # a record's partition is its entry's, whichever shard it was in
        dead.update(dead_letters_by_partition(client, letters))

    def unit(hour: str, symbol: str, given: dict[str, Any]) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
        yield from _normalized_unit(context, given["raw_ticks"], hour, symbol, store, dead)

    yield from run_units(context, unit, {"raw_ticks": raw_ticks})


def _normalized_unit(
    context: dg.AssetExecutionContext,
    raw_ticks: pd.DataFrame,
    hour: str,
    symbol: str,
    store: LandingStore,
    dead: Counter,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    quality = assess(
        raw_ticks,
        previous_seqs=_neighbour_seqs(store, hour, symbol, -1),
        next_seqs=_neighbour_seqs(store, hour, symbol, +1),
        drops=len(store.read(Kind.DROPS, hour, symbol, columns=["seq"])),
        dead_letters=dead.get((hour, symbol), 0),
    )
    if quality.gaps or quality.duplicates:
        context.log.warning(f"{symbol} {hour}: {quality.gaps} seqs missing, {quality.duplicates} duplicates")
    ticks = normalize(raw_ticks) if len(raw_ticks) else raw_ticks
    counts = pd.DataFrame([quality.as_dict()])
    yield dg.Output(
        ticks,
        output_name="normalized_ticks",
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(ticks)),
            **_span_metadata(ticks),
            "preview": _preview(ticks),
        },
    )
    yield dg.Output(
        counts,
        output_name="tick_quality",
        metadata={
            "rows_received": dg.MetadataValue.int(quality.rows_received),
            "duplicates": dg.MetadataValue.int(quality.duplicates),
            "gaps": dg.MetadataValue.int(quality.gaps),
            "out_of_order": dg.MetadataValue.int(quality.out_of_order),
            "reordered": dg.MetadataValue.int(quality.reordered),
            "reordered_share": dg.MetadataValue.float(round(quality.reordered_share, 6)),
            "drops": dg.MetadataValue.int(quality.drops),
            "dead_letters": dg.MetadataValue.int(quality.dead_letters),
            "dead_letters_unattributed": dg.MetadataValue.int(dead.get(UNATTRIBUTED, 0)),
            "quality": dg.MetadataValue.md(counts.T.rename(columns={0: "value"}).to_markdown()),
        },
    )
    yield from checks.normalized_gates(quality)
    yield checks.fits_instrument(ticks, symbol)
