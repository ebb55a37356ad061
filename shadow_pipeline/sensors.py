"""Sensors: launch the pipeline for an (hour, symbol) once the stream's event time has moved past the hour, and
turn failed asset checks into alerts (a WARN check never fails a run, so only a sensor sees it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd
import redis

from shadow_pipeline.alerting import alert_fields, alert_text, failed_evaluation
from shadow_pipeline.domain.windows import closed_hours, hour_keys
from shadow_pipeline.jobs import pipeline_job
from shadow_pipeline.partitions import FIRST_HOUR, configured_symbols, partition_key
from shadow_pipeline.redis_io.streams import append_once
from shadow_pipeline.resources import AlertsResource, RedisResource, TickStreamResource

SCAN_CHUNK = 20_000
MAX_SCAN_PER_TICK = 500_000  # a tick must finish well inside Dagster's 60 s evaluation limit
MAX_RUNS_PER_TICK = 200
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
CURSOR_OVERLAP_SECONDS = 1.0


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
    ready = sorted(pair for pair in pending if pair[0] in closed)
    cursor = {"last_id": last_id, "newest": newest, "open": sorted(pending - set(ready))}
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"pipeline:{hour}:{symbol}", partition_key=partition_key(hour, symbol))
            for hour, symbol in ready
        ],
        cursor=json.dumps(cursor),
    )


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes one alert per failed asset-check evaluation (WARN or ERROR: data quality, min-windows, KPI "
    "thresholds, prediction accuracy) of every finished run to the shadow:alerts stream, the log and Slack when a "
    "token is set. The cursor is the last finished run's update time; the alert stream is keyed by evaluation, so "
    "none is written twice.",
)
def check_alert_sensor(
    context: dg.SensorEvaluationContext, redis: RedisResource, alerts: AlertsResource
) -> dg.SkipReason:
    # Finished runs, oldest update first, then each run's own check evaluations: correct on run-sharded SQLite
    # instances too. The cursor overlaps by a second; re-reading is harmless because alerts are written once.
    after = datetime.fromtimestamp(float(context.cursor) - CURSOR_OVERLAP_SECONDS, UTC) if context.cursor else None
    runs = context.instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED, updated_after=after),
        order_by="update_timestamp",
        ascending=True,
        limit=MAX_RUNS_PER_TICK,
    )
    if not runs:
        return dg.SkipReason("no newly finished runs")
    client = redis.get_client(decode_responses=True)
    evaluations = written = 0
    for run in runs:
        partition = run.dagster_run.tags.get("dagster/partition", "")
        records = context.instance.get_records_for_run(
            run.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        evaluations += len(records)
        for record in records:
            evaluation = failed_evaluation(record)
            if evaluation is None:
                continue
            fields = alert_fields(record, evaluation, partition)
            if not append_once(client, alerts.stream, [(fields["evaluation"], fields)], alerts.maxlen):
                continue  # written by an earlier tick (the cursor overlaps, or was lost)
            written += 1
            text = alert_text(fields)
            context.log.warning(text)
            try:
                alerts.post_to_slack(text)
            except Exception as exc:  # Slack being down must not lose the cursor or the Redis alert
                context.log.error(f"could not post the alert to Slack: {exc}")
    context.update_cursor(str(runs[-1].update_timestamp.timestamp()))
    return dg.SkipReason(
        f"{len(runs)} finished runs, {evaluations} check evaluations read, {written} alerts written to {alerts.stream}"
    )
