"""Every resource of the code location, bound once. Run config may override any field per run (the CLI does)."""

import dagster as dg

from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.resources import (
    AlertsResource,
    ArtifactsResource,
    LandingResource,
    RedisResource,
    TickStreamResource,
)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "redis": RedisResource(),
            "tick_stream": TickStreamResource(),
            "landing": LandingResource(),
            "artifacts": ArtifactsResource(),
            "alerts": AlertsResource(),
            "io_manager": ParquetIOManager(),  # the default for every asset: Parquet per partition
        }
    )
