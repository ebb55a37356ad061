"""The check-alert sensor: a WARN check never fails a run, and a No-Go gate no longer does either, so only a
sensor sees every failed check. It writes each failed evaluation once to the alert stream (and Slack)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from shadow_pipeline.alerting import alert_fields, alert_text, failed_evaluation
from shadow_pipeline.redis_io.streams import append_once
from shadow_pipeline.resources import AlertsResource, RedisResource

MAX_RUNS_PER_TICK = 200
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
CURSOR_OVERLAP_SECONDS = 1.0


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
