"""The closed-window sensor: launch the pipeline for an (hour, symbol) once the stream's event time has moved
past the hour (plus the reorder watermark)."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pandas as pd
import redis

from shadow_pipeline.defs.partitions import FIRST_HOUR, configured_symbols, has_hour, partition_key
from shadow_pipeline.defs.pipeline.jobs import pipeline_job
from shadow_pipeline.domain.windows import closed_hours, hour_keys
from shadow_pipeline.resources import RedisResource, TickStreamResource

SCAN_CHUNK = 20_000
MAX_SCAN_PER_TICK = 500_000  # a tick must finish well inside Dagster's 60 s evaluation limit


def _scan(client: redis.Redis, stream: str, after: str) -> tuple[str, set[tuple[str, str]], int]:
    """Entries after ``after``: the last id read, the (hour, symbol) pairs seen and the newest ts_server."""
    seen: set[tuple[str, str]] = set()
    newest = -1
    scanned = 0
    while scanned < MAX_SCAN_PER_TICK:
        entries = client.xrange(stream, min=f"({after}" if after != "0" else "-", max="+", count=SCAN_CHUNK)
        if not entries:
            break
        scanned += len(entries)
        after = str(entries[-1][0])
        frame = pd.DataFrame([fields for _, fields in entries], columns=["symbol", "ts_server"])
        ts = pd.to_numeric(frame["ts_server"], errors="coerce")
        ok = ts.notna() & frame["symbol"].notna()
        if ok.any():
            values = ts[ok].astype("int64").to_numpy()
            seen |= set(zip(hour_keys(values).tolist(), frame.loc[ok, "symbol"].tolist(), strict=True))
            newest = max(newest, int(values.max()))
        if len(entries) < SCAN_CHUNK:
            break
    return after, seen, newest


@dg.sensor(
    job=pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one pipeline_job run (ingest, shadow, export, dry-run) per (hour, symbol) once a tick "
    "more than the watermark past the hour has arrived. The cursor keeps the last stream id read, the newest "
    "exchange time and the hours still open.",
)
def closed_window_sensor(
    context: dg.SensorEvaluationContext, redis: RedisResource, tick_stream: TickStreamResource
) -> dg.SensorResult:
    state: dict[str, Any] = json.loads(context.cursor) if context.cursor else {"last_id": "0", "newest": -1, "open": []}
    client = redis.get_client(decode_responses=True)
    last_id, seen, newest = _scan(client, tick_stream.stream, state["last_id"])
    newest = max(newest, int(state["newest"]))
    pending = {tuple(pair) for pair in state["open"]} | seen
    known = set(configured_symbols())
    unknown = sorted({symbol for _, symbol in pending} - known)
    if unknown:
        context.log.warning(f"ticks for symbols outside the partitions ({unknown}): add them to $SHADOW_SYMBOLS")
    early = sorted({hour for hour, _ in pending if hour < FIRST_HOUR})
    if early:
        context.log.warning(f"ticks before the first partition {FIRST_HOUR} ignored (hours {early[0]}..{early[-1]})")
    pending = {(hour, symbol) for hour, symbol in pending if symbol in known and hour >= FIRST_HOUR}
    closed = closed_hours({hour for hour, _ in pending}, newest, int(tick_stream.watermark_ms * 1e6))
    ready = sorted(pair for pair in pending if pair[0] in closed and has_hour(pair[0]))  # else: not a partition yet
    cursor = {"last_id": last_id, "newest": newest, "open": sorted(pending - set(ready))}
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"pipeline:{hour}:{symbol}", partition_key=partition_key(hour, symbol))
            for hour, symbol in ready
        ],
        cursor=json.dumps(cursor),
    )
