"""The alert sensor: one alert per failed check evaluation, none twice (build_sensor_context, real Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import redis

from shadow_pipeline.defs.alerts.sensors import check_alert_sensor
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import check_spec, partition_key, tick_partitions
from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.resources import AlertsResource, LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.ingest_helpers import replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance


def _tick(context: dg.SensorEvaluationContext) -> str:
    result = check_alert_sensor(context)
    assert isinstance(result, dg.SkipReason)
    return str(result.skip_message)


def test_one_alert_per_failed_check_evaluation_and_none_twice(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    # Dropped ticks make the WARN gap check fail; reorders past 5 % make the reordered-share WARN fail.
    replay_synthetic(redis_client, stream, 30, ("BTCUSDT",), FaultSpec(drop=0.02, reorder=0.2, seed=3))
    resources = {
        "redis": RedisResource(url=redis_url),
        "tick_stream": TickStreamResource(stream=stream),
        "landing": LandingResource(base_path=str(tmp_path / "landing")),
        "io_manager": ParquetIOManager(base_path=str(tmp_path / "assets")),
    }
    alerts = AlertsResource(stream=f"{stream}:alerts")
    sensor_resources = {"redis": RedisResource(url=redis_url), "alerts": alerts}
    with dagster_instance() as instance:
        result = dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks],
            partition_key=partition_key("2024-08-09-00:00", "BTCUSDT"),
            resources=resources,
            instance=instance,
        )
        failed = sorted(e.check_name for e in result.get_asset_check_evaluations() if not e.passed)
        assert failed == ["no_sequence_gaps", "reordered_share_below_5pct"]

        first = _tick(dg.build_sensor_context(instance=instance, resources=sensor_resources))
        written: list[Any] = redis_client.xrange(alerts.stream)  # type: ignore[assignment]
        assert sorted(fields["check"] for _, fields in written) == failed
        for _, fields in written:
            assert fields["severity"] == "WARN" and fields["asset"] == "normalized_ticks"
            assert fields["partition"] == "2024-08-09-00:00|BTCUSDT"
        assert "2 alerts written" in first

        # A lost cursor re-reads every run but writes nothing twice; the next tick from the saved cursor neither.
        cursor_context = dg.build_sensor_context(instance=instance, resources=sensor_resources, cursor="0")
        assert "0 alerts written" in _tick(cursor_context)
        again = dg.build_sensor_context(instance=instance, resources=sensor_resources, cursor=cursor_context.cursor)
        assert "0 alerts written" in _tick(again)
        assert redis_client.xlen(alerts.stream) == 2

        # A new failing evaluation (the same partition re-materialized) is a new alert.
        dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks],
            partition_key=partition_key("2024-08-09-00:00", "BTCUSDT"),
            resources=resources,
            instance=instance,
        )
        _tick(dg.build_sensor_context(instance=instance, resources=sensor_resources, cursor=cursor_context.cursor))
        assert redis_client.xlen(alerts.stream) == 4


def test_a_plain_checks_alert_names_its_runs_partition(redis_url: str, redis_client: redis.Redis, stream: str) -> None:
    """With $SHADOW_PARTITIONED_CHECKS=false an inline evaluation carries no partition of its own: the alert takes
    the run's."""

    @dg.asset(
        name="probe",
        partitions_def=tick_partitions,
        check_specs=[check_spec("probe_gate", asset="probe", partitioned=False)],
    )
    def probe() -> dg.MaterializeResult:
        failed = dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, description="below the gate")
        return dg.MaterializeResult(check_results=[failed])

    alerts = AlertsResource(stream=f"{stream}:alerts")
    with dagster_instance() as instance:
        result = dg.materialize([probe], partition_key=partition_key("2024-08-09-00:00", "ETHUSDT"), instance=instance)
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.partition is None and not evaluation.passed
        context = dg.build_sensor_context(
            instance=instance, resources={"redis": RedisResource(url=redis_url), "alerts": alerts}
        )
        assert "1 alerts written" in _tick(context)
    written: list[Any] = redis_client.xrange(alerts.stream)  # type: ignore[assignment]
    assert [(f["check"], f["partition"]) for _, f in written] == [("probe_gate", "2024-08-09-00:00|ETHUSDT")]
