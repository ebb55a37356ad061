"""The one Definitions object of the code location."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.assets import dryrun, export, feed, ingest, shadow
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.jobs import ingest_job, main_job, pipeline_job, shadow_job
from shadow_pipeline.resources import (
    AlertsResource,
    ArtifactsResource,
    LandingResource,
    RedisResource,
    TickStreamResource,
)
from shadow_pipeline.schedules import hourly_pipeline_schedule
from shadow_pipeline.sensors import check_alert_sensor, closed_window_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([feed, ingest, shadow, export, dryrun]),
    jobs=[main_job, ingest_job, shadow_job, pipeline_job],
    sensors=[closed_window_sensor, check_alert_sensor],
    schedules=[hourly_pipeline_schedule],
    resources={
        "redis": RedisResource(),
        "tick_stream": TickStreamResource(),
        "landing": LandingResource(),
        "artifacts": ArtifactsResource(),
        "alerts": AlertsResource(),
        "parquet_io_manager": ParquetIOManager(),
    },
)
