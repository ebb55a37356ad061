"""The one Definitions object of the code location."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.assets import feed, ingest, shadow
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.jobs import ingest_job, main_job, shadow_job
from shadow_pipeline.resources import ArtifactsResource, LandingResource, RedisResource, TickStreamResource
from shadow_pipeline.schedules import hourly_shadow_schedule
from shadow_pipeline.sensors import closed_window_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([feed, ingest, shadow]),
    jobs=[main_job, ingest_job, shadow_job],
    sensors=[closed_window_sensor],
    schedules=[hourly_shadow_schedule],
    resources={
        "redis": RedisResource(),
        "tick_stream": TickStreamResource(),
        "landing": LandingResource(),
        "artifacts": ArtifactsResource(),
        "parquet_io_manager": ParquetIOManager(),
    },
)
