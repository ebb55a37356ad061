"""The closed-window sensor: launch the pipeline for an (hour, symbol) once the event time of the stream that holds
the symbol has moved past the hour (plus the reorder watermark).

With a sharded stream (docs/ingest.md, "Shards") each shard is read from its own cursor and closes its own
instruments' hours: a shard whose feed lags holds back only its instruments, never another shard's.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import redis

from shadow_pipeline.defs.partitions import (
    FIRST_HOUR,
    GROUPED,
    GROUPS_NAME,
    configured_symbols,
    daily,
    has_hour,
    instrument_group_assignment,
    instrument_groups,
    partition_key,
)
from shadow_pipeline.defs.pipeline.jobs import pipeline_job
from shadow_pipeline.defs.run_queue import shadow_tags
from shadow_pipeline.domain.market.windows import closed_days, closed_hours, hour_keys
from shadow_pipeline.ingest.deliveries import from_range_reply
from shadow_pipeline.redis_io.raw_reply import read_raw
from shadow_pipeline.resources import RedisResource, TickStreamResource

SCAN_CHUNK = 20_000
MAX_SCAN_PER_TICK = 500_000  # over all shards: a tick must finish well inside Dagster's 60 s evaluation limit


@dataclass
class Scan:
    """What one tick's read of the stream found: ``newest`` is an exact int (ns), -1 when no tick was valid."""

    last_id: str
    seen: set[tuple[str, str]] = field(default_factory=set)
    newest: int = -1
    entries: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> entries that are not valid ticks


def _scan(client: redis.Redis, stream: str, after: str, budget: int) -> Scan:
    """At most ``budget`` entries after ``after`` (raw XRANGE replies, the tick rules of the consumer): the
    (hour, symbol) pairs of valid ticks and their newest ``ts_server``. An entry that is no valid tick
    (undecodable bytes, a time that is not an integer or outside the sane range, ...) is counted by reason and
    passed: it is the consumer's dead letter, and must neither stop the cursor nor open or close an hour."""
    found = Scan(after)
    while found.entries < budget:
        start = f"({found.last_id}" if found.last_id != "0" else "-"
        count = min(SCAN_CHUNK, budget - found.entries)
        delivery = from_range_reply(read_raw(client, "XRANGE", stream, start, "+", "COUNT", count))
        if not len(delivery):
            break
        found.entries += len(delivery)
        found.last_id = str(delivery.ids[-1])
        found.rejected.update(delivery.parsed.rejects.tolist())
        ticks = delivery.parsed.ticks
        if len(ticks):
            ts = ticks["ts_server"].to_numpy(dtype=np.int64)  # exact: never through a float
            found.seen |= set(zip(hour_keys(ts).tolist(), ticks["symbol"].tolist(), strict=True))
            found.newest = max(found.newest, int(ts.max()))
        if len(delivery) < count:
            break
    return found


def _cursor(text: str | None, streams: list[str]) -> dict[str, Any]:
    """The cursor of the last tick, or a fresh one (also for a cursor this code cannot read): per stream the last
    id read and the newest exchange time, and the (hour, symbol) pairs still open. The form before sharding,
    ``{"last_id", "newest", "open"}``, is read as the base stream's (``streams[0]`` with one shard)."""
    fresh: dict[str, Any] = {"streams": {stream: {"last_id": "0", "newest": -1} for stream in streams}, "open": []}
    if not text:
        return fresh
    try:
        state = json.loads(text)
        known = state["streams"] if "streams" in state else {streams[0]: state} if len(streams) == 1 else {}
        positions = {
            stream: {"last_id": str(known[stream]["last_id"]), "newest": int(known[stream]["newest"])}
            if stream in known
            else fresh["streams"][stream]
            for stream in streams
        }
        return {"streams": positions, "open": [(str(hour), str(symbol)) for hour, symbol in state["open"]]}
    except (ValueError, KeyError, TypeError):
        return fresh


@dg.sensor(
    job=pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one pipeline_job run (ingest, shadow, export, dry-run) per (hour, symbol) once a tick "
    "more than the watermark past the hour has arrived; under the day x group layout, one per (day, group) once "
    "the day has closed on every shard of the group, adding the groups of new instruments first. The cursor keeps "
    "the last stream id read, the newest exchange time and the hours still open. Entries that are not valid ticks "
    "are counted in the log and passed.",
)
def closed_window_sensor(
    context: dg.SensorEvaluationContext, redis: RedisResource, tick_stream: TickStreamResource
) -> dg.SensorResult:
    streams = tick_stream.streams
    state = _cursor(context.cursor, streams)
    client = redis.get_client(decode_responses=False)
    pending = set(state["open"])
    newest: dict[str, int] = {}
    budget = MAX_SCAN_PER_TICK  # one for the tick, shared: each shard may use its share and what earlier ones left
    for number, stream in enumerate(streams):
        position = state["streams"][stream]
        found = _scan(client, stream, position["last_id"], budget // (len(streams) - number))
        budget -= found.entries
        if found.rejected:
            total = sum(found.rejected.values())
            top = ", ".join(f"{reason}: {count}" for reason, count in found.rejected.most_common(5))
            context.log.warning(
                f"{stream}: {total} of {found.entries} entries read are not valid ticks, passed ({top})"
            )
        newest[stream] = max(found.newest, position["newest"])
        position.update(last_id=found.last_id, newest=newest[stream])
        pending |= found.seen
    known = set(configured_symbols())
    unknown = sorted({symbol for _, symbol in pending} - known)
    if unknown:
        context.log.warning(f"ticks for symbols outside the partitions ({unknown}): add them to $SHADOW_SYMBOLS")
    early = sorted({hour for hour, _ in pending if hour < FIRST_HOUR})
    if early:
        context.log.warning(f"ticks before the first partition {FIRST_HOUR} ignored (hours {early[0]}..{early[-1]})")
    pending = {(hour, symbol) for hour, symbol in pending if symbol in known and hour >= FIRST_HOUR}
    watermark = int(tick_stream.watermark_ms * 1e6)
    if GROUPED:
        return _day_requests(context, tick_stream, pending, newest, watermark, state["streams"])
    by_stream: dict[str, set[tuple[str, str]]] = {}
    for pair in pending:  # each pair is closed by the event time of the shard that holds its symbol
        by_stream.setdefault(tick_stream.stream_of(pair[1]), set()).add(pair)
    ready = sorted(
        pair
        for stream, pairs in by_stream.items()
        for pair in pairs
        if pair[0] in closed_hours({hour for hour, _ in pairs}, newest.get(stream, -1), watermark)
        and has_hour(pair[0])  # else: not a partition yet
    )
    cursor = {"streams": state["streams"], "open": sorted(pending - set(ready))}
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"pipeline:{hour}:{symbol}",
                partition_key=partition_key(hour, symbol),
                tags=shadow_tags(tick_stream.stream_of(symbol)),  # one drain per shard, shards in parallel
            )
            for hour, symbol in ready
        ],
        cursor=json.dumps(cursor),
    )


def _day_requests(
    context: dg.SensorEvaluationContext,
    tick_stream: TickStreamResource,
    pending: set[tuple[str, str]],
    newest: dict[str, int],
    watermark: int,
    positions: dict[str, Any],
) -> dg.SensorResult:
    """The day x group form: a run per (day, group) whose day has ended on the clock and on every shard of the
    group; the groups of instruments new to the assignment are added to the partitions in the same result."""
    try:
        assignment = instrument_group_assignment(tick_stream.shard_count)
    except ValueError as exc:  # a damaged assignment file: nothing is requested until it is repaired
        context.log.error(f"instrument groups: {exc}")
        return dg.SensorResult(skip_reason=f"instrument groups: {exc}", cursor=context.cursor)
    days = closed_days(pending, newest, tick_stream.stream_of, assignment, watermark)
    ready = {key: pairs for key, pairs in days.items() if daily.has_partition_key(key[0])}
    known = set(context.instance.get_dynamic_partitions(GROUPS_NAME))
    added = sorted(set(assignment.values()) - known)
    done = {pair for pairs in ready.values() for pair in pairs}
    requests = []
    for day, group in ready:
        shards = sorted({tick_stream.stream_of(key) for key, given in assignment.items() if given == group})
        requests.append(
            dg.RunRequest(
                run_key=f"pipeline:{day}:{group}",
                partition_key=dg.MultiPartitionKey({"day": day, "group": group}),
                tags=shadow_tags(shards[0] if len(shards) == 1 else tick_stream.stream),
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"streams": positions, "open": sorted(pending - done)}),
        dynamic_partitions_requests=[instrument_groups.build_add_request(added)] if added else [],
    )
